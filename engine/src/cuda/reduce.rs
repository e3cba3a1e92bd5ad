//! Reductions (ptx/kernels/reduce.cu): sum, mean, max, min, var and logsumexp over any axis
//! set, argmax/argmin and the extreme masks of max/min backward. The map / combine / post
//! codes here and in the .cu file are one table: keep them in step.
//!
//! A reduction sees its input as a contiguous `[outer, len, inner]` array reduced over `len`:
//! a contiguous input whose reduced axes are adjacent is read in place (rows when `inner` is
//! 1, coalesced columns otherwise); any other input is permuted to put the reduced axes last
//! and copied. Sums run in a fixed order (no atomics): the same input gives the same bits.
//!
//! bf16 / f16 inputs are reduced in f32; what passes from one launch to the next (segment
//! partials, the mean of `var`, the maximum of `logsumexp`) is kept in f32 (`acc_dtype`), and
//! only the final result is rounded to the input's dtype.

use super::elementwise::filled;
use super::rows::{contiguous, Contiguous, RowGroup};
use super::{acc_dtype, kernel};
use crate::cuda::launch::{grid_stride, run};
use crate::cuda::{CudaArray, CudaBuffer, CudaDevice, CudaView};
use crate::{DType, ReduceOp, Result};
use cudarc::driver::PushKernelArg;
use std::sync::Arc;
use tessera_ptx::REDUCE;

const MAP_IDENTITY: i32 = 0;
const MAP_EXP_SHIFTED: i32 = 1;
const MAP_SQUARE_SHIFTED: i32 = 2;

const COMBINE_SUM: i32 = 0;
const COMBINE_MAX: i32 = 1;
const COMBINE_MIN: i32 = 2;

const POST_NONE: i32 = 0;
const POST_DIVIDE: i32 = 1;
const POST_LOG_SHIFTED: i32 = 2;

/// Rows up to this long are reduced by one thread each.
const SHORT_ROW: usize = 16;

/// One reduction launch: `post(combine(map(x, shift[row])))` over each reduced line.
#[derive(Clone, Copy)]
struct Pass<'a> {
    map: i32,
    combine: i32,
    post: i32,
    /// The divisor of `POST_DIVIDE`.
    div: f64,
    /// Per output element; read by the shifted maps and `POST_LOG_SHIFTED`.
    shift: Option<&'a CudaBuffer>,
}

impl Pass<'_> {
    fn plain(combine: i32) -> Pass<'static> {
        Pass { map: MAP_IDENTITY, combine, post: POST_NONE, div: 0.0, shift: None }
    }
}

/// A float tensor seen as a contiguous `[outer, len, inner]` array, reduced over `len`.
struct Lines {
    src: Contiguous,
    outer: usize,
    len: usize,
    inner: usize,
}

impl Lines {
    /// `axes`: normalized, sorted, distinct.
    fn new(x: &CudaView, axes: &[usize], op: &'static str) -> Result<Lines> {
        let shape = x.shape();
        // Size-1 dims change neither the element order nor which axes are adjacent.
        let dims: Vec<(usize, bool)> = (0..x.rank()).filter(|&d| shape[d] != 1).map(|d| (shape[d], axes.contains(&d))).collect();
        let first = dims.iter().position(|d| d.1);
        let last = dims.iter().rposition(|d| d.1);
        let product = |ds: &[(usize, bool)]| ds.iter().map(|d| d.0).product::<usize>();
        if x.is_contiguous() {
            match (first, last) {
                (Some(f), Some(l)) if dims[f..=l].iter().all(|d| d.1) => {
                    let src = contiguous(x, op)?;
                    return Ok(Lines { src, outer: product(&dims[..f]), len: product(&dims[f..=l]), inner: product(&dims[l + 1..]) });
                }
                // Nothing to combine: a thread per element (the column kernel) copies it over.
                (None, None) => return Ok(Lines { src: contiguous(x, op)?, outer: 1, len: 1, inner: x.numel() }),
                _ => {}
            }
        }
        let kept: Vec<usize> = (0..x.rank()).filter(|d| !axes.contains(d)).collect();
        let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
        let src = contiguous(&x.permute(&perm)?, op)?;
        Ok(Lines { src, outer: kept.iter().map(|&d| shape[d]).product(), len: axes.iter().map(|&d| shape[d]).product(), inner: 1 })
    }
}

/// The reduce kernel `base` reading `src` and writing `dst`: `{base}_{dtype}` when they
/// agree, else `{base}_{src}_{dst}` (the halves' f32-partial entry points in reduce.cu).
fn reduce_kernel(base: &str, src: DType, dst: DType) -> String {
    if src == dst {
        kernel(base, src)
    } else {
        format!("{base}_{}_{}", src.name(), dst.name())
    }
}

