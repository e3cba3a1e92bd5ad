//! `conv_transpose2d` (PyTorch semantics) and its backward kernels. A transposed convolution
//! is the input gradient of the conv2d that shares its weight, so the three kernels are the
//! conv2d ones with the roles of input and output swapped.

use super::conv2d::check_grad_out;
use super::{convt_problem, Pair};
use crate::backend::Backend;
use crate::cpu::conv::{conv_backward_input, conv_backward_weight, conv_forward};
use crate::ops::widen::{via_f32, via_f32_opt};
use crate::{with_float, Error, Result, Tensor};

impl Tensor {
    /// The transposed 2-D convolution: `self` is `[N, C_in, H, W]`, `weight` is
    /// `[C_in, C_out/groups, kh, kw]`, `bias` is `[C_out]`. The result is
    /// `[N, C_out, Ho, Wo]` with `Ho = (H − 1)·s − 2p + d·(kh − 1) + output_padding + 1`;
    /// `output_padding` must be smaller than the stride or the dilation.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: Pair,
        padding: Pair,
        output_padding: Pair,
        dilation: Pair,
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose2d";
        self.same_kind(OP, weight)?;
        self.expect_float(OP)?;
        let p = convt_problem(OP, self.shape(), weight.shape(), stride, padding, Ok(output_padding), dilation, groups)?;
        if let Some(b) = bias {
            self.same_kind(OP, b)?;
            if b.shape() != [p.cout] {
                return Err(Error::shapes_hint(
                    OP,
                    b.shape(),
                    &[p.cout],
                    format!("the bias must be [C_out] (weight {:?})", weight.shape()),
                ));
            }
        }
        if let Backend::Cuda(_) = self.backend() {
            // The conv2d input gradient of the adjoint conv, plus the bias.
            return super::gpu_gemm::conv_backward_input(OP, self, weight, bias, p.cin, p.groups, &p.geom, p.n);
        }
        let (h, w) = (p.geom.h, p.geom.w);
        if let Some(out) = via_f32_opt([Some(self), Some(weight), bias], |[x, w, b]| {
            x.unwrap().conv_transpose2d(&w.unwrap(), b.as_ref(), stride, padding, output_padding, dilation, groups)
        })? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let (x, wt) = (self.values::<T>(OP)?, weight.values::<T>(OP)?);
            let mut out = conv_backward_input(&x, p.n, &wt, p.cin, p.groups, &p.geom);
            if let Some(b) = bias {
                let b = b.values::<T>(OP)?;
                let l = h * w;
                if l > 0 {
                    for (i, row) in out.chunks_mut(l).enumerate() {
                        let v = b[i % p.cout];
                        row.iter_mut().for_each(|o| *o += v);
                    }
                }
            }
            Ok(Tensor::from_vec_unchecked(out, &[p.n, p.cout, h, w]))
        })
    }

    /// The gradient of [`conv_transpose2d`](Self::conv_transpose2d) with respect to its input:
    /// `self` is the output gradient `[N, C_out, Ho, Wo]`; returns `input_shape`
    /// `[N, C_in, H, W]`. This is a conv2d of the output gradient with the same weight. The
    /// output padding is implied by the two shapes.
    pub fn conv_transpose2d_backward_input(
        &self,
        weight: &Tensor,
        input_shape: &[usize],
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose2d_backward_input";
        self.same_kind(OP, weight)?;
        self.expect_float(OP)?;
        let out_hw = output_hw(OP, self.shape())?;
        let p = convt_problem(OP, input_shape, weight.shape(), stride, padding, Err(out_hw), dilation, groups)?;
        check_grad_out(OP, self.shape(), &[p.n, p.cout, p.geom.h, p.geom.w])?;
        if let Backend::Cuda(_) = self.backend() {
            return super::gpu_gemm::conv_forward(OP, self, weight, None, p.cin, p.groups, &p.geom, p.n);
        }
        if let Some(out) =
            via_f32([self, weight], |[g, w]| g.conv_transpose2d_backward_input(&w, input_shape, stride, padding, dilation, groups))?
        {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let (dy, wt) = (self.values::<T>(OP)?, weight.values::<T>(OP)?);
            let out = conv_forward(&dy, p.n, &wt, p.cin, p.groups, &p.geom, None);
            Ok(Tensor::from_vec_unchecked(out, input_shape))
        })
    }

    /// The gradient of [`conv_transpose2d`](Self::conv_transpose2d) with respect to its
    /// weight: `self` is the output gradient `[N, C_out, Ho, Wo]`, `input` the forward input
    /// `[N, C_in, H, W]`; returns `weight_shape` `[C_in, C_out/groups, kh, kw]`, summed over
    /// the batch in a fixed order.
    pub fn conv_transpose2d_backward_weight(
        &self,
        input: &Tensor,
        weight_shape: &[usize],
        stride: Pair,
        padding: Pair,
        dilation: Pair,
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose2d_backward_weight";
        self.same_kind(OP, input)?;
        self.expect_float(OP)?;
        let out_hw = output_hw(OP, self.shape())?;
        let p = convt_problem(OP, input.shape(), weight_shape, stride, padding, Err(out_hw), dilation, groups)?;
        check_grad_out(OP, self.shape(), &[p.n, p.cout, p.geom.h, p.geom.w])?;
        if let Backend::Cuda(_) = self.backend() {
            // The forward input plays the conv2d's output gradient, dY the conv2d's input.
            return super::gpu_gemm::conv_backward_weight(OP, input, self, p.cin, p.groups, &p.geom, p.n, weight_shape);
        }
        if let Some(out) =
            via_f32([self, input], |[g, x]| g.conv_transpose2d_backward_weight(&x, weight_shape, stride, padding, dilation, groups))?
        {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let (dy, x) = (self.values::<T>(OP)?, input.values::<T>(OP)?);
            // The forward input plays the conv2d's output gradient, dY the conv2d's input.
            let out = conv_backward_weight(&x, &dy, p.n, p.cin, p.groups, &p.geom);
            Ok(Tensor::from_vec_unchecked(out, weight_shape))
        })
    }
}

fn output_hw(op: &'static str, grad_out: &[usize]) -> Result<Pair> {
    if grad_out.len() != 4 {
        return Err(Error::invalid(op, format!("the output gradient must be [N, C_out, Ho, Wo], got shape {grad_out:?}")));
    }
    Ok((grad_out[2], grad_out[3]))
}
