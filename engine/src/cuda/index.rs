//! Indexing kernels (ptx/kernels/index.cu): index range checks, gather (which also serves
//! index_select), index_add, scatter_add, masked_fill and one_hot. The engine ops
//! (engine/src/ops/index.rs) check shapes and dtypes first, then call these.
//!
//! Accumulations are deterministic and in the CPU's order (each output element is summed by
//! one thread), so GPU results have the CPU's bits.

use super::{common_device, kernel, output};
use crate::cuda::launch::{grid_stride, run, StridedArg, StridedArgs, MAX_RANK};
use crate::cuda::{CudaArray, CudaBuffer, CudaDevice, CudaView};
use crate::layout::Layout;
use crate::{CpuStorage, DType, Error, Result};
use cudarc::driver::{LaunchArgs, PushKernelArg};
use std::sync::Arc;
use tessera_ptx::INDEX;

/// `struct Extents` in index.cu: one value per dim.
pub(crate) fn extents(op: &'static str, values: &[usize]) -> Result<[i64; MAX_RANK]> {
    check_rank(op, values)?;
    let mut e = [1i64; MAX_RANK];
    for (d, &v) in values.iter().enumerate() {
        e[d] = v as i64;
    }
    Ok(e)
}

fn check_rank(op: &'static str, shape: &[usize]) -> Result<()> {
    if shape.len() > MAX_RANK {
        return Err(Error::invalid(op, format!("CUDA kernels take at most {MAX_RANK} dims here, got shape {shape:?}")));
    }
    Ok(())
}

/// A host value converted to a tensor's dtype as the CPU backend does (`T::from_f64`, Rust's
/// `as`), for kernels with a `T` parameter.
pub(crate) enum Scalar {
    F32(f32),
    F64(f64),
    I64(i64),
    U8(u8),
    /// A bf16 / f16 value as its 16-bit pattern (the kernels' 2-byte `bf16` / `f16` structs).
    Half(u16),
}

impl Scalar {
    pub fn new(dtype: DType, v: f64) -> Scalar {
        match dtype {
            DType::F32 => Scalar::F32(v as f32),
            DType::F64 => Scalar::F64(v),
            DType::I64 => Scalar::I64(v as i64),
            DType::U8 => Scalar::U8(v as u8),
            DType::BF16 => Scalar::Half(<half::bf16 as crate::Element>::from_f64(v).to_bits()),
            DType::F16 => Scalar::Half(<half::f16 as crate::Element>::from_f64(v).to_bits()),
        }
    }

    pub fn push<'a>(&'a self, l: &mut LaunchArgs<'a>) {
        match self {
            Scalar::F32(v) => l.arg(v),
            Scalar::F64(v) => l.arg(v),
            Scalar::I64(v) => l.arg(v),
            Scalar::U8(v) => l.arg(v),
            Scalar::Half(v) => l.arg(v),
        };
    }
}

/// One i64 element of a device buffer, copied to the host.
pub(crate) fn read_i64(buf: &CudaBuffer, op: &'static str, at: usize) -> Result<i64> {
    match buf.download(op, at, 1)? {
        CpuStorage::I64(v) => Ok(v[0]),
        other => unreachable!("an i64 buffer downloaded as {:?}", other.dtype()),
    }
}

/// Storage position of logical (row-major) element `i` of a layout.
pub(crate) fn storage_position(l: &Layout, mut i: usize) -> usize {
    let mut at = l.offset as isize;
    for d in (0..l.shape.len()).rev() {
        at += (i % l.shape[d]) as isize * l.strides[d];
        i /= l.shape[d];
    }
    at as usize
}

/// The first index (in logical order) outside `0..size`, if any, found on the device: the
/// CPU backend names that same one. Costs one small device→host copy (a synchronization).
pub(crate) fn first_out_of_range(op: &'static str, index: &CudaView, size: usize) -> Result<Option<i64>> {
    let buf = index.buf;
    let dev = buf.dev.clone();
    let n = index.numel();
    if n == 0 {
        return Ok(None);
    }
    // The kernel lowers `first` from n to the smallest bad position.
    let first = super::elementwise::filled(&dev, op, DType::I64, 1, n as f64)?;
    let s = StridedArg::of(op, index.layout())?;
    let f = dev.function(op, INDEX, "first_bad_index")?;
    let (n64, size64) = (n as i64, size as i64);
    let mut l = dev.stream.launch_builder(&f);
    l.arg(&n64).arg(&s).arg(&buf.ptr).arg(&size64).arg(&first.ptr);
    run(&dev, op, l, grid_stride(&dev, n))?;
    let pos = read_i64(&first, op, 0)? as usize;
    if pos >= n {
        return Ok(None);
    }
    Ok(Some(read_i64(buf, op, storage_position(index.layout(), pos))?))
}

