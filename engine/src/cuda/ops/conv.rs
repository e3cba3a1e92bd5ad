//! Convolutions on GPUs (ptx/kernels/conv.cu): the im2col / col2im kernels move the data and
//! the engine's own `matmul` does the GEMMs, batched over samples and groups. With `W` the
//! weight as `[groups, m/groups, kg]` (`kg = C/groups · kh · kw`) and `cols(x)` the column
//! matrix of `x`:
//!
//! * forward: `y[s] = W · cols(x[s])` (a batched matmul, `W` broadcast over samples);
//! * input gradient: `dx[s] = col2im(Wᵀ · dy[s])`;
//! * weight gradient: `dW = dy · cols(x)ᵀ` with the batch folded into the inner dim.
//!
//! `conv_transpose2d` and its backward are the same three with input and output swapped
//! (the engine ops pick the roles). Column matrices are built for a chunk of the batch at a
//! time, so their memory stays bounded; the chunking depends only on the shapes, so results
//! are deterministic.

use super::{buffer, common_device, kernel, output};
use crate::cpu::im2col::ConvGeom;
use crate::cuda::launch::{grid_stride, run, StridedArg};
use crate::cuda::{CudaBuffer, CudaDevice};
use crate::{Result, Tensor};
use cudarc::driver::{DeviceRepr, PushKernelArg};
use std::sync::Arc;
use tessera_ptx::CONV;

/// The most bytes one chunk's column matrix may take.
const COLUMN_BUDGET_BYTES: usize = 1 << 28;

/// Mirrors `struct View4` in ptx/kernels/nchw.cuh: a tensor of rank ≤ 4 addressed by four
/// coordinates, left-padded with stride-0 dims.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct View4 {
    offset: i64,
    strides: [i64; 4],
}

unsafe impl DeviceRepr for View4 {}

impl View4 {
    /// `t` (rank ≤ 4) as a 4-D view.
    pub fn of(t: &Tensor) -> View4 {
        let l = t.layout();
        debug_assert!(l.rank() <= 4, "View4 of rank {}", l.rank());
        let mut strides = [0i64; 4];
        for (d, &s) in l.strides.iter().rev().enumerate() {
            strides[3 - d] = s as i64;
        }
        View4 { offset: l.offset as i64, strides }
    }
}

/// Mirrors `struct ConvGeom` in ptx/kernels/conv.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct GeomArg {
    channels: i64,
    h: i64,
    w: i64,
    kh: i64,
    kw: i64,
    sh: i64,
    sw: i64,
    ph: i64,
    pw: i64,
    dh: i64,
    dw: i64,
    oh: i64,
    ow: i64,
}

unsafe impl DeviceRepr for GeomArg {}

impl GeomArg {
    fn of(g: &ConvGeom) -> GeomArg {
        let i = |v: usize| v as i64;
        GeomArg {
            channels: i(g.channels),
            h: i(g.h),
            w: i(g.w),
            kh: i(g.kh),
            kw: i(g.kw),
            sh: i(g.sh),
            sw: i(g.sw),
            ph: i(g.ph),
            pw: i(g.pw),
            dh: i(g.dh),
            dw: i(g.dw),
            oh: i(g.oh),
            ow: i(g.ow),
        }
    }
}

/// How a column matrix of `n` samples is laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ColumnOrder {
    /// `[n, R, L]`: one `R × L` matrix per sample (forward, unfold).
    SampleMajor,
    /// `[R, n, L]`: one `R × (n·L)` matrix, the batch folded into the columns (weight gradient).
    RowMajor,
}

/// A bias operand for the kernels: device address of its first element and its stride, or a
/// null address for none.
fn bias_arg(bias: Option<&Tensor>, op: &'static str) -> Result<(u64, i64)> {
    match bias {
        None => Ok((0, 0)),
        Some(b) => Ok((buffer(b, op)?.ptr_at(b.layout().offset), b.layout().strides[0] as i64)),
    }
}

