//! A run's checkpoint: one file, `checkpoint.safetensors`, holding everything needed to
//! continue — the method's whole state (weights, momentum encoders, queues, buffers) under
//! `model.`, the optimizer's under `optimizer.`, the online probe's under `probe.`, and the
//! position in the schedule as metadata. It is written through a temporary file and a
//! rename, so a crash leaves either the previous checkpoint or the new one, never new
//! weights paired with an old step count.
//!
//! After each checkpoint the method's state dict is also exported as `model.safetensors`
//! (loadable with `safetensors.torch.load_file`); resuming never reads that export.

use super::{OnlineProbe, Result, RunDir, TrainState};
use crate::methods::Method;
use crate::nn::checkpoint::{load_tensors, save_tensors, with_prefix_stripped};
use crate::nn::{load_model_prefixed, load_state_dict, save_model, Optim};
use std::collections::HashMap;
use tessera_engine::Tensor;

/// The checkpoint's file name inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The weights-only export written beside it.
pub const MODEL_EXPORT: &str = "model.safetensors";
const FORMAT: &str = "tessera-checkpoint-1";

fn prefixed(prefix: &str, tensors: Vec<(String, Tensor)>) -> impl Iterator<Item = (String, Tensor)> + '_ {
    tensors.into_iter().map(move |(n, t)| (format!("{prefix}.{n}"), t))
}

/// Writes the checkpoint atomically, then the model export.
pub fn save_checkpoint(run: &RunDir, method: &dyn Method, opt: &dyn Optim, probe: Option<&OnlineProbe>, state: &TrainState) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = prefixed("model", method.state_dict()).collect();
    tensors.extend(prefixed("optimizer", opt.state_tensors()));
    if let Some(p) = probe {
        tensors.extend(prefixed("probe", p.state_tensors()));
    }
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("method".to_string(), method.name().to_string()),
        ("state".to_string(), serde_json::to_string(state)?),
    ]);
    save_tensors(run.path(CHECKPOINT_FILE), &tensors, Some(meta))?;
    save_model(run.path(MODEL_EXPORT), method).map_err(crate::Error::msg)
}

/// Restores a run from its checkpoint. `Ok(None)` when the run has none yet (it stopped
/// before its first one): training starts again from step 0.
pub fn load_checkpoint(
    run: &RunDir,
    method: &dyn Method,
    opt: &mut dyn Optim,
    probe: Option<&mut OnlineProbe>,
) -> Result<Option<TrainState>> {
    let path = run.path(CHECKPOINT_FILE);
    if !path.exists() {
        if run.path("state.json").exists() {
            return Err(format!(
                "{}: this run was written by an older tessera (model, optimizer and state.json); start it again",
                run.root.display()
            )
            .into());
        }
        return Ok(None);
    }
    let (tensors, meta) = load_tensors(&path).map_err(|e| crate::one_line(&e.to_string()))?;
    let bad = |msg: String| crate::Error::msg(format!("{}: {}", path.display(), crate::one_line(&msg)));
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!("not a tessera checkpoint (format {:?})", meta.get("format"))));
    }
    let state: TrainState = serde_json::from_str(meta.get("state").ok_or_else(|| bad("no training state in the metadata".into()))?)
        .map_err(|e| bad(format!("the training state in the metadata: {e}")))?;
    load_state_dict(method, &with_prefix_stripped(&tensors, "model."), true).map_err(|r| bad(format!("the model does not match: {r}")))?;
    opt.load_state_tensors(&with_prefix_stripped(&tensors, "optimizer."))
        .map_err(|r| bad(format!("the optimizer state does not match: {r}")))?;
    if let Some(p) = probe {
        let saved = with_prefix_stripped(&tensors, "probe.");
        if !saved.is_empty() {
            p.load_state_tensors(&saved).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(Some(state))
}

/// Loads the model part of a run's checkpoint into `method` (for `eval` and `embed`).
pub fn load_model_state(run_root: &std::path::Path, method: &dyn Method) -> Result<()> {
    let path = run_root.join(CHECKPOINT_FILE);
    if !path.exists() {
        return Err(format!("{}: no checkpoint (the run has not finished an epoch or a --max-steps stop yet)", path.display()).into());
    }
    load_model_prefixed(&path, method, "model.").map_err(crate::Error::msg)
}
