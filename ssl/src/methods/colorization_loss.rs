//! Colorization's class-rebalanced multinomial loss (Zhang, Isola, Efros 2016, Eq. 2),
//! gradient-checked in `tests/ssl_gradcheck.rs`.

use tessera_autograd::{fused, Result, Var};
use tessera_engine::Error;
use tessera_engine::Tensor;

/// `mean_i w_i · Σ_q −Z_iq · log softmax(logits_i)_q` over N pixels: `logits [N, Q]` the
/// per-pixel classifier's outputs, `targets [N, Q]` the soft-encoded ab of each pixel (rows
/// summing to 1), `weights [N]` each pixel's rebalancing weight (the weight of its nearest
/// bin). Targets and weights are constants: the gradient flows to the logits only.
pub fn colorization_loss(logits: &Var, targets: &Tensor, weights: &Tensor) -> Result<Var> {
    let ls = logits.shape();
    if ls.len() != 2 || targets.shape() != ls.as_slice() {
        return Err(Error::shapes_hint("colorization_loss", &ls, targets.shape(), "logits and targets must both be [N, Q]").into());
    }
    if weights.shape() != [ls[0]] {
        return Err(Error::shapes_hint("colorization_loss", &ls, weights.shape(), format!("weights must be [N] = [{}]", ls[0])).into());
    }
    // Scaling each target row by its weight scales that row's cross-entropy (and its
    // gradient, softmax·Σq − q) by the same factor.
    let scaled = targets.mul(&weights.to_dtype(targets.dtype())?.unsqueeze(1)?)?;
    fused::cross_entropy_soft(logits, &scaled)
}
