//! Layer norm and training-mode batch norm with the engine's fused kernels.

use crate::autocast;
use crate::{Result, Var};
use tessera_engine::Tensor;

/// Normalizes over the last dim, then scales and shifts by `weight`/`bias` of shape `[D]`.
pub fn layer_norm(x: &Var, weight: Option<&Var>, bias: Option<&Var>, eps: f64) -> Result<Var> {
    if let Some([Some(x), w, b]) = autocast::widened([Some(x), weight, bias])? {
        return layer_norm(&x, w.as_ref(), b.as_ref(), eps);
    }
    let xv = x.value();
    let (wv, bv) = (weight.map(Var::value), bias.map(Var::value));
    let (y, mean, rstd) = xv.layer_norm(wv.as_ref(), bv.as_ref(), eps)?;
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    let (has_w, has_b) = (weight.is_some(), bias.is_some());
    let lead: Vec<isize> = (0..xv.rank() as isize - 1).collect();
    Ok(Var::from_op("layer_norm", y, &inputs, move |g, needs| {
        let (dx, xhat) = xv.layer_norm_backward(g, &mean, &rstd, wv.as_ref())?;
        let mut out = vec![needs[0].then_some(dx)];
        if has_w {
            out.push(needs[1].then(|| g.mul(&xhat)?.sum(&lead, false)).transpose()?);
        }
        if has_b {
            out.push(needs[out.len()].then(|| g.sum(&lead, false)).transpose()?);
        }
        Ok(out)
    }))
}

/// The result of [`batch_norm`]: the normalized output and the batch statistics a layer
/// folds into its running estimates.
pub struct BatchNormOutput {
    pub output: Var,
    /// Batch mean per channel `[C]`.
    pub mean: Tensor,
    /// Biased batch variance per channel `[C]` (PyTorch updates running_var with the
    /// unbiased one: multiply by `n / (n - 1)`).
    pub var: Tensor,
    /// Values per channel the statistics were computed over (`N · H · W`).
    pub count: usize,
}

/// Training-mode batch norm of `x [N, C, ...]` with batch statistics.
pub fn batch_norm(x: &Var, weight: Option<&Var>, bias: Option<&Var>, eps: f64) -> Result<BatchNormOutput> {
    batch_norm_act(x, weight, bias, eps, false)
}

/// `relu(batch_norm(x))` as one op: one pass forward and one backward, and only `x` is kept
/// for the backward (the pre-activation is not stored; its sign is recomputed).
pub fn batch_norm_relu(x: &Var, weight: Option<&Var>, bias: Option<&Var>, eps: f64) -> Result<BatchNormOutput> {
    batch_norm_act(x, weight, bias, eps, true)
}

fn batch_norm_act(x: &Var, weight: Option<&Var>, bias: Option<&Var>, eps: f64, relu: bool) -> Result<BatchNormOutput> {
    if let Some([Some(x), w, b]) = autocast::widened([Some(x), weight, bias])? {
        return batch_norm_act(&x, w.as_ref(), b.as_ref(), eps, relu);
    }
    let xv = x.value();
    let stats = xv.batch_norm_stats(eps)?;
    let (wv, bv) = (weight.map(Var::value), bias.map(Var::value));
    let y = if relu {
        xv.batch_norm_relu_apply(&stats.mean, &stats.rstd, wv.as_ref(), bv.as_ref())?
    } else {
        xv.batch_norm_apply(&stats.mean, &stats.rstd, wv.as_ref(), bv.as_ref())?
    };
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    let (has_w, has_b) = (weight.is_some(), bias.is_some());
    let (mean, rstd) = (stats.mean.clone(), stats.rstd.clone());
    let count = xv.numel() / xv.shape()[1].max(1);
    let name = if relu { "batch_norm_relu" } else { "batch_norm" };
    let output = Var::from_op(name, y, &inputs, move |g, needs| {
        let (dx, dw, db) = if relu {
            xv.batch_norm_relu_backward(g, &mean, &rstd, wv.as_ref(), bv.as_ref())?
        } else {
            xv.batch_norm_backward(g, &mean, &rstd, wv.as_ref())?
        };
        let mut out = vec![needs[0].then_some(dx)];
        if has_w {
            out.push(needs[1].then_some(dw));
        }
        if has_b {
            out.push(needs[out.len()].then_some(db));
        }
        Ok(out)
    });
    Ok(BatchNormOutput { output, mean: stats.mean, var: stats.var, count })
}