/// The column matrix of `x` (`[n, C, H, W]` or `[C, H, W]` with `n = 1`, any strides), as a
/// new contiguous tensor `[n, R, L]` or `[R, n, L]`.
fn im2col(dev: &Arc<CudaDevice>, op: &'static str, x: &Tensor, n: usize, g: &ConvGeom, order: ColumnOrder) -> Result<Tensor> {
    let (rows, len) = (g.col_rows(), g.col_len());
    let shape = match order {
        ColumnOrder::SampleMajor => [n, rows, len],
        ColumnOrder::RowMajor => [rows, n, len],
    };
    let out = output(dev, op, x.dtype(), &shape)?;
    let total = n * rows * len;
    if total > 0 {
        let (col_sample, col_row) = match order {
            ColumnOrder::SampleMajor => ((rows * len) as i64, len as i64),
            ColumnOrder::RowMajor => (len as i64, (n * len) as i64),
        };
        let (total64, geom, xv, px) = (total as i64, GeomArg::of(g), View4::of(x), buffer(x, op)?.ptr);
        let f = dev.function(op, CONV, &kernel("im2col", x.dtype()))?;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&total64).arg(&geom).arg(&xv).arg(&px).arg(&col_sample).arg(&col_row).arg(&out.ptr);
        run(dev, op, b, grid_stride(dev, total))?;
    }
    Ok(Tensor::from_cuda(out, &shape))
}

/// Writes `col2im(cols) (+ bias)` for `n` samples into `dst` from element `dst_start` on:
/// `cols` is `[n, R, L]` (or `[R, L]` with `n = 1`) with any strides.
#[allow(clippy::too_many_arguments)]
fn col2im_into(
    dev: &Arc<CudaDevice>,
    op: &'static str,
    cols: &Tensor,
    n: usize,
    g: &ConvGeom,
    bias: Option<&Tensor>,
    dst: &CudaBuffer,
    dst_start: usize,
) -> Result<()> {
    let total = n * g.image_len();
    if total == 0 {
        return Ok(());
    }
    let (total64, geom, cv, pc) = (total as i64, GeomArg::of(g), View4::of(cols), buffer(cols, op)?.ptr);
    let (pb, bias_stride) = bias_arg(bias, op)?;
    let pd = dst.ptr_at(dst_start);
    let f = dev.function(op, CONV, &kernel("col2im", cols.dtype()))?;
    let mut b = dev.stream.launch_builder(&f);
    b.arg(&total64).arg(&geom).arg(&cv).arg(&pc).arg(&pb).arg(&bias_stride).arg(&pd);
    run(dev, op, b, grid_stride(dev, total))
}

/// Writes `src (+ bias)` into `dst` from element `dst_start` on, contiguous; `src` is
/// `[.., channels, len]` with any strides, the bias indexed by `channels`.
fn store_into(
    op: &'static str,
    src: &Tensor,
    channels: usize,
    len: usize,
    bias: Option<&Tensor>,
    dst: &CudaBuffer,
    dst_start: usize,
) -> Result<()> {
    let total = src.numel();
    if total == 0 {
        return Ok(());
    }
    let dev = &dst.dev;
    let ss = StridedArg::of(op, src.layout())?;
    let (total64, len64, ch64, ps) = (total as i64, len as i64, channels as i64, buffer(src, op)?.ptr);
    let (pb, bias_stride) = bias_arg(bias, op)?;
    let pd = dst.ptr_at(dst_start);
    let f = dev.function(op, CONV, &kernel("store_with_bias", src.dtype()))?;
    let mut b = dev.stream.launch_builder(&f);
    b.arg(&total64).arg(&len64).arg(&ch64).arg(&ss).arg(&ps).arg(&pb).arg(&bias_stride).arg(&pd);
    run(dev, op, b, grid_stride(dev, total))
}