/// Segments to split each reduced line into, so that few long lines still fill the GPU.
/// Depends only on the shape and the device, so results are reproducible.
fn segments(dev: &CudaDevice, lines: usize, len: usize, inner: usize) -> usize {
    // Rows: a group of threads per (row, segment), each segment at least 8192 long.
    // Columns: a thread per (column, segment), each segment at least 32 long.
    let (target, seg_min) = if inner == 1 { (dev.sm_count as usize * 4, 8192) } else { (dev.sm_count as usize * 2048, 32) };
    if lines >= target || len < 2 * seg_min {
        return 1;
    }
    let segs = target.div_ceil(lines.max(1)).min(len / seg_min).max(1);
    // No empty trailing segment.
    len.div_ceil(len.div_ceil(segs))
}

#[allow(clippy::too_many_arguments)]
fn launch(
    dev: &Arc<CudaDevice>,
    op: &'static str,
    (src, dst): (DType, DType),
    x: u64,
    (outer, len, inner): (usize, usize, usize),
    segs: usize,
    p: &Pass,
    out: &CudaBuffer,
) -> Result<()> {
    let shift = p.shift.map_or(0u64, |b| b.ptr);
    let (o, l, k, s) = (outer as i64, len as i64, inner as i64, segs as i64);
    // Rows of a few elements get a thread each (the column kernel with one column) rather
    // than a warp that would mostly idle.
    if inner == 1 && len.div_ceil(segs) > SHORT_ROW {
        let group = RowGroup::for_len(len.div_ceil(segs));
        let f = dev.function(op, REDUCE, &reduce_kernel(&group.kernel_base("reduce_rows"), src, dst))?;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&o).arg(&l).arg(&s).arg(&p.map).arg(&p.combine).arg(&p.post).arg(&p.div).arg(&x).arg(&shift).arg(&out.ptr);
        run(dev, op, b, group.launch(dev, outer * segs))
    } else {
        let f = dev.function(op, REDUCE, &reduce_kernel("reduce_cols", src, dst))?;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&o).arg(&l).arg(&k).arg(&s).arg(&p.map).arg(&p.combine).arg(&p.post).arg(&p.div).arg(&x).arg(&shift).arg(&out.ptr);
        run(dev, op, b, grid_stride(dev, outer * segs * inner))
    }
}

/// One reduction of non-empty lines of `dtype` into a new `[outer · inner]` buffer of
/// `out_dtype` (`dtype` or its `acc_dtype`), in one launch or (long lines) two: per-segment
/// partials (in the accumulator dtype), then their combination. A shift is `acc_dtype`.
fn reduce_pass(dev: &Arc<CudaDevice>, op: &'static str, (dtype, out_dtype): (DType, DType), x: &Lines, p: Pass) -> Result<CudaBuffer> {
    let out = CudaBuffer::alloc(dev, op, out_dtype, x.outer * x.inner)?;
    if x.outer * x.inner == 0 {
        return Ok(out);
    }
    let segs = segments(dev, x.outer * x.inner, x.len, x.inner);
    if segs == 1 {
        launch(dev, op, (dtype, out_dtype), x.src.ptr, (x.outer, x.len, x.inner), 1, &p, &out)?;
    } else {
        // Freed when this returns; the allocator hands it out again only to later work on
        // the same stream, which runs after these launches.
        let acc = acc_dtype(dtype);
        let partial = CudaBuffer::alloc(dev, op, acc, x.outer * segs * x.inner)?;
        launch(dev, op, (dtype, acc), x.src.ptr, (x.outer, x.len, x.inner), segs, &Pass { post: POST_NONE, ..p }, &partial)?;
        launch(dev, op, (acc, out_dtype), partial.ptr, (x.outer, segs, x.inner), 1, &Pass { map: MAP_IDENTITY, ..p }, &out)?;
    }
    Ok(out)
}

/// Per-line mean and (biased, or unbiased with `unbiased`) variance, each `[outer · inner]`.
fn mean_var(dev: &Arc<CudaDevice>, op: &'static str, dtype: DType, x: &Lines, unbiased: bool) -> Result<(CudaBuffer, CudaBuffer)> {
    let n = x.len as f64;
    // The mean is the variance pass' shift: unrounded (f32 for the halves).
    let mean = reduce_pass(dev, op, (dtype, acc_dtype(dtype)), x, Pass { post: POST_DIVIDE, div: n, ..Pass::plain(COMBINE_SUM) })?;
    let div = if unbiased { n - 1.0 } else { n };
    let p = Pass { map: MAP_SQUARE_SHIFTED, combine: COMBINE_SUM, post: POST_DIVIDE, div, shift: Some(&mean) };
    let var = reduce_pass(dev, op, (dtype, dtype), x, p)?;
    Ok((mean, var))
}