/// `out[i] = x[xz(i) + idx[iz(i)] · axis_stride]` over `out_shape`: `xz` is x's layout seen
/// over the output shape with the gathered axis' stride zeroed, `iz` the index's.
#[allow(clippy::too_many_arguments)]
fn gather_with(
    op: &'static str,
    dev: &Arc<CudaDevice>,
    x: &CudaView,
    index: &CudaView,
    out_shape: &[usize],
    xz: &Layout,
    axis_stride: isize,
    iz: &Layout,
) -> Result<CudaArray> {
    let out = output(dev, op, x.dtype(), out_shape)?;
    let n: usize = out_shape.iter().product();
    if n > 0 {
        let s = StridedArgs::broadcast(op, out_shape, &[xz, iz])?.args;
        let f = dev.function(op, INDEX, &kernel("gather", x.dtype()))?;
        let (px, pi) = (x.buf.ptr, index.buf.ptr);
        let (n64, sa) = (n as i64, axis_stride as i64);
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&s[0]).arg(&sa).arg(&px).arg(&s[1]).arg(&pi).arg(&out.ptr);
        run(dev, op, l, grid_stride(dev, n))?;
    }
    Ok(CudaArray::new(out, out_shape))
}

/// x's layout over `shape` with axis `a`'s stride zeroed, and that stride.
fn without_axis(l: &Layout, shape: &[usize], a: usize) -> (Layout, isize) {
    let mut strides = l.strides.clone();
    let sa = std::mem::replace(&mut strides[a], 0);
    (Layout { shape: shape.to_vec(), strides, offset: l.offset }, sa)
}

/// `x.index_select(a, index)` of shape `out_shape` (indices already checked).
pub(crate) fn index_select(x: &CudaView, a: usize, index: &CudaView, out_shape: &[usize]) -> Result<CudaArray> {
    let op = "index_select";
    let dev = common_device(op, &[x, index])?;
    let (xz, sa) = without_axis(x.layout(), out_shape, a);
    // The 1-D (or 0-d) index, broadcast along every other axis.
    let il = index.layout();
    let mut istrides = vec![0isize; out_shape.len()];
    istrides[a] = il.strides.first().copied().unwrap_or(0);
    let iz = Layout { shape: out_shape.to_vec(), strides: istrides, offset: il.offset };
    gather_with(op, &dev, x, index, out_shape, &xz, sa, &iz)
}

/// `x.gather(a, index)` (indices and shapes already checked).
pub(crate) fn gather(x: &CudaView, a: usize, index: &CudaView) -> Result<CudaArray> {
    let op = "gather";
    let dev = common_device(op, &[x, index])?;
    let (xz, sa) = without_axis(x.layout(), index.shape(), a);
    gather_with(op, &dev, x, index, index.shape(), &xz, sa, index.layout())
}

