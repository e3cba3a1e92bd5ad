//! Scaled dot-product attention with optional causal and key-padding masks, fused: the
//! backward reuses the saved attention probabilities instead of a recorded chain of ops.

use crate::autocast;
use crate::{Result, Var};
use tessera_engine::{DType, Tensor};

/// `softmax(q·kᵀ / √d + mask) · v` for `q [..., Lq, D]`, `k [..., Lk, D]`, `v [..., Lk, Dv]`
/// (leading dims broadcast, typically `[B, H]`). `causal` hides keys after each query;
/// `key_padding_mask` is a u8 `[B, Lk]` where 1 marks a padded key to ignore. A query row
/// whose keys are all masked yields NaN, as in PyTorch.
pub fn scaled_dot_product_attention(q: &Var, k: &Var, v: &Var, causal: bool, key_padding_mask: Option<&Tensor>) -> Result<Var> {
    if let Some([Some(q), Some(k), Some(v)]) = autocast::lowered([Some(q), Some(k), Some(v)])? {
        return scaled_dot_product_attention(&q, &k, &v, causal, key_padding_mask);
    }
    let (qv, kv, vv) = (q.value(), k.value(), v.value());
    if vv.rank() < 2 {
        return Err(tessera_engine::Error::shapes_hint(
            "scaled_dot_product_attention",
            qv.shape(),
            vv.shape(),
            "v needs a shape [..., L, Dv]",
        )
        .into());
    }
    let p = attention_probabilities(&qv, &kv, causal, key_padding_mask)?;
    let scale = 1.0 / (qv.shape()[qv.rank() - 1] as f64).sqrt();
    let out = p.matmul(&vv)?;
    Ok(Var::from_op("scaled_dot_product_attention", out, &[q, k, v], move |g, needs| {
        let dp = g.matmul(&vv.t()?)?;
        let ds = p.softmax_backward(&dp, -1)?.mul_scalar(scale)?;
        Ok(vec![
            needs[0].then(|| ds.matmul(&kv)?.sum_to_shape(qv.shape())).transpose()?,
            needs[1].then(|| ds.t()?.matmul(&qv)?.sum_to_shape(kv.shape())).transpose()?,
            needs[2].then(|| p.t()?.matmul(g)?.sum_to_shape(vv.shape())).transpose()?,
        ])
    }))
}

/// The attention probabilities `softmax(q·kᵀ / √d + mask)`, `[..., Lq, Lk]`, of
/// [`scaled_dot_product_attention`] (same masks, same rows summing to 1), as plain tensors:
/// what a diagnostic reads to see where each query looks, with no graph and no extra cost
/// on the training forward.
pub fn attention_probabilities(qv: &Tensor, kv: &Tensor, causal: bool, key_padding_mask: Option<&Tensor>) -> Result<Tensor> {
    if qv.rank() < 2 || kv.rank() < 2 || qv.shape()[qv.rank() - 1] != kv.shape()[kv.rank() - 1] {
        return Err(tessera_engine::Error::shapes_hint(
            "scaled_dot_product_attention",
            qv.shape(),
            kv.shape(),
            "q and k need shapes [..., L, D] with the same D",
        )
        .into());
    }
    let (lq, lk) = (qv.shape()[qv.rank() - 2], kv.shape()[kv.rank() - 2]);
    let scale = 1.0 / (qv.shape()[qv.rank() - 1] as f64).sqrt();
    let mut scores = qv.matmul(&kv.t()?)?.mul_scalar(scale)?;
    let mut mask: Option<Tensor> = None;
    if causal {
        let m: Vec<u8> = (0..lq * lk).map(|i| u8::from(i % lk > i / lk + lk.saturating_sub(lq))).collect();
        mask = Some(Tensor::from_vec(m, &[lq, lk])?.to_device(qv.device())?);
    }
    if let Some(kp) = key_padding_mask {
        if kp.dtype() != DType::U8 || kp.rank() != 2 || kp.shape()[1] != lk {
            return Err(tessera_engine::Error::shapes_hint(
                "scaled_dot_product_attention",
                kv.shape(),
                kp.shape(),
                format!("key_padding_mask must be u8 [B, {lk}]"),
            )
            .into());
        }
        let kp = kp.reshape_to(&[kp.shape()[0], 1, 1, lk])?;
        mask = Some(match mask {
            Some(m) => m.maximum_u8(&kp)?,
            None => kp,
        });
    }
    if let Some(m) = &mask {
        let neg_inf = Tensor::full_on(&[], f64::NEG_INFINITY, scores.dtype(), scores.device())?;
        scores = Tensor::where_(m, &neg_inf, &scores)?;
    }
    Ok(scores.softmax(-1)?)
}

trait MaskOr {
    fn maximum_u8(&self, other: &Tensor) -> tessera_engine::Result<Tensor>;
}

impl MaskOr for Tensor {
    /// Elementwise OR of two broadcastable u8 masks.
    fn maximum_u8(&self, other: &Tensor) -> tessera_engine::Result<Tensor> {
        let one = Tensor::full_on(&[], 1.0, tessera_engine::DType::U8, self.device())?;
        let a = self.eq(&one)?;
        Tensor::where_(&a, &a, &other.eq(&one)?)
    }
}