/// `op` over `axes` (normalized, sorted; the caller has checked dtype and empty axes).
pub(crate) fn reduce(x: &CudaView, op: ReduceOp, axes: &[usize], keepdim: bool) -> Result<CudaArray> {
    let name = op.name();
    let dev = x.buf.dev.clone();
    let dtype = x.dtype();
    let out_shape: Vec<usize> = if keepdim {
        (0..x.rank()).map(|d| if axes.contains(&d) { 1 } else { x.shape()[d] }).collect()
    } else {
        (0..x.rank()).filter(|d| !axes.contains(d)).map(|d| x.shape()[d]).collect()
    };
    let lines = Lines::new(x, axes, name)?;
    if lines.len == 0 {
        // Only a sum gets here with an empty axis: all zeros.
        return Ok(CudaArray::new(filled(&dev, name, dtype, lines.outer * lines.inner, 0.0)?, &out_shape));
    }
    let n = lines.len as f64;
    let same = (dtype, dtype);
    let out = match op {
        ReduceOp::Sum => reduce_pass(&dev, name, same, &lines, Pass::plain(COMBINE_SUM))?,
        ReduceOp::Mean => reduce_pass(&dev, name, same, &lines, Pass { post: POST_DIVIDE, div: n, ..Pass::plain(COMBINE_SUM) })?,
        ReduceOp::Max => reduce_pass(&dev, name, same, &lines, Pass::plain(COMBINE_MAX))?,
        ReduceOp::Min => reduce_pass(&dev, name, same, &lines, Pass::plain(COMBINE_MIN))?,
        ReduceOp::Var { unbiased } => mean_var(&dev, name, dtype, &lines, unbiased)?.1,
        ReduceOp::LogSumExp => {
            // The shift is read as the accumulator dtype (exact either way: a maximum is one
            // of the inputs).
            let max = reduce_pass(&dev, name, (dtype, acc_dtype(dtype)), &lines, Pass::plain(COMBINE_MAX))?;
            let p = Pass { map: MAP_EXP_SHIFTED, combine: COMBINE_SUM, post: POST_LOG_SHIFTED, div: 0.0, shift: Some(&max) };
            reduce_pass(&dev, name, same, &lines, p)?
        }
    };
    Ok(CudaArray::new(out, &out_shape))
}

/// Launches `arg_extreme_rows` over a contiguous `[rows, len]` array (`len > 0`), writing
/// the index of each row's first extreme into `idx` and/or marking it in `mask` (0 = none).
#[allow(clippy::too_many_arguments)]
fn arg_extreme_rows(
    dev: &Arc<CudaDevice>,
    op: &'static str,
    dtype: DType,
    x: u64,
    rows: usize,
    len: usize,
    is_max: bool,
    idx: u64,
    mask: u64,
) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    let group = RowGroup::for_len(len);
    let f = dev.function(op, REDUCE, &kernel(&group.kernel_base("arg_extreme_rows"), dtype))?;
    let (r, l, m) = (rows as i64, len as i64, is_max as i32);
    let mut b = dev.stream.launch_builder(&f);
    b.arg(&r).arg(&l).arg(&m).arg(&x).arg(&idx).arg(&mask);
    run(dev, op, b, group.launch(dev, rows))
}

/// argmax / argmin along `axis` (normalized; the caller has checked it is not empty), as
/// i64, with the CPU backend's rule for ties and NaN.
pub(crate) fn arg_extreme(x: &CudaView, op: &'static str, axis: usize, keepdim: bool, is_max: bool) -> Result<CudaArray> {
    let dev = x.buf.dev.clone();
    let kept: Vec<usize> = (0..x.rank()).filter(|&d| d != axis).collect();
    let perm: Vec<usize> = kept.iter().copied().chain([axis]).collect();
    let src = contiguous(&x.permute(&perm)?, op)?;
    let len = x.shape()[axis];
    let rows = x.numel() / len;
    let out = CudaBuffer::alloc(&dev, op, DType::I64, rows)?;
    arg_extreme_rows(&dev, op, x.dtype(), src.ptr, rows, len, is_max, out.ptr, 0)?;
    let shape: Vec<usize> = if keepdim {
        (0..x.rank()).map(|d| if d == axis { 1 } else { x.shape()[d] }).collect()
    } else {
        kept.iter().map(|&d| x.shape()[d]).collect()
    };
    Ok(CudaArray::new(out, &shape))
}

/// The u8 mask of the first maximum (or minimum) of each line over `axes` (normalized,
/// sorted), in `x`'s shape; returned as a permuted view, like the CPU backend's.
pub(crate) fn extreme_mask(x: &CudaView, axes: &[usize], is_max: bool) -> Result<CudaArray> {
    let op = "extreme_mask";
    let dev = x.buf.dev.clone();
    let kept: Vec<usize> = (0..x.rank()).filter(|d| !axes.contains(d)).collect();
    let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let permuted = x.permute(&perm)?;
    let len: usize = axes.iter().map(|&a| x.shape()[a]).product();
    let mask = CudaBuffer::alloc(&dev, op, DType::U8, x.numel())?;
    if let Some(rows) = x.numel().checked_div(len) {
        let src = contiguous(&permuted, op)?;
        arg_extreme_rows(&dev, op, x.dtype(), src.ptr, rows, len, is_max, 0, mask.ptr)?;
    }
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    CudaArray::new(mask, permuted.shape()).permute(&inverse)
}