/// `x.index_add(a, index, src)`; `host_index` holds the checked index values. Each output
/// slice adds, in index order, the source slices whose index names it: the positions are
/// grouped per target on the host (a stable counting sort) and uploaded.
pub(crate) fn index_add(x: &CudaView, a: usize, index: &CudaView, host_index: &[i64], src: &CudaView) -> Result<CudaArray> {
    let op = "index_add";
    let dev = common_device(op, &[x, index, src])?;
    let shape = x.shape();
    let out = output(&dev, op, x.dtype(), shape)?;
    let n = x.numel();
    if n == 0 {
        return Ok(CudaArray::new(out, shape));
    }
    let axis_len = shape[a];
    let inner: usize = shape[a + 1..].iter().product();
    let mut starts = vec![0i64; axis_len + 1];
    for &t in host_index {
        starts[t as usize + 1] += 1;
    }
    for t in 0..axis_len {
        starts[t + 1] += starts[t];
    }
    let mut next = starts.clone();
    let mut order = vec![0i64; host_index.len()];
    for (j, &t) in host_index.iter().enumerate() {
        order[next[t as usize] as usize] = j as i64;
        next[t as usize] += 1;
    }
    let starts = CudaBuffer::upload(&dev, op, &CpuStorage::I64(starts))?;
    let order = CudaBuffer::upload(&dev, op, &CpuStorage::I64(order))?;
    let (srz, src_axis_stride) = without_axis(src.layout(), shape, a);
    let s = StridedArgs::broadcast(op, shape, &[x.layout(), &srz])?.args;
    let f = dev.function(op, INDEX, &kernel("index_add", x.dtype()))?;
    let (px, ps) = (x.buf.ptr, src.buf.ptr);
    let (n64, inner64, len64, ssa) = (n as i64, inner as i64, axis_len as i64, src_axis_stride as i64);
    let mut l = dev.stream.launch_builder(&f);
    l.arg(&n64).arg(&inner64).arg(&len64).arg(&s[0]).arg(&px).arg(&s[1]).arg(&ssa).arg(&ps);
    l.arg(&starts.ptr).arg(&order.ptr).arg(&out.ptr);
    run(&dev, op, l, grid_stride(&dev, n))?;
    Ok(CudaArray::new(out, shape))
}

/// `x.scatter_add(a, index, src)` (indices and shapes already checked). Each output element
/// scans the index entries along `a` that can reach it: work is `numel(x) · index.shape[a]`.
pub(crate) fn scatter_add(x: &CudaView, a: usize, index: &CudaView, src: &CudaView) -> Result<CudaArray> {
    let op = "scatter_add";
    let dev = common_device(op, &[x, index, src])?;
    let out = output(&dev, op, x.dtype(), x.shape())?;
    let n = x.numel();
    if n > 0 {
        let (so, si, ss) = (
            StridedArg::uncollapsed(op, x.layout())?,
            StridedArg::uncollapsed(op, index.layout())?,
            StridedArg::uncollapsed(op, src.layout())?,
        );
        let f = dev.function(op, INDEX, &kernel("scatter_add", x.dtype()))?;
        let (px, pi, ps) = (x.buf.ptr, index.buf.ptr, src.buf.ptr);
        let (n64, axis) = (n as i64, a as i32);
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&axis).arg(&so).arg(&px).arg(&si).arg(&pi).arg(&ss).arg(&ps).arg(&out.ptr);
        run(&dev, op, l, grid_stride(&dev, n))?;
    }
    Ok(CudaArray::new(out, x.shape()))
}

/// `value` (converted to x's dtype) where the broadcast mask is non-zero, x elsewhere.
pub(crate) fn masked_fill(x: &CudaView, mask: &CudaView, value: f64) -> Result<CudaArray> {
    let op = "masked_fill";
    let dev = common_device(op, &[x, mask])?;
    let shape = x.shape();
    let out = output(&dev, op, x.dtype(), shape)?;
    let n = x.numel();
    if n > 0 {
        let s = StridedArgs::broadcast(op, shape, &[x.layout(), mask.layout()])?.args;
        let f = dev.function(op, INDEX, &kernel("masked_fill", x.dtype()))?;
        let (px, pm) = (x.buf.ptr, mask.buf.ptr);
        let (n64, v) = (n as i64, Scalar::new(x.dtype(), value));
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&s[0]).arg(&px).arg(&s[1]).arg(&pm);
        v.push(&mut l);
        l.arg(&out.ptr);
        run(&dev, op, l, grid_stride(&dev, n))?;
    }
    Ok(CudaArray::new(out, shape))
}

/// f32 one-hot rows of `classes` entries for checked i64 labels.
pub(crate) fn one_hot(labels: &CudaView, classes: usize, shape: &[usize]) -> Result<CudaArray> {
    let op = "one_hot";
    let dev = common_device(op, &[labels])?;
    let out = output(&dev, op, DType::F32, shape)?;
    let n: usize = shape.iter().product();
    if n > 0 {
        let s = StridedArg::of(op, labels.layout())?;
        let f = dev.function(op, INDEX, "one_hot")?;
        let (n64, c64, pl) = (n as i64, classes as i64, labels.buf.ptr);
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&c64).arg(&s).arg(&pl).arg(&out.ptr);
        run(&dev, op, l, grid_stride(&dev, n))?;
    }
    Ok(CudaArray::new(out, shape))
}
