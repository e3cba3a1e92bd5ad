//! Convolutions on GPUs, composed from the CUDA backend's conv kernels (cuda/conv.rs:
//! im2col / col2im / store with bias) and the engine's own `matmul`, batched over samples and
//! groups. With `W` the weight as `[groups, m/groups, kg]` (`kg = C/groups · kh · kw`) and
//! `cols(x)` the column matrix of `x`:
//!
//! * forward: `y[s] = W · cols(x[s])` (a batched matmul, `W` broadcast over samples);
//! * input gradient: `dx[s] = col2im(Wᵀ · dy[s])`;
//! * weight gradient: `dW = dy · cols(x)ᵀ` with the batch folded into the inner dim.
//!
//! `conv_transpose2d` and its backward are the same three with input and output swapped
//! (the engine ops pick the roles). Column matrices are built for a chunk of the batch at a
//! time, so their memory stays bounded; the chunking depends only on the shapes, so results
//! are deterministic. Composed here, above the backends, so the CUDA backend never calls back
//! up into `Tensor`.

use crate::backend::cuda_operands;
use crate::cuda::conv::ColumnOrder;
use crate::cuda::{self, output, CudaDevice};
use crate::kinds::ConvGeom;
use crate::{DType, Result, Tensor};
use std::sync::Arc;

/// The most bytes one chunk's column matrix may take.
const COLUMN_BUDGET_BYTES: usize = 1 << 28;

/// The column matrix of `x` (see `cuda::conv::im2col`) as a new contiguous tensor.
fn im2col(dev: &Arc<CudaDevice>, op: &'static str, x: &Tensor, n: usize, g: &ConvGeom, order: ColumnOrder) -> Result<Tensor> {
    Ok(Tensor::from_cuda_array(cuda::conv::im2col(dev, op, &x.cuda_operand(op)?, n, g, order)?))
}

/// `y` (`[n, channels, len]`, any layout) plus the bias, shaped `shape`, as `dtype`: `y`
/// itself when there is no bias and it already is of `dtype`. `y` may be f32 for a half
/// `dtype` (a product's kept accumulators): the sum is then rounded once.
fn with_bias(
    op: &'static str,
    y: Tensor,
    dtype: DType,
    channels: usize,
    len: usize,
    bias: Option<&Tensor>,
    shape: &[usize],
) -> Result<Tensor> {
    let Some(bias) = bias else { return y.to_dtype(dtype)?.reshape_to(shape) };
    let dev = y.cuda_operand(op)?.dev().clone();
    let out = output(&dev, op, dtype, shape)?;
    cuda::conv::store_into(op, &y.cuda_operand(op)?, channels, len, Some(&bias.cuda_operand(op)?), &out, 0)?;
    Ok(Tensor::from_cuda(out, shape))
}

/// `a @ b` for a convolution: when `adds` (a bias, a column sum or partial sums follow), half
/// operands keep the product's f32 accumulators ([`Tensor::matmul_f32_result`]), so the half
/// result is rounded once, after the adds, as the CPU's widened convolution rounds it.
fn product(a: &Tensor, b: &Tensor, adds: bool) -> Result<Tensor> {
    if adds {
        a.matmul_f32_result(b)
    } else {
        a.matmul(b)
    }
}

/// The output tile edge the matmul kernels use, for estimating how many blocks a GEMM gets.
const GEMM_TILE: usize = 128;
/// A GEMM with fewer output tiles than this has its inner dim split (weight gradients).
const GEMM_TARGET_BLOCKS: usize = 256;
/// ... into slices no shorter than this.
const GEMM_MIN_SLICE: usize = 2048;

/// How many slices to cut an inner dim of `inner` into for a GEMM of `blocks` output tiles:
/// a divisor of `inner`, fixed by the shapes alone (never by the GPU), so results are the
/// same bits on every device.
fn split_factor(inner: usize, blocks: usize) -> usize {
    let want = GEMM_TARGET_BLOCKS.div_ceil(blocks.max(1)).min(inner / GEMM_MIN_SLICE).max(1);
    (1..=want).rev().find(|s| inner.is_multiple_of(*s)).unwrap_or(1)
}

