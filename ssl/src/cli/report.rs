//! `tessera report`: one self-contained HTML page about one or more saved runs (their
//! configuration, curves, final evaluation against the baselines, per-epoch diagnostics and
//! latest pictures), side by side. Pictures are inlined, so the page needs no network and
//! no files beside it.

use std::path::{Path, PathBuf};

use super::attention_pictures::ATTENTION_PICTURE;
use super::diagnostic_pictures::DIAGNOSTIC_PICTURES;
use super::layer_norm_picture::UPDATE_RATIO_PICTURE;
use super::report_html::render;

/// The curves `tessera pretrain` draws into `plots/`.
const CURVES: [&str; 5] = ["loss.png", "lr.png", "accuracy.png", "rankme.png", UPDATE_RATIO_PICTURE];
/// Pictures drawn each epoch for some runs only (ViT attention, reconstructions,
/// colorizations), shown when present.
const METHOD_PICTURES: [&str; 3] = [ATTENTION_PICTURE, "reconstructions", "colorization"];

/// What the page shows of one run.
pub struct RunSummary {
    pub dir: PathBuf,
    pub config: String,
    /// `metrics.jsonl`'s epoch records, in order.
    pub epochs: Vec<serde_json::Value>,
    /// Its `"eval": "final"` record, if the run was evaluated.
    pub final_eval: Option<serde_json::Value>,
    /// `(caption, PNG bytes)`, curves first, then the latest epoch's pictures.
    pub pictures: Vec<(String, Vec<u8>)>,
}

/// Writes the page for `runs` to `out`; an existing `out` is kept unless `force`.
pub fn report_command(runs: &[PathBuf], out: &Path, force: bool) -> crate::Result<()> {
    if runs.is_empty() {
        return Err("report needs at least one --run DIR".into());
    }
    if out.exists() && !force {
        return Err(format!("{}: already exists (pass --force to replace it)", out.display()).into());
    }
    let summaries = runs.iter().map(|d| read_run(d)).collect::<Result<Vec<_>, _>>()?;
    crate::train::write_atomic(out, render(&summaries).as_bytes())?;
    println!("{}: report of {} run(s)", out.display(), summaries.len());
    Ok(())
}

/// Reads what the page shows from a run folder.
fn read_run(dir: &Path) -> crate::Result<RunSummary> {
    let read =
        |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| format!("{}: not a run folder: {e}", dir.join(name).display()));
    let config = read("config.toml")?;
    let mut epochs = Vec::new();
    let mut final_eval = None;
    for (i, line) in read("metrics.jsonl")?.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}/metrics.jsonl line {}: {e}", dir.display(), i + 1))?;
        if record.get("eval").and_then(|v| v.as_str()) == Some("final") {
            final_eval = Some(record);
        } else if record.get("epoch").is_some() {
            epochs.push(record);
        }
    }
    let plots = dir.join("plots");
    let mut pictures: Vec<(String, PathBuf)> =
        CURVES.iter().map(|f| (f.trim_end_matches(".png").to_string(), plots.join(f))).filter(|(_, p)| p.is_file()).collect();
    for name in DIAGNOSTIC_PICTURES.iter().chain(&METHOD_PICTURES) {
        if let Some((epoch, path)) = latest_epoch_picture(&plots, name) {
            pictures.push((format!("{name}, epoch {epoch}"), path));
        }
    }
    let pictures = pictures
        .into_iter()
        .map(|(caption, p)| std::fs::read(&p).map(|bytes| (caption, bytes)).map_err(|e| format!("{}: cannot read: {e}", p.display())))
        .collect::<Result<_, _>>()?;
    Ok(RunSummary { dir: dir.to_path_buf(), config, epochs, final_eval, pictures })
}

/// The `plots/<name>-epochNN.png` with the largest epoch.
fn latest_epoch_picture(plots: &Path, name: &str) -> Option<(usize, PathBuf)> {
    let prefix = format!("{name}-epoch");
    std::fs::read_dir(plots)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().to_str()?.to_string();
            let epoch = file.strip_prefix(&prefix)?.strip_suffix(".png")?.parse().ok()?;
            Some((epoch, e.path()))
        })
        .max_by_key(|(epoch, _)| *epoch)
}
