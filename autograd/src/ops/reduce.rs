//! Reductions, softmax and log_softmax.

use crate::autocast;
use crate::{Result, Var};
use tessera_engine::layout::normalize_axes;
use tessera_engine::{ReduceOp, Tensor};

/// The gradient of a reduction's output, reshaped to keepdim form and broadcast back over
/// the input's shape.
fn spread(g: &Tensor, in_shape: &[usize], axes: &[usize]) -> tessera_engine::Result<Tensor> {
    let keep: Vec<usize> = (0..in_shape.len()).map(|d| if axes.contains(&d) { 1 } else { in_shape[d] }).collect();
    g.reshape_to(&keep)?.expand(in_shape)
}

impl Var {
    /// Reduces `axes` (all when empty) with `op`; `keepdim` keeps them as size 1.
    pub fn reduce(&self, op: ReduceOp, axes: &[isize], keepdim: bool) -> Result<Var> {
        // Sums and their kin accumulate in f32 under autocast; max and min are exact anyway.
        if !matches!(op, ReduceOp::Max | ReduceOp::Min) {
            if let Some([Some(x)]) = autocast::widened([Some(self)])? {
                return x.reduce(op, axes, keepdim);
            }
        }
        let x = self.value();
        let out = x.reduce(op, axes, keepdim)?;
        let ax = normalize_axes(op.name(), axes, x.shape())?;
        let n: usize = ax.iter().map(|&a| x.shape()[a]).product();
        let in_shape = x.shape().to_vec();
        // A sum or mean needs only the input's shape: keeping its value would hold the whole
        // input until backward (a loss's mean over a batch of pixels). The others read the
        // input, and a log-sum-exp its output too.
        let x = (!matches!(op, ReduceOp::Sum | ReduceOp::Mean)).then_some(x);
        let y = matches!(op, ReduceOp::LogSumExp).then(|| out.clone());
        let axes = axes.to_vec();
        Ok(Var::from_op(op.name(), out, &[self], move |g, _| {
            let gx = match (op, &x, &y) {
                (ReduceOp::Sum, _, _) => spread(g, &in_shape, &ax)?,
                (ReduceOp::Mean, _, _) => spread(&g.div_scalar(n as f64)?, &in_shape, &ax)?,
                (ReduceOp::Max | ReduceOp::Min, Some(x), _) => {
                    let mask = x.extreme_mask(&axes, op == ReduceOp::Max)?.to_dtype(x.dtype())?;
                    mask.mul(&spread(g, &in_shape, &ax)?)?
                }
                (ReduceOp::Var { unbiased }, Some(x), _) => {
                    let mean = x.mean(&axes, true)?;
                    let denom = n as f64 - if unbiased { 1.0 } else { 0.0 };
                    x.sub(&mean)?.mul_scalar(2.0 / denom)?.mul(&spread(g, &in_shape, &ax)?)?
                }
                (ReduceOp::LogSumExp, Some(x), Some(y)) => {
                    let y = spread(y, &in_shape, &ax)?;
                    x.sub(&y)?.exp()?.mul(&spread(g, &in_shape, &ax)?)?
                }
                _ => return Err(tessera_engine::Error::invalid(op.name(), "backward: the input was not saved")),
            };
            Ok(vec![Some(gx)])
        }))
    }

    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::Sum, axes, keepdim)
    }
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::Mean, axes, keepdim)
    }
    /// Maximum; the gradient goes to the first maximal element of each reduced row.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::Max, axes, keepdim)
    }
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::Min, axes, keepdim)
    }
    pub fn var(&self, axes: &[isize], unbiased: bool, keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::Var { unbiased }, axes, keepdim)
    }
    pub fn logsumexp(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        self.reduce(ReduceOp::LogSumExp, axes, keepdim)
    }
    /// Sum of all elements (0-d).
    pub fn sum_all(&self) -> Result<Var> {
        self.sum(&[], false)
    }
    /// Mean of all elements (0-d).
    pub fn mean_all(&self) -> Result<Var> {
        self.mean(&[], false)
    }

    pub fn softmax(&self, axis: isize) -> Result<Var> {
        if let Some([Some(x)]) = autocast::widened([Some(self)])? {
            return x.softmax(axis);
        }
        let y = self.value().softmax(axis)?;
        let saved = y.clone();
        Ok(Var::from_op("softmax", y, &[self], move |g, _| Ok(vec![Some(saved.softmax_backward(g, axis)?)])))
    }

    pub fn log_softmax(&self, axis: isize) -> Result<Var> {
        if let Some([Some(x)]) = autocast::widened([Some(self)])? {
            return x.log_softmax(axis);
        }
        let y = self.value().log_softmax(axis)?;
        let saved = y.clone();
        Ok(Var::from_op("log_softmax", y, &[self], move |g, _| Ok(vec![Some(saved.log_softmax_backward(g, axis)?)])))
    }

    /// `self / max(‖self‖₂, eps)` along `axis` (PyTorch's `F.normalize`).
    pub fn normalize(&self, axis: isize, eps: f64) -> Result<Var> {
        let norm = self.square()?.sum(&[axis], true)?.sqrt()?.clamp(eps, f64::INFINITY)?;
        self.div(&norm)
    }
}
