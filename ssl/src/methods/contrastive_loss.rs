//! MoCo v3's contrastive loss over in-batch keys (Chen, Xie, He 2021, Algorithm 1),
//! gradient-checked in `tests/ssl_gradcheck.rs`.

use super::moco_loss::l2_normalize_rows;
use tessera_autograd::{fused, Result, Var};
use tessera_engine::{DType, Error, Tensor};

/// `ctr(q, k)` of MoCo v3: both L2-normalized, logits `q kᵀ / τ` (`[N, N]`), cross-entropy
/// toward the diagonal (key `i` is query `i`'s positive, the other keys of the batch its
/// negatives), multiplied by `2τ` as the reference code does. `k` comes from the momentum
/// encoder and is a constant: the gradient flows to `q` only.
pub fn contrastive_loss(q: &Var, k: &Tensor, temperature: f64) -> Result<Var> {
    let (qs, ks) = (q.shape(), k.shape());
    if qs.len() != 2 || qs[0] == 0 || ks != qs.as_slice() {
        return Err(Error::shapes_hint("contrastive_loss", &qs, ks, "q and k must both be [N, d] with N ≥ 1").into());
    }
    if !(temperature > 0.0) {
        return Err(Error::invalid("contrastive_loss", format!("the temperature must be positive, got {temperature}")).into());
    }
    let n = qs[0];
    let kn = l2_normalize_rows(k)?;
    let logits = q.normalize(1, 1e-12)?.matmul(&Var::constant(kn.t()?))?.mul_scalar(1.0 / temperature)?;
    let targets = Tensor::arange(0.0, n as f64, 1.0, DType::I64)?.to_device(q.value().device())?;
    fused::cross_entropy(&logits, &targets, 0.0)?.mul_scalar(2.0 * temperature)
}