/// Batch chunks `(start, count)` whose column matrices (`per_sample` elements each) fit the
/// budget; at least one sample per chunk.
fn chunks(n: usize, per_sample: usize, elem_bytes: usize) -> impl Iterator<Item = (usize, usize)> {
    let per = (COLUMN_BUDGET_BYTES / per_sample.saturating_mul(elem_bytes).max(1)).clamp(1, n.max(1));
    (0..n).step_by(per).map(move |s| (s, per.min(n - s)))
}

/// `y = conv(x, w) (+ bias)`: `[n, m, oh, ow]` from `x` `[n, C, h, w]` and `w`
/// `[m, C/groups, kh, kw]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_forward(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    m: usize,
    groups: usize,
    g: &ConvGeom,
    n: usize,
) -> Result<Tensor> {
    let dev = cuda_operands(op, [x, w])?[0].dev().clone();
    let (rows, len) = (g.col_rows(), g.col_len());
    let (mg, kg) = (m / groups, rows / groups);
    let shape = [n, m, g.oh, g.ow];
    if n * m * len == 0 {
        return Ok(Tensor::from_cuda(output(&dev, op, x.dtype(), &shape)?, &shape));
    }
    if kg == 0 {
        // No input channels: the bias alone (an empty GEMM is not the matmul's problem).
        let zeros = Tensor::full_on(&[n, m, len], 0.0, x.dtype(), x.device())?;
        return with_bias(op, zeros, x.dtype(), m, len, bias, &shape);
    }
    let wg = w.reshape_to(&[groups, mg, kg])?;
    if g.is_identity() {
        // 1×1, stride 1, unpadded: the image already is its column matrix.
        let y = product(&wg, &x.reshape_to(&[n, groups, kg, len])?, bias.is_some())?.reshape_to(&[n, m, len])?;
        return with_bias(op, y, x.dtype(), m, len, bias, &shape);
    }
    let parts: Vec<(usize, usize)> = chunks(n, rows * len, x.dtype().size_in_bytes()).collect();
    if parts.len() == 1 {
        let cols = im2col(&dev, op, x, n, g, ColumnOrder::SampleMajor)?;
        let y = product(&wg, &cols.reshape_to(&[n, groups, kg, len])?, bias.is_some())?.reshape_to(&[n, m, len])?;
        return with_bias(op, y, x.dtype(), m, len, bias, &shape);
    }
    let out = output(&dev, op, x.dtype(), &shape)?;
    let bias_v = bias.map(|b| b.cuda_operand(op)).transpose()?;
    for (start, count) in parts {
        let cols = im2col(&dev, op, &x.narrow(0, start, count)?, count, g, ColumnOrder::SampleMajor)?;
        let y = product(&wg, &cols.reshape_to(&[count, groups, kg, len])?, bias.is_some())?.reshape_to(&[count, m, len])?;
        cuda::conv::store_into(op, &y.cuda_operand(op)?, m, len, bias_v.as_ref(), &out, start * m * len)?;
    }
    Ok(Tensor::from_cuda(out, &shape))
}