/// `y` (`[n, channels, len]`, any layout) plus the bias, shaped `shape`: `y` itself when there
/// is no bias.
fn with_bias(op: &'static str, y: Tensor, channels: usize, len: usize, bias: Option<&Tensor>, shape: &[usize]) -> Result<Tensor> {
    let Some(bias) = bias else { return y.reshape_to(shape) };
    let dev = buffer(&y, op)?.dev.clone();
    let out = output(&dev, op, y.dtype(), shape)?;
    store_into(op, &y, channels, len, Some(bias), &out, 0)?;
    Ok(Tensor::from_cuda(out, shape))
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
    let dev = common_device(op, &[x, w])?;
    let (rows, len) = (g.col_rows(), g.col_len());
    let (mg, kg) = (m / groups, rows / groups);
    let shape = [n, m, g.oh, g.ow];
    if n * m * len == 0 {
        return Ok(Tensor::from_cuda(output(&dev, op, x.dtype(), &shape)?, &shape));
    }
    if kg == 0 {
        // No input channels: the bias alone (an empty GEMM is not the matmul's problem).
        let zeros = Tensor::full_on(&[n, m, len], 0.0, x.dtype(), x.device())?;
        return with_bias(op, zeros, m, len, bias, &shape);
    }
    let wg = w.reshape_to(&[groups, mg, kg])?;
    if g.is_identity() {
        // 1×1, stride 1, unpadded: the image already is its column matrix.
        let y = wg.matmul(&x.reshape_to(&[n, groups, kg, len])?)?.reshape_to(&[n, m, len])?;
        return with_bias(op, y, m, len, bias, &shape);
    }
    let parts: Vec<(usize, usize)> = chunks(n, rows * len, x.dtype().size_in_bytes()).collect();
    if parts.len() == 1 {
        let cols = im2col(&dev, op, x, n, g, ColumnOrder::SampleMajor)?;
        let y = wg.matmul(&cols.reshape_to(&[n, groups, kg, len])?)?.reshape_to(&[n, m, len])?;
        return with_bias(op, y, m, len, bias, &shape);
    }
    let out = output(&dev, op, x.dtype(), &shape)?;
    for (start, count) in parts {
        let cols = im2col(&dev, op, &x.narrow(0, start, count)?, count, g, ColumnOrder::SampleMajor)?;
        let y = wg.matmul(&cols.reshape_to(&[count, groups, kg, len])?)?.reshape_to(&[count, m, len])?;
        store_into(op, &y, m, len, bias, &out, start * m * len)?;
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
    let dev = common_device(op, &[dy, w])?;
    let (rows, len, plane) = (g.col_rows(), g.col_len(), g.h * g.w);
    let (mg, kg) = (m / groups, rows / groups);
    let shape = [n, g.channels, g.h, g.w];
    if n * g.image_len() == 0 {
        return Ok(Tensor::from_cuda(output(&dev, op, dy.dtype(), &shape)?, &shape));
    }
    if mg * len == 0 {
        let zeros = Tensor::full_on(&[n, g.channels, plane], 0.0, dy.dtype(), dy.device())?;
        return with_bias(op, zeros, g.channels, plane, bias, &shape);
    }
    let wt = w.reshape_to(&[groups, mg, kg])?.transpose(-2, -1)?;
    if g.is_identity() {
        let dx = wt.matmul(&dy.reshape_to(&[n, groups, mg, len])?)?.reshape_to(&[n, g.channels, plane])?;
        return with_bias(op, dx, g.channels, plane, bias, &shape);
    }
    let out = output(&dev, op, dy.dtype(), &shape)?;
    for (start, count) in chunks(n, rows * len, dy.dtype().size_in_bytes()) {
        let dys = dy.narrow(0, start, count)?.reshape_to(&[count, groups, mg, len])?;
        let cols = wt.matmul(&dys)?.reshape_to(&[count, rows, len])?;
        col2im_into(&dev, op, &cols, count, g, bias, &out, start * g.image_len())?;
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
    let dev = common_device(op, &[dy, x])?;
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
        let part = dyg.matmul(&cols_t)?;
        let part = if splits > 1 { part.sum(&[0], false)? } else { part.reshape_to(&[groups, mg, kg])? };
        sum = Some(match sum {
            None => part,
            Some(s) => s.add(&part)?,
        });
    }
    sum.expect("n > 0 gives a chunk").reshape_to(weight_shape)
}

/// `unfold` (im2col) of `x` (`[n, C, H, W]`, or `[C, H, W]` with `n = 1`) into `shape`.
pub(crate) fn unfold(x: &Tensor, g: &ConvGeom, n: usize, shape: &[usize]) -> Result<Tensor> {
    let op = "unfold";
    let dev = buffer(x, op)?.dev.clone();
    im2col(&dev, op, x, n, g, ColumnOrder::SampleMajor)?.reshape_to(shape)
}

/// `fold` (col2im) of `cols` (`[n, R, L]`, or `[R, L]` with `n = 1`) into `shape`.
pub(crate) fn fold(cols: &Tensor, g: &ConvGeom, n: usize, shape: &[usize]) -> Result<Tensor> {
    let op = "fold";
    let dev = buffer(cols, op)?.dev.clone();
    let out = output(&dev, op, cols.dtype(), shape)?;
    col2im_into(&dev, op, cols, n, g, None, &out, 0)?;
    Ok(Tensor::from_cuda(out, shape))
}
