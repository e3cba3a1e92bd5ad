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
    let (out, grads) = attend(&qv, &kv, &vv, causal, key_padding_mask)?;
    Ok(Var::from_op("scaled_dot_product_attention", out, &[q, k, v], move |g, needs| {
        let [dq, dk, dv] = grads.of(g, [needs[0], needs[1], needs[2]])?;
        Ok(vec![
            dq.map(|d| d.sum_to_shape(qv.shape())).transpose()?,
            dk.map(|d| d.sum_to_shape(kv.shape())).transpose()?,
            dv.map(|d| d.sum_to_shape(vv.shape())).transpose()?,
        ])
    }))
}

/// [`scaled_dot_product_attention`] of `q`, `k` and `v` stacked on the first axis of `qkv`
/// (`[3, ..., L, D]`: one projection split into heads, as timm's attention computes them).
/// The same values as attending to `qkv.select(0, i)`; the difference is the backward, which
/// writes the three gradients side by side into one `[3, ...]` tensor, where three `select`s
/// would each scatter theirs into a zeroed copy of the whole stack and add the three (zero
/// fills were 2% of a ViT-Tiny MAE step).
pub fn scaled_dot_product_attention_packed(qkv: &Var, causal: bool, key_padding_mask: Option<&Tensor>) -> Result<Var> {
    if let Some([Some(qkv)]) = autocast::lowered([Some(qkv)])? {
        return scaled_dot_product_attention_packed(&qkv, causal, key_padding_mask);
    }
    let packed = qkv.value();
    if packed.rank() < 3 || packed.shape()[0] != 3 {
        return Err(tessera_engine::Error::invalid(
            "scaled_dot_product_attention_packed",
            format!("expects q, k and v stacked as [3, ..., L, D], got {:?}", packed.shape()),
        )
        .into());
    }
    let (qv, kv, vv) = (packed.select(0, 0)?, packed.select(0, 1)?, packed.select(0, 2)?);
    let (out, grads) = attend(&qv, &kv, &vv, causal, key_padding_mask)?;
    Ok(Var::from_op("scaled_dot_product_attention_packed", out, &[qkv], move |g, _| {
        let [Some(dq), Some(dk), Some(dv)] = grads.of(g, [true; 3])? else { unreachable!("every gradient was asked for") };
        Ok(vec![Some(Tensor::stack(&[&dq, &dk, &dv], 0)?)])
    }))
}

/// Multi-head self-attention on the rows of a fused projection `qkv [B, L, 3·D]` (each
/// token's q, k and v side by side, each split into `heads` heads: timm's layout), the heads'
/// outputs side by side as `[B, L, D]`, ready for the output projection.
///
/// On the host in f32 and f64 this is one op ([`Tensor::attention_heads`]) that reads each
/// head where it lies and writes its gradient in `qkv`'s own layout; the composition it
/// replaces (split into `[3, B, H, L, Dh]` views, [`scaled_dot_product_attention_packed`],
/// merge the heads) copied the output and twice the stacked gradient, eight activations a
/// block. Elsewhere (a GPU, or f32 under autocast, which lowers the products) it is that
/// composition. Both give the same bits on the host.
pub fn multi_head_attention(qkv: &Var, heads: usize, causal: bool) -> Result<Var> {
    let (b, l, d) = tessera_engine::ops::attention::qkv_rows_shape("multi_head_attention", &qkv.shape(), heads)?;
    let value = qkv.value();
    let lowered = autocast::autocast_dtype().is_some() && value.dtype() == DType::F32;
    if value.is_cuda() || lowered || !matches!(value.dtype(), DType::F32 | DType::F64) {
        let packed = qkv.reshape_to(&[b, l, 3, heads, d / heads])?.permute(&[2, 0, 3, 1, 4])?;
        let o = scaled_dot_product_attention_packed(&packed, causal, None)?;
        return o.permute(&[0, 2, 1, 3])?.reshape_to(&[b, l, d]);
    }
    let (out, probs) = value.attention_heads(heads, causal)?;
    Ok(Var::from_op("multi_head_attention", out, &[qkv], move |g, _| Ok(vec![Some(value.attention_heads_backward(&probs, g, heads)?)])))
}

/// What the backward of attention keeps: the probabilities and the three inputs.
struct AttentionGrads {
    p: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    scale: f64,
}

impl AttentionGrads {
    /// The gradients of q, k and v (before any broadcast is summed back) for the output
    /// gradient `g`, each only where `needs` asks.
    fn of(&self, g: &Tensor, needs: [bool; 3]) -> tessera_engine::Result<[Option<Tensor>; 3]> {
        let dp = g.matmul(&self.v.t()?)?;
        let ds = self.p.softmax_backward(&dp, -1)?.mul_scalar(self.scale)?;
        Ok([
            needs[0].then(|| ds.matmul(&self.k)).transpose()?,
            needs[1].then(|| ds.t()?.matmul(&self.q)).transpose()?,
            needs[2].then(|| self.p.t()?.matmul(g)).transpose()?,
        ])
    }
}

/// The forward both entry points share: the output and what its backward needs.
fn attend(qv: &Tensor, kv: &Tensor, vv: &Tensor, causal: bool, key_padding_mask: Option<&Tensor>) -> Result<(Tensor, AttentionGrads)> {
    if vv.rank() < 2 {
        return Err(tessera_engine::Error::shapes_hint(
            "scaled_dot_product_attention",
            qv.shape(),
            vv.shape(),
            "v needs a shape [..., L, Dv]",
        )
        .into());
    }
    let p = attention_probabilities(qv, kv, causal, key_padding_mask)?;
    let scale = 1.0 / (qv.shape()[qv.rank() - 1] as f64).sqrt();
    let out = p.matmul(vv)?;
    Ok((out, AttentionGrads { p, q: qv.clone(), k: kv.clone(), v: vv.clone(), scale }))
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
