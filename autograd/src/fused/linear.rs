//! A linear layer's product and bias as one op: `x @ wᵀ + b`, recorded once, with the bias
//! added inside the GEMM on the CPU (`Tensor::linear`).

use crate::{autocast, Result, Var};
use tessera_engine::{Tensor, UnaryOp};

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
        with_bias_grad(vec![gx, gw], g, needs)
    }))
}

/// `op(h) @ weightᵀ + bias`: a linear layer of an activation (a transformer MLP's second
/// layer, `fc2(gelu(h))`) that saves `h` alone and recomputes `op(h)` in its backward.
/// `gelu` then [`linear`] save both: the activation's input for its derivative and its
/// output for the weight gradient. This keeps one hidden-width tensor less per MLP until
/// backward (37.5 MiB per block of a ViT-Tiny at batch 256: 450 MiB of a SimMIM step) for
/// one more elementwise pass in the backward. The same values and gradients as the two ops,
/// bit for bit (the same kernels on the same inputs).
///
/// Under autocast it runs as those two ops (the activation in `h`'s dtype, the product in
/// the autocast dtype), which is what the recomputation would otherwise have to reproduce.
pub fn linear_of_activation(h: &Var, op: UnaryOp, weight: &Var, bias: Option<&Var>) -> Result<Var> {
    if autocast::autocast_dtype().is_some() || !op.is_differentiable() {
        return linear(&h.unary(op)?, weight, bias);
    }
    let (hv, wv) = (h.value(), weight.value());
    let y = hv.unary(op)?.linear(&wv, bias.map(|b| b.value()).as_ref())?;
    let mut inputs = vec![h, weight];
    inputs.extend(bias);
    Ok(Var::from_op("linear_of_activation", y, &inputs, move |g, needs| {
        // With `h`'s gradient wanted, the activation and its derivative come from one pass.
        let (a, gh) = if needs[0] {
            let (a, gh) = hv.unary_with_backward(op, &g.matmul(&wv)?)?;
            (a, Some(gh))
        } else {
            (hv.unary(op)?, None)
        };
        let gw = needs[1].then(|| g.t()?.matmul(&a)).transpose()?;
        with_bias_grad(vec![gh, gw], g, needs)
    }))
}

/// `grads` (the input's and the weight's) followed by the bias's, `Σ_rows g`, where the op
/// has a bias (a third input) and it needs one.
fn with_bias_grad(mut grads: Vec<Option<Tensor>>, g: &Tensor, needs: &[bool]) -> tessera_engine::Result<Vec<Option<Tensor>>> {
    if let Some(&need_bias) = needs.get(2) {
        grads.push(need_bias.then(|| g.sum_to_shape(&[g.shape()[1]])).transpose()?);
    }
    Ok(grads)
}
