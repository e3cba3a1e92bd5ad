//! View and layout ops: the gradient of a view is the inverse view of the gradient, or a
//! zero tensor with the gradient written into the viewed positions.

use crate::{Result, Var};
use tessera_engine::layout::normalize_axis;
use tessera_engine::Tensor;

impl Var {
    /// The same elements in another shape (one dim may be -1).
    pub fn reshape(&self, shape: &[isize]) -> Result<Var> {
        let x = self.value();
        let out = x.reshape(shape)?;
        let in_shape = x.shape().to_vec();
        Ok(Var::from_op("reshape", out, &[self], move |g, _| Ok(vec![Some(g.reshape_to(&in_shape)?)])))
    }

    /// Reshape with a `usize` shape.
    pub fn reshape_to(&self, shape: &[usize]) -> Result<Var> {
        let s: Vec<isize> = shape.iter().map(|&d| d as isize).collect();
        self.reshape(&s)
    }

    /// Dims `start..=end` merged.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Var> {
        let s: Vec<isize> = self.value().flatten(start, end)?.shape().iter().map(|&d| d as isize).collect();
        self.reshape(&s)
    }

    pub fn unsqueeze(&self, axis: isize) -> Result<Var> {
        let s: Vec<isize> = self.value().unsqueeze(axis)?.shape().iter().map(|&d| d as isize).collect();
        self.reshape(&s)
    }

    pub fn squeeze_axis(&self, axis: isize) -> Result<Var> {
        let s: Vec<isize> = self.value().squeeze_axis(axis)?.shape().iter().map(|&d| d as isize).collect();
        self.reshape(&s)
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Var> {
        let out = self.value().permute(perm)?;
        let mut inv = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        Ok(Var::from_op("permute", out, &[self], move |g, _| Ok(vec![Some(g.permute(&inv)?)])))
    }

    pub fn transpose(&self, a: isize, b: isize) -> Result<Var> {
        let x = self.value();
        let (a, b) = (normalize_axis("transpose", a, x.shape())?, normalize_axis("transpose", b, x.shape())?);
        let mut perm: Vec<usize> = (0..x.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of the last two dims.
    pub fn t(&self) -> Result<Var> {
        self.value().t()?; // validates the rank with the engine's message
        self.transpose(-2, -1)
    }

    /// `len` elements of `axis` from `start`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Var> {
        self.view_with_scatter("narrow", move |t| t.narrow(axis, start, len))
    }

    /// `start..end` by `step` along `axis`.
    pub fn slice(&self, axis: isize, start: usize, end: usize, step: usize) -> Result<Var> {
        self.view_with_scatter("slice", move |t| t.slice(axis, start, end, step))
    }

    /// Index `i` of `axis`, removing it.
    pub fn select(&self, axis: isize, i: usize) -> Result<Var> {
        self.view_with_scatter("select", move |t| t.select(axis, i))
    }

    /// A view whose gradient is scattered back into zeros of the input's shape.
    fn view_with_scatter(&self, name: &'static str, view: impl Fn(&Tensor) -> tessera_engine::Result<Tensor> + 'static) -> Result<Var> {
        let x = self.value();
        let out = view(&x)?;
        let in_shape = x.shape().to_vec();
        Ok(Var::from_op(name, out, &[self], move |g, _| Ok(vec![Some(g.scatter_into_zeros(&in_shape, &view)?)])))
    }

    /// Broadcast view to `shape`; the gradient is summed back.
    pub fn expand(&self, shape: &[usize]) -> Result<Var> {
        let x = self.value();
        let out = x.expand(shape)?;
        let in_shape = x.shape().to_vec();
        Ok(Var::from_op("expand", out, &[self], move |g, _| Ok(vec![Some(g.sum_to_shape(&in_shape)?)])))
    }

    /// Reverses `axes`.
    pub fn flip(&self, axes: &[isize]) -> Result<Var> {
        let out = self.value().flip(axes)?;
        let axes = axes.to_vec();
        Ok(Var::from_op("flip", out, &[self], move |g, _| Ok(vec![Some(g.flip(&axes)?)])))
    }

    /// A contiguous copy (for speed before repeated use); gradient passes through.
    pub fn contiguous(&self) -> Result<Var> {
        let out = self.value().contiguous()?;
        Ok(Var::from_op("contiguous", out, &[self], move |g, _| Ok(vec![Some(g.clone())])))
    }
}
