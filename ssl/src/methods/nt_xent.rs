//! NT-Xent (SimCLR's normalized temperature-scaled cross-entropy), fused: one forward over
//! the 2N×2N similarity matrix and a closed-form backward, gradient-checked in
//! `tests/ssl_losses.rs`.

use tessera_autograd::{Result, Var};
use tessera_engine::{Error, Tensor};

/// NT-Xent over `z [2N, d]`, where rows `i` and `i + N` are the two views of one image.
/// Rows are L2-normalized, logits are `z zᵀ / τ` with the diagonal (self-similarity)
/// removed; the positive of row `i` stays in its softmax's denominator, which has `2N − 1`
/// terms. The loss is the mean over all `2N` rows of the cross-entropy toward the positive.
pub fn nt_xent(z: &Var, temperature: f64) -> Result<Var> {
    let zv = z.value();
    if zv.rank() != 2 || zv.shape()[0] < 2 || !zv.shape()[0].is_multiple_of(2) {
        return Err(
            Error::invalid("nt_xent", format!("needs z of shape [2N, d] with N ≥ 1 (both views stacked), got {:?}", zv.shape())).into()
        );
    }
    if !(temperature > 0.0) {
        return Err(Error::invalid("nt_xent", format!("the temperature must be positive, got {temperature}")).into());
    }
    let rows = zv.shape()[0];
    let half = rows / 2;
    let norm = zv.square()?.sum(&[1], true)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    let zn = zv.div(&norm)?;
    let dev = zv.device();
    let eye = Tensor::eye(rows, tessera_engine::DType::U8)?.to_device(dev)?;
    let logits = zn.matmul(&zn.t()?)?.mul_scalar(1.0 / temperature)?.masked_fill(&eye, f64::NEG_INFINITY)?;
    let log_p = logits.log_softmax(1)?;
    // The positive of row i is row (i + N) mod 2N.
    let positives: Vec<i64> = (0..rows).map(|i| ((i + half) % rows) as i64).collect();
    let positives = Tensor::from_vec(positives, &[rows, 1])?.to_device(dev)?;
    let loss = log_p.gather(1, &positives)?.mean_all()?.neg()?;
    Ok(Var::from_op("nt_xent", loss, &[z], move |g, _| {
        // dL/dlogits = (softmax − onehot(positive)) / 2N, zero on the removed diagonal.
        let (zeros, ones) =
            (Tensor::full_on(&[rows, rows], 0.0, log_p.dtype(), dev)?, Tensor::full_on(&[rows, 1], 1.0, log_p.dtype(), dev)?);
        let one_hot = zeros.scatter_add(1, &positives, &ones)?;
        let d_logits = log_p.exp()?.sub(&one_hot)?.mul(g)?.mul_scalar(1.0 / rows as f64)?;
        // logits = zn znᵀ / τ  ⇒  dzn = (dL + dLᵀ) zn / τ
        let d_zn = d_logits.add(&d_logits.t()?)?.matmul(&zn)?.mul_scalar(1.0 / temperature)?;
        // zn = z / ‖z‖  ⇒  dz = (dzn − zn (zn · dzn)) / ‖z‖
        let radial = zn.mul(&d_zn)?.sum(&[1], true)?;
        Ok(vec![Some(d_zn.sub(&zn.mul(&radial)?)?.div(&norm)?)])
    }))
}
