//! The convolution kernels on GPUs (ptx/kernels/conv.cu): im2col into a column matrix,
//! col2im out of one (plus a bias), and a strided store plus bias. The GEMM convolutions
//! built from them and the engine's `matmul` are composed above this backend, in
//! engine/src/ops/conv/gpu_gemm.rs; `unfold` and `fold` are one kernel each and live here.

use super::{kernel, output};
use crate::cuda::launch::{grid_stride, run, StridedArg};
use crate::cuda::{CudaArray, CudaBuffer, CudaDevice, CudaView};
use crate::kinds::ConvGeom;
use crate::{DType, Result};
use cudarc::driver::{DeviceRepr, PushKernelArg};
use std::sync::Arc;
use tessera_ptx::CONV;

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
    pub fn of(t: &CudaView) -> View4 {
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
pub(crate) enum ColumnOrder {
    /// `[n, R, L]`: one `R × L` matrix per sample (forward, unfold).
    SampleMajor,
    /// `[R, n, L]`: one `R × (n·L)` matrix, the batch folded into the columns (weight gradient).
    RowMajor,
}

/// A bias operand for the kernels: device address of its first element and its stride, or a
/// null address for none.
fn bias_arg(bias: Option<&CudaView>) -> (u64, i64) {
    match bias {
        None => (0, 0),
        Some(b) => (b.buf.ptr_at(b.layout().offset), b.layout().strides[0] as i64),
    }
}

/// The column matrix of `x` (`[n, C, H, W]` or `[C, H, W]` with `n = 1`, any strides), as a
/// new contiguous tensor `[n, R, L]` or `[R, n, L]`.
pub(crate) fn im2col(
    dev: &Arc<CudaDevice>,
    op: &'static str,
    x: &CudaView,
    n: usize,
    g: &ConvGeom,
    order: ColumnOrder,
) -> Result<CudaArray> {
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
        let (total64, geom, xv, px) = (total as i64, GeomArg::of(g), View4::of(x), x.buf.ptr);
        let f = dev.function(op, CONV, &kernel("im2col", x.dtype()))?;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&total64).arg(&geom).arg(&xv).arg(&px).arg(&col_sample).arg(&col_row).arg(&out.ptr);
        run(dev, op, b, grid_stride(dev, total))?;
    }
    Ok(CudaArray::new(out, &shape))
}

/// The col2im / store kernel reading `src` and writing `dst`: `base_f32` for f32 into f32,
/// `base_wide_bf16` for f32 columns (a half GEMM's kept accumulators) into a bf16 output.
fn from_columns(base: &str, src: DType, dst: DType) -> String {
    if src == DType::F32 && dst.is_half() {
        kernel(&format!("{base}_wide"), dst)
    } else {
        kernel(base, src)
    }
}

/// Writes `col2im(cols) (+ bias)` for `n` samples into `dst` from element `dst_start` on:
/// `cols` is `[n, R, L]` (or `[R, L]` with `n = 1`) with any strides, of `dst`'s dtype or f32
/// for a half `dst` (the bias, if any, is of `dst`'s dtype).
#[allow(clippy::too_many_arguments)]
pub(crate) fn col2im_into(
    dev: &Arc<CudaDevice>,
    op: &'static str,
    cols: &CudaView,
    n: usize,
    g: &ConvGeom,
    bias: Option<&CudaView>,
    dst: &CudaBuffer,
    dst_start: usize,
) -> Result<()> {
    let total = n * g.image_len();
    if total == 0 {
        return Ok(());
    }
    let (total64, geom, cv, pc) = (total as i64, GeomArg::of(g), View4::of(cols), cols.buf.ptr);
    let (pb, bias_stride) = bias_arg(bias);
    let pd = dst.ptr_at(dst_start);
    let f = dev.function(op, CONV, &from_columns("col2im", cols.dtype(), dst.dtype))?;
    let mut b = dev.stream.launch_builder(&f);
    b.arg(&total64).arg(&geom).arg(&cv).arg(&pc).arg(&pb).arg(&bias_stride).arg(&pd);
    run(dev, op, b, grid_stride(dev, total))
}

/// Writes `src (+ bias)` into `dst` from element `dst_start` on, contiguous; `src` is
/// `[.., channels, len]` with any strides (f32 for a half `dst` allowed, as in
/// [`col2im_into`]), the bias indexed by `channels`.
pub(crate) fn store_into(
    op: &'static str,
    src: &CudaView,
    channels: usize,
    len: usize,
    bias: Option<&CudaView>,
    dst: &CudaBuffer,
    dst_start: usize,
) -> Result<()> {
    let total = src.numel();
    if total == 0 {
        return Ok(());
    }
    let dev = &dst.dev;
    let ss = StridedArg::of(op, src.layout())?;
    let (total64, len64, ch64, ps) = (total as i64, len as i64, channels as i64, src.buf.ptr);
    let (pb, bias_stride) = bias_arg(bias);
    let pd = dst.ptr_at(dst_start);
    let f = dev.function(op, CONV, &from_columns("store_with_bias", src.dtype(), dst.dtype))?;
    let mut b = dev.stream.launch_builder(&f);
    b.arg(&total64).arg(&len64).arg(&ch64).arg(&ss).arg(&ps).arg(&pb).arg(&bias_stride).arg(&pd);
    run(dev, op, b, grid_stride(dev, total))
}

/// `unfold` (im2col) of `x` (`[n, C, H, W]`, or `[C, H, W]` with `n = 1`) into `shape`.
pub(crate) fn unfold(x: &CudaView, g: &ConvGeom, n: usize, shape: &[usize]) -> Result<CudaArray> {
    let op = "unfold";
    let dev = x.buf.dev.clone();
    Ok(im2col(&dev, op, x, n, g, ColumnOrder::SampleMajor)?.into_shape(shape))
}

/// `fold` (col2im) of `cols` (`[n, R, L]`, or `[R, L]` with `n = 1`) into `shape`.
pub(crate) fn fold(cols: &CudaView, g: &ConvGeom, n: usize, shape: &[usize]) -> Result<CudaArray> {
    let op = "fold";
    let dev = cols.buf.dev.clone();
    let out = output(&dev, op, cols.dtype(), shape)?;
    col2im_into(&dev, op, cols, n, g, None, &out, 0)?;
    Ok(CudaArray::new(out, shape))
}
