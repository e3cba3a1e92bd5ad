//! `tessera inspect`: the representation diagnostics of a saved run, as one JSON line.

use std::path::Path;

use super::attention_pictures::write_attention_picture;
use super::diagnose::Diagnostics;
use super::pictures::{fixed_images, PICTURE_IMAGES};
use super::saved_run::load_run;
use serde_json::json;

/// Loads the run's weights as `tessera eval` does, measures its held-out features, and
/// returns the JSON line; `out` also receives it, and `attention` the attention picture of a
/// ViT run (each refused if it exists, unless `force`).
pub fn inspect_command(dir: &Path, out: Option<&Path>, attention: Option<&Path>, force: bool) -> crate::Result<String> {
    if let Some(existing) = [out, attention].into_iter().flatten().find(|o| o.exists() && !force) {
        return Err(format!("{}: already exists (pass --force to replace it)", existing.display()).into());
    }
    let (cfg, method, tr, te, norm) = load_run(dir, None, None)?;
    if let Some(path) = attention {
        let images = fixed_images(&te, PICTURE_IMAGES)?;
        if !write_attention_picture(method.encoder(), &images, norm, path)? {
            return Err(
                format!("--attention: the encoder of {} ({}) is not a ViT that sees whole images", dir.display(), cfg.encoder).into()
            );
        }
    }
    let diagnostics = Diagnostics::new(&cfg, &tr, &te, norm, &method.data_recipe())?;
    let start = std::time::Instant::now();
    let features = diagnostics.encode_held_out(method.encoder())?;
    let measured = diagnostics.measure(method.as_ref(), &features)?;
    let mut record = measured.to_json();
    record["run"] = json!(dir.display().to_string());
    record["method"] = json!(cfg.method);
    record["held_out_images"] = json!(diagnostics.held_out().len());
    record["diagnostics_seconds"] = json!(start.elapsed().as_secs_f64());
    if let Some(path) = attention {
        record["attention_picture"] = json!(path.display().to_string());
    }
    let line = record.to_string();
    if let Some(out) = out {
        crate::train::write_atomic(out, format!("{line}\n").as_bytes())?;
    }
    if let Some(w) = measured.collapse_warning() {
        eprintln!("{w}");
    }
    Ok(line)
}
