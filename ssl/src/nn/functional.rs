//! Differentiable ops the layers need that the autograd crate does not provide, built with
//! [`Var::from_op`] and a backward rule beside each forward.

use tessera_autograd::{Result, Var};
use tessera_engine::Tensor;

/// Eval-mode batch norm of `x [N, C, ...]` with fixed statistics `mean`, `var` `[C]`:
/// `(x - mean) / √(var + eps) · weight + bias` in one pass. Gradients flow to `x`, `weight`
/// and `bias` (the statistics are constants).
pub fn batch_norm_eval(x: &Var, mean: &Tensor, var: &Tensor, weight: Option<&Var>, bias: Option<&Var>, eps: f64) -> Result<Var> {
    let xv = x.value();
    let rstd = var.add_scalar(eps)?.rsqrt()?;
    let (wv, bv) = (weight.map(Var::value), bias.map(Var::value));
    let y = xv.batch_norm_apply(mean, &rstd, wv.as_ref(), bv.as_ref())?;
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    let (has_w, has_b) = (weight.is_some(), bias.is_some());
    let mean = mean.clone();
    let axes: Vec<isize> = (0..xv.rank() as isize).filter(|&a| a != 1).collect();
    Ok(Var::from_op("batch_norm_eval", y, &inputs, move |g, needs| {
        let scale = match &wv {
            Some(w) => rstd.mul(w)?,
            None => rstd.clone(),
        };
        let mut out = vec![needs[0].then(|| g.batch_norm_apply(&scale.zeros_like()?, &scale, None, None)).transpose()?];
        if has_w {
            let xhat = || xv.batch_norm_apply(&mean, &rstd, None, None);
            out.push(needs[1].then(|| g.mul(&xhat()?)?.sum(&axes, false)).transpose()?);
        }
        if has_b {
            out.push(needs[out.len()].then(|| g.sum(&axes, false)).transpose()?);
        }
        Ok(out)
    }))
}
