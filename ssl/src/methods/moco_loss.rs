//! MoCo's InfoNCE over a queue of negatives (He et al. 2020, Algorithm 1), in the reference
//! code's convention, gradient-checked in `tests/ssl_gradcheck.rs`.

use tessera_autograd::{fused, Result, Var};
use tessera_engine::{DType, Error, Tensor};

/// MoCo's InfoNCE loss. `q [N, d]` are the query projections (L2-normalized here), `k [N, d]`
/// the positive keys and `queue [K, d]` the negatives, both already unit-length and
/// constants: the gradient flows to `q` only. Logits are `[q·k₊, q·queueᵀ] / τ` (`[N, 1 + K]`)
/// and the loss is the cross-entropy with the positive at index 0, averaged over the batch.
pub fn moco_infonce(q: &Var, k: &Tensor, queue: &Tensor, temperature: f64) -> Result<Var> {
    let (qs, ks, queue_s) = (q.shape(), k.shape(), queue.shape());
    if qs.len() != 2 || qs[0] == 0 || ks != qs.as_slice() {
        return Err(Error::shapes_hint("moco_infonce", &qs, ks, "q and k must both be [N, d] with N ≥ 1").into());
    }
    if queue_s.len() != 2 || queue_s[1] != qs[1] {
        return Err(Error::shapes_hint("moco_infonce", &qs, queue_s, "the queue must be [K, d] with q's width d").into());
    }
    if !(temperature > 0.0) {
        return Err(Error::invalid("moco_infonce", format!("the temperature must be positive, got {temperature}")).into());
    }
    let qn = q.normalize(1, 1e-12)?;
    let positive = qn.mul(&Var::constant(k.clone()))?.sum(&[1], true)?;
    let negatives = qn.matmul(&Var::constant(queue.t()?))?;
    let logits = Var::cat(&[&positive, &negatives], 1)?.mul_scalar(1.0 / temperature)?;
    let targets = Tensor::zeros(&[qs[0]], DType::I64)?.to_device(q.value().device())?;
    fused::cross_entropy(&logits, &targets, 0.0)
}

/// Rows scaled to unit length (`F.normalize(x, dim=1)`), for keys and queue entries.
pub fn l2_normalize_rows(x: &Tensor) -> tessera_engine::Result<Tensor> {
    x.div(&x.square()?.sum(&[1], true)?.sqrt()?.clamp(1e-12, f64::INFINITY)?)
}
