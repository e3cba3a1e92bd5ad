//! The attention picture of a ViT encoder (issue 17), written to the run's `plots/` each
//! epoch and by `tessera inspect --attention`: one row per fixed test image; columns are
//! the image, the class token's attention to the patches for each head of the last block,
//! and the attention rollout over all blocks. Each map is scaled to its own range (attention
//! differs by orders of magnitude between heads) and drawn with a viridis-like colour ramp,
//! each patch as a square of the image.

use std::path::Path;

use crate::data::ImageGrid;
use crate::eval::{attention_rollout, class_token_attention};
use crate::methods::normalize_pixels;
use crate::nn::{in_eval_mode, Module};
use tessera_engine::{Device, Tensor};

/// The picture's file stem: `plots/attention-epochNN.png`.
pub const ATTENTION_PICTURE: &str = "attention";

/// Draws the attention picture of `encoder` on `images` (raw pixels in [0, 1], `[B, C, H, W]`
/// on the host; `norm` is the (mean, std) training inputs are normalized with) into `path`.
/// Returns `false`, drawing nothing, when the encoder is not a ViT or does not take these
/// images whole (jigsaw's ViT sees tiles).
pub fn write_attention_picture(encoder: &dyn Module, images: &Tensor, norm: (f32, f32), path: &Path) -> crate::Result<bool> {
    let Some(vit) = encoder.as_vision_transformer() else { return Ok(false) };
    let cfg = vit.config();
    let fits = matches!(*images.shape(), [_, c, h, w] if c == cfg.in_channels && h == cfg.img_size && w == cfg.img_size);
    if !fits || cfg.depth == 0 {
        return Ok(false);
    }
    let e = |e: tessera_autograd::Error| e.to_string();
    let input = normalize_pixels(images, norm).and_then(|x| x.to_device(encoder.device()))?;
    let maps = in_eval_mode(encoder, || vit.attention_maps(&input)).map_err(e)?;
    let last = maps.last().ok_or("the ViT has no blocks")?;
    let engine = |e: tessera_engine::Error| e.to_string();
    let heads = class_token_attention(&last.to_device(Device::Cpu).map_err(engine)?).map_err(engine)?;
    let rollout = attention_rollout(&maps).map_err(engine)?;
    let (b, h, n) = (heads.shape()[0], heads.shape()[1], heads.shape()[2]);
    // The class token's row of the rollout, without its own column.
    let rollout_row = rollout.narrow(1, 0, 1).and_then(|r| r.narrow(2, 1, n)).and_then(|r| r.contiguous()).map_err(engine)?;
    let heat = |maps: &[f64]| heat_maps(maps, b, cfg.grid(), cfg.patch_size);
    let head_values = heads.to_vec_f64().map_err(engine)?;
    let mut grid = ImageGrid::new(ATTENTION_PICTURE).column("image", &rgb(images).map_err(engine)?).map_err(engine)?;
    for head in 0..h {
        let one: Vec<f64> = (0..b).flat_map(|i| head_values[(i * h + head) * n..][..n].to_vec()).collect();
        grid = grid.column(format!("head {}", head + 1), &heat(&one).map_err(engine)?).map_err(engine)?;
    }
    grid = grid.column("rollout", &heat(&rollout_row.to_vec_f64().map_err(engine)?).map_err(engine)?).map_err(engine)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create folder: {e}", dir.display()))?;
    }
    grid.save(path)?;
    Ok(true)
}

/// `images [B, C, H, W]` with 3 channels (a greyscale image repeated), on the host, so the
/// image column sits beside the coloured maps.
fn rgb(images: &Tensor) -> tessera_engine::Result<Tensor> {
    let host = images.to_device(Device::Cpu)?;
    let s = host.shape();
    if s[1] == 3 {
        return Ok(host);
    }
    Tensor::cat(&[&host, &host, &host], 1)
}

/// `b` maps of `grid × grid` patch values (row-major) as RGB images `[b, 3, grid·patch,
/// grid·patch]`: each map scaled to [0, 1] over its own range, coloured, and each patch
/// drawn as a `patch × patch` square.
fn heat_maps(values: &[f64], b: usize, grid: usize, patch: usize) -> tessera_engine::Result<Tensor> {
    let side = grid * patch;
    let mut out = vec![0.0f32; b * 3 * side * side];
    for (image, map) in values.chunks(grid * grid).enumerate().take(b) {
        let (lo, hi) = map.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        for y in 0..side {
            for x in 0..side {
                let colour = viridis((map[(y / patch) * grid + x / patch] - lo) / span);
                for (c, v) in colour.iter().enumerate() {
                    out[((image * 3 + c) * side + y) * side + x] = *v;
                }
            }
        }
    }
    Tensor::from_vec(out, &[b, 3, side, side])
}

/// A colour for `t` in [0, 1] on a five-stop approximation of matplotlib's viridis (dark
/// violet → blue → green → yellow): ordered in lightness, so the brightest patch is the
/// most attended whatever the screen or printer.
fn viridis(t: f64) -> [f32; 3] {
    const STOPS: [[f64; 3]; 5] =
        [[0.267, 0.005, 0.329], [0.229, 0.322, 0.546], [0.128, 0.567, 0.551], [0.369, 0.789, 0.383], [0.993, 0.906, 0.144]];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let mix = |c: usize| (STOPS[i][c] * (1.0 - f) + STOPS[i + 1][c] * f) as f32;
    [mix(0), mix(1), mix(2)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_maps_draw_each_patch_as_a_square_from_dark_to_bright() {
        // One 2 × 2 map with patches of 2 pixels: the largest value is the brightest yellow.
        let t = heat_maps(&[0.0, 1.0, 2.0, 4.0], 1, 2, 2).unwrap();
        assert_eq!(t.shape(), [1, 3, 4, 4]);
        let v = t.to_vec::<f32>().unwrap();
        let red = |y: usize, x: usize| v[y * 4 + x];
        assert_eq!(red(0, 0), red(1, 1), "a patch is one colour");
        assert!((red(3, 3) - 0.993).abs() < 1e-6 && (red(0, 0) - 0.267).abs() < 1e-6, "min dark, max bright");
        assert_eq!(viridis(f64::NAN), viridis(0.0));
    }
}
