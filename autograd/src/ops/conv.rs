//! Convolution, transposed convolution, pooling and unfold/fold. Each backward calls the
//! engine's GEMM-based kernels (im2col/col2im), never direct loops.

use crate::autocast;
use crate::{Result, Var};
use tessera_engine::ops::conv::Pair;

impl Var {
    /// 2-D convolution of `self [N, Cin, H, W]` with `weight [Cout, Cin/groups, kh, kw]`.
    pub fn conv2d(&self, weight: &Var, bias: Option<&Var>, stride: Pair, padding: Pair, dilation: Pair, groups: usize) -> Result<Var> {
        if let Some([Some(x), Some(w), b]) = autocast::lowered([Some(self), Some(weight), bias])? {
            return x.conv2d(&w, b.as_ref(), stride, padding, dilation, groups);
        }
        let (x, w) = (self.value(), weight.value());
        let b = bias.map(Var::value);
        let y = x.conv2d(&w, b.as_ref(), stride, padding, dilation, groups)?;
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Ok(Var::from_op("conv2d", y, &inputs, move |g, needs| {
            let mut out = vec![
                needs[0].then(|| g.conv2d_backward_input(&w, x.shape(), stride, padding, dilation, groups)).transpose()?,
                needs[1].then(|| g.conv2d_backward_weight(&x, w.shape(), stride, padding, dilation, groups)).transpose()?,
            ];
            if needs.len() > 2 {
                out.push(needs[2].then(|| g.conv2d_backward_bias()).transpose()?);
            }
            Ok(out)
        }))
    }

    /// Transposed 2-D convolution of `self [N, Cin, H, W]` with `weight [Cin, Cout/groups, kh, kw]`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_transpose2d(
        &self,
        weight: &Var,
        bias: Option<&Var>,
        stride: Pair,
        padding: Pair,
        output_padding: Pair,
        dilation: Pair,
        groups: usize,
    ) -> Result<Var> {
        if let Some([Some(x), Some(w), b]) = autocast::lowered([Some(self), Some(weight), bias])? {
            return x.conv_transpose2d(&w, b.as_ref(), stride, padding, output_padding, dilation, groups);
        }
        let (x, w) = (self.value(), weight.value());
        let b = bias.map(Var::value);
        let y = x.conv_transpose2d(&w, b.as_ref(), stride, padding, output_padding, dilation, groups)?;
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Ok(Var::from_op("conv_transpose2d", y, &inputs, move |g, needs| {
            let mut out = vec![
                needs[0].then(|| g.conv_transpose2d_backward_input(&w, x.shape(), stride, padding, dilation, groups)).transpose()?,
                needs[1].then(|| g.conv_transpose2d_backward_weight(&x, w.shape(), stride, padding, dilation, groups)).transpose()?,
            ];
            if needs.len() > 2 {
                out.push(needs[2].then(|| g.conv2d_backward_bias()).transpose()?);
            }
            Ok(out)
        }))
    }

    /// Max pooling; the gradient goes to the saved argmax of each window.
    pub fn max_pool2d(&self, kernel: Pair, stride: Pair, padding: Pair) -> Result<Var> {
        let x = self.value();
        let (y, idx) = x.max_pool2d(kernel, stride, padding, (1, 1))?;
        let in_shape = x.shape().to_vec();
        Ok(Var::from_op("max_pool2d", y, &[self], move |g, _| Ok(vec![Some(g.max_pool2d_backward(&idx, &in_shape)?)])))
    }

    /// Average pooling (padding counted in the divisor when `count_include_pad`).
    pub fn avg_pool2d(&self, kernel: Pair, stride: Pair, padding: Pair, count_include_pad: bool) -> Result<Var> {
        let x = self.value();
        let y = x.avg_pool2d(kernel, stride, padding, count_include_pad)?;
        let in_shape = x.shape().to_vec();
        Ok(Var::from_op("avg_pool2d", y, &[self], move |g, _| {
            Ok(vec![Some(g.avg_pool2d_backward(&in_shape, kernel, stride, padding, count_include_pad)?)])
        }))
    }

    /// Adaptive average pooling to `output` (PyTorch's bins).
    pub fn adaptive_avg_pool2d(&self, output: Pair) -> Result<Var> {
        let x = self.value();
        let y = x.adaptive_avg_pool2d(output)?;
        let in_shape = x.shape().to_vec();
        Ok(Var::from_op("adaptive_avg_pool2d", y, &[self], move |g, _| Ok(vec![Some(g.adaptive_avg_pool2d_backward(&in_shape)?)])))
    }

    /// Sliding windows as columns `[N, C·kh·kw, L]` (im2col); the gradient is `fold`.
    pub fn unfold(&self, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Result<Var> {
        let x = self.value();
        let y = x.unfold(kernel, stride, padding, dilation)?;
        let hw = (x.shape()[2], x.shape()[3]);
        Ok(Var::from_op("unfold", y, &[self], move |g, _| Ok(vec![Some(g.fold(hw, kernel, stride, padding, dilation)?)])))
    }

    /// Columns `[N, C·kh·kw, L]` summed back into `[N, C, H, W]` (col2im); the gradient is `unfold`.
    pub fn fold(&self, output_size: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Result<Var> {
        let y = self.value().fold(output_size, kernel, stride, padding, dilation)?;
        Ok(Var::from_op("fold", y, &[self], move |g, _| Ok(vec![Some(g.unfold(kernel, stride, padding, dilation)?)])))
    }
}