/// `dx = col2im(Wᵀ · dy) (+ bias)`: `[n, C, h, w]` from `dy` `[n, m, oh, ow]` and `w`
/// `[m, C/groups, kh, kw]`. With a bias this is `conv_transpose2d`'s forward.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward_input(
    op: &'static str,
    dy: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    m: usize,
    groups: usize,
    g: &ConvGeom,
    n: usize,
) -> Result<Tensor> {
    let dev = cuda_operands(op, [dy, w])?[0].dev().clone();
    let (rows, len, plane) = (g.col_rows(), g.col_len(), g.h * g.w);
    let (mg, kg) = (m / groups, rows / groups);
    let shape = [n, g.channels, g.h, g.w];
    if n * g.image_len() == 0 {
        return Ok(Tensor::from_cuda(output(&dev, op, dy.dtype(), &shape)?, &shape));
    }
    if mg * len == 0 {
        let zeros = Tensor::full_on(&[n, g.channels, plane], 0.0, dy.dtype(), dy.device())?;
        return with_bias(op, zeros, dy.dtype(), g.channels, plane, bias, &shape);
    }
    let wt = w.reshape_to(&[groups, mg, kg])?.transpose(-2, -1)?;
    if g.is_identity() {
        let dx = product(&wt, &dy.reshape_to(&[n, groups, mg, len])?, bias.is_some())?.reshape_to(&[n, g.channels, plane])?;
        return with_bias(op, dx, dy.dtype(), g.channels, plane, bias, &shape);
    }
    let out = output(&dev, op, dy.dtype(), &shape)?;
    let bias_v = bias.map(|b| b.cuda_operand(op)).transpose()?;
    for (start, count) in chunks(n, rows * len, dy.dtype().size_in_bytes()) {
        let dys = dy.narrow(0, start, count)?.reshape_to(&[count, groups, mg, len])?;
        let cols = product(&wt, &dys, true)?.reshape_to(&[count, rows, len])?;
        cuda::conv::col2im_into(&dev, op, &cols.cuda_operand(op)?, count, g, bias_v.as_ref(), &out, start * g.image_len())?;
    }
    Ok(Tensor::from_cuda(out, &shape))
}

/// `dW = Σ_s dy[s] · cols(x[s])ᵀ`: `weight_shape` `[m, C/groups, kh, kw]` from `dy`
/// `[n, m, oh, ow]` and `x` `[n, C, h, w]`. Each chunk is one GEMM per group with the chunk's
/// samples in the inner dim; chunks are added in order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward_weight(
    op: &'static str,
    dy: &Tensor,
    x: &Tensor,
    m: usize,
    groups: usize,
    g: &ConvGeom,
    n: usize,
    weight_shape: &[usize],
) -> Result<Tensor> {
    let dev = cuda_operands(op, [dy, x])?[0].dev().clone();
    let (rows, len) = (g.col_rows(), g.col_len());
    let (mg, kg) = (m / groups, rows / groups);
    let wlen = m * kg;
    if wlen == 0 {
        return Ok(Tensor::from_cuda(output(&dev, op, dy.dtype(), weight_shape)?, weight_shape));
    }
    if n * len == 0 {
        return Tensor::full_on(weight_shape, 0.0, dy.dtype(), dy.device());
    }
    let mut sum: Option<Tensor> = None;
    for (start, count) in chunks(n, rows * len, dy.dtype().size_in_bytes()) {
        // The inner dim (count·L) is cut into `splits` slices, a batch dim of the matmul, so
        // the few output tiles of a weight gradient still spread over the GPU; the slices'
        // partial products are then summed.
        let inner = count * len;
        let splits = split_factor(inner, mg.div_ceil(GEMM_TILE) * kg.div_ceil(GEMM_TILE) * groups);
        let cols = im2col(&dev, op, &x.narrow(0, start, count)?, count, g, ColumnOrder::RowMajor)?;
        // [G, kg, S, K/S] → [S, G, K/S, kg]: a view.
        let cols_t = cols.reshape_to(&[groups, kg, splits, inner / splits])?.permute(&[2, 0, 3, 1])?;
        // [count, m, oh, ow] → [m, count·oh·ow] (a copy, made by the reshape) → [S, G, mg, K/S].
        let dyg = dy.narrow(0, start, count)?.transpose(0, 1)?.reshape_to(&[groups, mg, splits, inner / splits])?.permute(&[2, 0, 1, 3])?;
        let part = product(&dyg, &cols_t, true)?;
        let part = if splits > 1 { part.sum(&[0], false)? } else { part.reshape_to(&[groups, mg, kg])? };
        sum = Some(match sum {
            None => part,
            Some(s) => s.add(&part)?,
        });
    }
    // Half gradients were summed in f32 and are rounded here, once.
    sum.expect("n > 0 gives a chunk").to_dtype(dy.dtype())?.reshape_to(weight_shape)
}
