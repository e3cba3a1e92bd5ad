//! A linear layer's product and bias as one op: `x @ wᵀ + b`, recorded once, with the bias
//! added inside the GEMM on the CPU (`Tensor::linear`).

use crate::{autocast, Result, Var};

/// `x @ weightᵀ + bias` for `x` `[rows, in]`, `weight` `[out, in]` and `bias` `[out]`.
/// Backward: `dx = g·w`, `dw = gᵀ·x`, `db = Σ_rows g`, each computed only when needed.
/// Under autocast the f32 operands, the bias included, are cast to the autocast dtype first,
/// as for `matmul` (PyTorch's autocast linear keeps the bias in that dtype too).
pub fn linear(x: &Var, weight: &Var, bias: Option<&Var>) -> Result<Var> {
    if let Some([Some(x), Some(w), b]) = autocast::lowered([Some(x), Some(weight), bias])? {
        return linear(&x, &w, b.as_ref());
    }
    let (xv, wv) = (x.value(), weight.value());
    let y = xv.linear(&wv, bias.map(|b| b.value()).as_ref())?;
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    Ok(Var::from_op("linear", y, &inputs, move |g, needs| {
        let gx = needs[0].then(|| g.matmul(&wv)).transpose()?;
        let gw = needs[1].then(|| g.t()?.matmul(&xv)).transpose()?;
        let mut grads = vec![gx, gw];
        if let Some(&need_bias) = needs.get(2) {
            grads.push(need_bias.then(|| g.sum_to_shape(&[g.shape()[1]])).transpose()?);
        }
        Ok(grads)
    }))
}
