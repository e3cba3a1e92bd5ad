//! `plots/update_ratio.png`: the update-to-weight ratio of each block of the model over the
//! steps, from the `layer_norms` records of `metrics.jsonl` (see `train::layer_norms`).

use std::path::Path;

use super::plots::line_chart;
use crate::train::layer_norms::LAYER_NORMS_KIND;
use serde_json::Value;

/// The picture's file under `plots/`.
pub const UPDATE_RATIO_PICTURE: &str = "update_ratio.png";

/// Draws the update-to-weight ratio of each block over the steps into `path` from the
/// `layer_norms` records among `records`; nothing when there are none.
pub fn write_update_ratio_picture(records: &[Value], path: &Path) -> crate::Result<()> {
    let mut blocks: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in records.iter().filter(|r| r.get("kind").and_then(Value::as_str) == Some(LAYER_NORMS_KIND)) {
        let (Some(step), Some(layers)) = (r.get("step").and_then(Value::as_f64), r.get("layers").and_then(Value::as_object)) else {
            continue;
        };
        // Per block: Σ‖Δw‖² and Σ‖w‖² over its tensors, so the block's ratio is that of
        // all its weights as one vector.
        let mut sums: Vec<(String, f64, f64)> = Vec::new();
        for (name, n) in layers {
            let norm = |key: &str| n.get(key).and_then(Value::as_f64).unwrap_or(0.0);
            let block = block_of(name);
            let i = sums.iter().position(|(b, _, _)| *b == block).unwrap_or_else(|| {
                sums.push((block, 0.0, 0.0));
                sums.len() - 1
            });
            sums[i].1 += norm("update_norm").powi(2);
            sums[i].2 += norm("weight_norm").powi(2);
        }
        for (block, update, weight) in sums.into_iter().filter(|(_, u, w)| *u > 0.0 && *w > 0.0) {
            let point = (step, 0.5 * (update / weight).log10());
            match blocks.iter_mut().find(|(b, _)| *b == block) {
                Some((_, points)) => points.push(point),
                None => blocks.push((block, vec![point])),
            }
        }
    }
    if blocks.is_empty() {
        return Ok(());
    }
    // `metrics.jsonl` holds the names sorted as text (blocks.10 before blocks.2): the legend
    // lists them in the model's order.
    blocks.sort_by_cached_key(|(b, _)| natural_key(b));
    let series: Vec<(&str, Vec<(f64, f64)>)> = blocks.iter().map(|(b, p)| (b.as_str(), p.clone())).collect();
    line_chart(path, "update-to-weight ratio per block (log10 ‖Δw‖ / ‖w‖)", ("step", "log10 ‖Δw‖ / ‖w‖"), &series)
}

/// The block a parameter belongs to in the picture: the first two components of its
/// module's name, and the index after them if there is one (`encoder.layer1.0`,
/// `encoder.blocks.3`, `encoder.conv1`, `projector.0`), so a ResNet or a ViT draws one line
/// per block rather than one per tensor. A parameter at the root is its own block.
pub fn block_of(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    let module = &parts[..parts.len() - 1];
    if module.is_empty() {
        return name.to_string();
    }
    let mut take = module.len().min(2);
    if module.get(take).is_some_and(|p| p.parse::<usize>().is_ok()) {
        take += 1;
    }
    module[..take].join(".")
}

/// A sort key that orders the numbers in a dotted name by value.
fn natural_key(name: &str) -> Vec<(String, usize)> {
    name.split('.').map(|part| part.parse::<usize>().map_or_else(|_| (part.to_string(), 0), |n| (String::new(), n))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_group_into_blocks() {
        for (name, block) in [
            ("encoder.conv1.weight", "encoder.conv1"),
            ("encoder.layer1.0.conv1.weight", "encoder.layer1.0"),
            ("encoder.layer2.1.downsample.0.weight", "encoder.layer2.1"),
            ("encoder.blocks.11.attn.qkv.bias", "encoder.blocks.11"),
            ("encoder.cls_token", "encoder"),
            ("projector.0.weight", "projector.0"),
            ("logit_scale", "logit_scale"),
        ] {
            assert_eq!(block_of(name), block, "{name}");
        }
        let mut names = ["encoder.blocks.10", "projector.0", "encoder.blocks.2", "encoder"];
        names.sort_by_cached_key(|n| natural_key(n));
        assert_eq!(names, ["encoder", "encoder.blocks.2", "encoder.blocks.10", "projector.0"]);
    }

    #[test]
    fn the_picture_is_drawn_from_layer_norm_records_only() {
        let dir = std::env::temp_dir().join(format!("tessera-update-ratio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(UPDATE_RATIO_PICTURE);
        let epoch_only = [serde_json::json!({"epoch": 1, "step": 2, "loss": 1.0})];
        write_update_ratio_picture(&epoch_only, &path).unwrap();
        assert!(!path.exists(), "nothing to draw without layer_norms records");
        let record = |step: u64, update: f64| {
            serde_json::json!({"kind": "layer_norms", "step": step, "layers": {
                "encoder.conv1.weight": {"grad_norm": 1.0, "weight_norm": 2.0, "update_norm": update, "update_ratio": update / 2.0},
                "encoder.conv1.bias": {"grad_norm": 1.0, "weight_norm": 0.0, "update_norm": 0.0, "update_ratio": null}}})
        };
        write_update_ratio_picture(&[record(1, 0.02), epoch_only[0].clone(), record(51, 0.002)], &path).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 1000, "a PNG is drawn");
        std::fs::remove_dir_all(&dir).ok();
    }
}
