//! `unfold` (im2col) and `fold` (col2im), PyTorch's `F.unfold` / `F.fold`. Each is the
//! other's adjoint, so each is the other's backward.

use super::{window_geom, Pair};
use crate::backend::Backend;
use crate::cpu::im2col::{col2im, im2col};
use crate::cpu::PAR_MIN_ELEMS;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::ops::widen::via_f32;
use crate::{with_float, Error, Result, Tensor};
use rayon::prelude::*;

/// Runs `f(sample_in, sample_out)` over a batch, in parallel when it is large.
fn per_sample<T: Copy + Send + Sync>(src: &[T], src_per: usize, out: &mut [T], out_per: usize, f: impl Fn(&[T], &mut [T]) + Sync) {
    if out_per == 0 || out.is_empty() {
        return;
    }
    let n = out.len() / out_per;
    if n > 1 && out.len() >= PAR_MIN_ELEMS {
        out.par_chunks_mut(out_per).enumerate().for_each(|(s, o)| f(&src[s * src_per..(s + 1) * src_per], o));
    } else {
        out.chunks_mut(out_per).enumerate().for_each(|(s, o)| f(&src[s * src_per..(s + 1) * src_per], o));
    }
}

impl Tensor {
    /// Extracts sliding local blocks (PyTorch's `F.unfold`): `[N, C, H, W]` →
    /// `[N, C·kh·kw, L]` with `L` the number of windows; row `(c·kh + i)·kw + j` holds tap
    /// `(i, j)` of channel `c` (0 in the padding). A 3-D `[C, H, W]` input gives `[C·kh·kw, L]`.
    pub fn unfold(&self, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Result<Tensor> {
        const OP: &str = "unfold";
        self.expect_float(OP)?;
        let batched = match self.rank() {
            4 => true,
            3 => false,
            r => {
                return Err(Error::invalid(
                    OP,
                    format!("the input must be [N, C, H, W] or [C, H, W], got rank {r} (shape {:?})", self.shape()),
                ))
            }
        };
        let s = self.shape();
        let (n, c, h, w) = if batched { (s[0], s[1], s[2], s[3]) } else { (1, s[0], s[1], s[2]) };
        let g = window_geom(c, (h, w), kernel, stride, padding, dilation).map_err(|e| {
            Error::invalid(
                OP,
                format!("input shape {s:?}, kernel {kernel:?}, stride {stride:?}, padding {padding:?}, dilation {dilation:?}: {e}"),
            )
        })?;
        let (rows, l) = (g.col_rows(), g.col_len());
        let shape: Vec<usize> = if batched { vec![n, rows, l] } else { vec![rows, l] };
        crate::layout::checked_numel(OP, &shape)?;
        if let Backend::Cuda(x) = self.backend() {
            return Ok(Tensor::from_cuda_array(crate::cuda::conv::unfold(&x, &g, n, &shape)?));
        }
        if let Some(out) = via_f32([self], |[x]| x.unfold(kernel, stride, padding, dilation))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let x = self.values::<T>(OP)?;
            let mut out = vec![T::zero(); n * rows * l];
            per_sample(&x, g.image_len(), &mut out, rows * l, |xs, o| im2col(xs, &g, o));
            Ok(Tensor::from_vec_unchecked(out, &shape))
        })
    }

    /// Combines sliding local blocks into an image, summing overlaps (PyTorch's `F.fold`, =
    /// col2im): `[N, C·kh·kw, L]` → `[N, C, H, W]` with `(H, W) = output_size`; `L` must be
    /// the number of windows that fit `output_size`. A 2-D input gives `[C, H, W]`.
    /// This is the adjoint (the backward) of [`unfold`](Self::unfold), and vice versa.
    pub fn fold(&self, output_size: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Result<Tensor> {
        const OP: &str = "fold";
        self.expect_float(OP)?;
        let batched = match self.rank() {
            3 => true,
            2 => false,
            r => {
                return Err(Error::invalid(
                    OP,
                    format!("the input must be [N, C·kh·kw, L] or [C·kh·kw, L], got rank {r} (shape {:?})", self.shape()),
                ))
            }
        };
        let s = self.shape();
        let (n, rows, l) = if batched { (s[0], s[1], s[2]) } else { (1, s[0], s[1]) };
        let kk = kernel.0.checked_mul(kernel.1).unwrap_or(0);
        if kk == 0 || rows % kk != 0 {
            return Err(Error::invalid(
                OP,
                format!("dim {} of input shape {s:?} must be a multiple of the kernel area {kernel:?}", s.len() - 2),
            ));
        }
        let c = rows / kk;
        let g = window_geom(c, output_size, kernel, stride, padding, dilation).map_err(|e| {
            Error::invalid(OP, format!("input shape {s:?}, output size {output_size:?}, kernel {kernel:?}, stride {stride:?}, padding {padding:?}, dilation {dilation:?}: {e}"))
        })?;
        if g.col_len() != l {
            return Err(Error::invalid(
                OP,
                format!("input shape {s:?} has {l} blocks, but output size {output_size:?} with kernel {kernel:?}, stride {stride:?}, padding {padding:?}, dilation {dilation:?} fits {}x{} = {}", g.oh, g.ow, g.col_len()),
            ));
        }
        let (oh, ow) = output_size;
        let shape: Vec<usize> = if batched { vec![n, c, oh, ow] } else { vec![c, oh, ow] };
        crate::layout::checked_numel(OP, &shape)?;
        if let Backend::Cuda(cols) = self.backend() {
            return Ok(Tensor::from_cuda_array(crate::cuda::conv::fold(&cols, &g, n, &shape)?));
        }
        if let Some(out) = via_f32([self], |[x]| x.fold(output_size, kernel, stride, padding, dilation))? {
            return Ok(out);
        }
        with_float!(self.dtype(), OP, |T| {
            let cols = self.values::<T>(OP)?;
            let mut out = vec![T::zero(); n * g.image_len()];
            per_sample(&cols, rows * l, &mut out, g.image_len(), |cs, o| col2im(cs, &g, o));
            Ok(Tensor::from_vec_unchecked(out, &shape))
        })
    }
}
