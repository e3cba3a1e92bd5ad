//! A finished (or interrupted) run folder brought back: its config, its method with the saved
//! weights, and its datasets — what `eval`, `embed`, `zero-shot`, `reconstruct` and `inspect`
//! start from.

use super::assemble::{build_method, device_of, load_splits};
use super::config::Config;
use crate::data::Dataset;
use crate::methods::Method;
use crate::train::load_model_state;
use std::path::Path;
use tessera_engine::Device;

/// A saved run brought back: its configuration, its method with the saved weights, its
/// train and test sets, and the pixel statistics it trained with.
pub(crate) type LoadedRun = (Config, Box<dyn Method>, Dataset, Dataset, (f32, f32));

/// Rebuilds a run's method from its folder and loads its weights.
pub(crate) fn load_run(dir: &Path, dataset: Option<&str>, pool: Option<&str>) -> crate::Result<LoadedRun> {
    let p = dir.join("config.toml");
    let mut cfg = Config::read_file(&p)?;
    if let Some(d) = dataset {
        cfg.dataset = d.to_string();
    }
    if let Some(pool) = pool {
        cfg.pool = pool.to_string();
    }
    cfg.resolve().map_err(|e| format!("{}: {e}", p.display()))?;
    super::configure_matmul_threads(&cfg.encoder);
    let (tr, te) = load_splits(&cfg)?;
    let [c, h, _] = tr.image_shape();
    let method = build_method(&cfg, c, h, &tr, Some(dir))?;
    // Evaluate on the run's device where there is one here, else on the host.
    method.to_device(device_of(&cfg).unwrap_or(Device::Cpu))?;
    load_model_state(dir, method.as_ref())?;
    let norm = tr.pixel_stats();
    Ok((cfg, method, tr, te, norm))
}
