//! `tessera zero-shot` and `tessera embed --text`: what an image–text run (CLIP) adds to the
//! image-only commands.

use super::npy;
use super::saved_run::load_run;
use crate::data::{Dataset, CAPTION_TEMPLATES};
use crate::eval::{zero_shot_accuracy, DualEncoder};
use crate::methods::Method;
use serde_json::json;
use std::path::Path;

/// The prompt templates: one per non-empty line of `file` (each with a `{}` or `{class}` where
/// the class name goes), or the caption templates when no file is given.
pub fn templates(file: Option<&Path>) -> crate::Result<Vec<String>> {
    let Some(file) = file else { return Ok(CAPTION_TEMPLATES.iter().map(|s| s.to_string()).collect()) };
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if !t.contains("{}") && !t.contains("{class}") {
            return Err(format!("{}: line {}: template '{t}' has no {{}} or {{class}} for the class name", file.display(), i + 1).into());
        }
        out.push(t.to_string());
    }
    if out.is_empty() {
        return Err(format!("{}: holds no template", file.display()).into());
    }
    Ok(out)
}

/// The method's towers, or an error saying it has none.
fn dual(method: &dyn Method) -> crate::Result<&dyn DualEncoder> {
    method.dual_encoder().ok_or_else(|| {
        crate::Error::msg(format!(
            "method {} has no text tower: zero-shot and text embeddings need an image–text run (clip)",
            method.name()
        ))
    })
}

/// Zero-shot accuracy of an image–text method on `ds`; `None` for image-only methods.
pub fn zero_shot_score(method: &dyn Method, ds: &Dataset, norm: (f32, f32), templates: &[String]) -> crate::Result<Option<f64>> {
    method.dual_encoder().map(|d| zero_shot_accuracy(d, ds, templates, norm).map_err(crate::Error::msg)).transpose()
}

/// `tessera zero-shot`: one JSON line.
pub fn zero_shot_command(dir: &Path, dataset: Option<&str>, templates_file: Option<&Path>) -> crate::Result<String> {
    let prompts = templates(templates_file)?;
    let (cfg, method, _, te, norm) = load_run(dir, dataset, None)?;
    let acc = zero_shot_accuracy(dual(method.as_ref())?, &te, &prompts, norm)?;
    Ok(json!({"protocol": "zero-shot", "acc": acc, "templates": prompts.len(), "classes": te.num_classes(), "dataset": cfg.dataset})
        .to_string())
}

/// `tessera embed --text`: the text tower's embeddings `[N, E]` (unit length) as `.npy`,
/// one row per text in order: the `--text` values, then the lines of `--text-file`.
pub fn embed_text_command(dir: &Path, texts: &[String], file: Option<&Path>, out: &Path, force: bool) -> crate::Result<()> {
    let mut all = texts.to_vec();
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: cannot read: {e}", f.display()))?;
        all.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
    }
    if all.is_empty() {
        return Err("no text to embed (give --text \"...\" or a --text-file with one text per line)".into());
    }
    if out.exists() && !force {
        return Err(format!("{} already exists; pass --force to replace it", out.display()).into());
    }
    let (_, method, ..) = load_run(dir, None, None)?;
    let e = dual(method.as_ref())?.embed_texts(&all)?;
    npy::write_npy(out, &e.to_vec::<f32>()?, e.shape(), force)?;
    println!("wrote {} text embeddings of width {} to {}", e.shape()[0], e.shape()[1], out.display());
    Ok(())
}
