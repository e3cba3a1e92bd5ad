//! Joining, padding, rotating and tiling: cat's gradient is split back by size; pad's is the
//! engine's fused pad_backward; rot90's is the opposite rotation; repeat's sums the tiles.

use crate::{autocast, Result, Var};
use tessera_engine::layout::normalize_axis;
use tessera_engine::ops::shape::PadMode;
use tessera_engine::Tensor;

impl Var {
    /// Joins vars along an existing axis. Under autocast, operands of different float
    /// dtypes meet at the widest (as PyTorch's autocast promotes `cat`).
    pub fn cat(vars: &[&Var], axis: isize) -> Result<Var> {
        if let Some(vars) = autocast::promoted_all(vars)? {
            return Var::cat(&vars.iter().collect::<Vec<_>>(), axis);
        }
        let values: Vec<Tensor> = vars.iter().map(|v| v.value()).collect();
        let refs: Vec<&Tensor> = values.iter().collect();
        let out = Tensor::cat(&refs, axis)?;
        let a = normalize_axis("cat", axis, out.shape())?;
        let sizes: Vec<usize> = values.iter().map(|t| t.shape()[a]).collect();
        Ok(Var::from_op("cat", out, vars, move |g, needs| {
            let parts = g.split(&sizes, a as isize)?;
            Ok(parts.into_iter().zip(needs).map(|(p, &n)| n.then_some(p)).collect())
        }))
    }

    /// Joins vars along a new axis (promoted under autocast as [`Var::cat`]).
    pub fn stack(vars: &[&Var], axis: isize) -> Result<Var> {
        if let Some(vars) = autocast::promoted_all(vars)? {
            return Var::stack(&vars.iter().collect::<Vec<_>>(), axis);
        }
        let values: Vec<Tensor> = vars.iter().map(|v| v.value()).collect();
        let refs: Vec<&Tensor> = values.iter().collect();
        let out = Tensor::stack(&refs, axis)?;
        let a = normalize_axis("stack", axis, out.shape())?;
        let n = values.len();
        Ok(Var::from_op("stack", out, vars, move |g, needs| {
            (0..n).map(|i| needs[i].then(|| g.select(a as isize, i)).transpose()).collect()
        }))
    }

    /// Pads the trailing axes (`pads[i] = (before, after)`, natural axis order).
    pub fn pad(&self, pads: &[(usize, usize)], mode: PadMode) -> Result<Var> {
        let out = self.value().pad(pads, mode)?;
        let pads = pads.to_vec();
        Ok(Var::from_op("pad", out, &[self], move |g, _| Ok(vec![Some(g.pad_backward(&pads, mode)?)])))
    }

    /// Rotates by `k` quarter turns in the plane of `axes`.
    pub fn rot90(&self, k: i64, axes: (isize, isize)) -> Result<Var> {
        let out = self.value().rot90(k, axes)?;
        Ok(Var::from_op("rot90", out, &[self], move |g, _| Ok(vec![Some(g.rot90(-k, axes)?)])))
    }

    /// Tiles the tensor `reps[i]` times along each axis.
    pub fn repeat(&self, reps: &[usize]) -> Result<Var> {
        let x = self.value();
        let out = x.repeat(reps)?;
        let in_shape = x.shape().to_vec();
        Ok(Var::from_op("repeat", out, &[self], move |g, _| Ok(vec![Some(g.repeat_backward(&in_shape)?)])))
    }
}
