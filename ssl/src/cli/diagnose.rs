//! The representation diagnostics a run logs every epoch (into `metrics.jsonl` and the
//! epoch line), on the encoder features of a fixed held-out set: the first test images.

use crate::eval::{effective_rank, singular_values, spread, uniformity};
use tessera_engine::Tensor;

/// Held-out images the diagnostics use: enough for a stable rank and uniformity, few enough
/// to cost little beside an epoch (uniformity is quadratic in them).
pub const DIAGNOSTIC_IMAGES: usize = 512;

/// `rankme` (effective rank of the features), `uniformity` (t = 2), `collapse_std` (mean
/// per-dimension std of the L2-normalized features; `uniform_std` = 1/√D is its value for a
/// uniform spread) and `dead_dims` (the fraction of dimensions with almost no spread).
pub fn epoch_diagnostics(features: &Tensor) -> Result<Vec<(String, f64)>, String> {
    let e = |e: tessera_engine::Error| e.to_string();
    let sv = singular_values(features).map_err(e)?;
    let s = spread(features).map_err(e)?;
    Ok(vec![
        ("rankme".into(), effective_rank(&sv)),
        ("uniformity".into(), uniformity(features, 2.0).map_err(e)?),
        ("collapse_std".into(), s.mean_std),
        ("uniform_std".into(), s.uniform_std),
        ("dead_dims".into(), s.dead_fraction),
    ])
}
