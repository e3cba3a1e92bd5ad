//! Layout-building kernels (ptx/kernels/index.cu): one strided-into-strided copy serves `cat`
//! and `scatter_into_zeros`; `pad` and its reflect backward, and `tile` for `repeat`, have
//! their own. Called from engine/src/ops/shape.rs and view.rs after their checks.

use super::index::{extents, Scalar};
use super::{common_device, kernel, output};
use crate::cuda::launch::{grid_stride, run, StridedArg, StridedArgs};
use crate::cuda::{CudaArray, CudaBuffer, CudaDevice, CudaView};
use crate::layout::{contiguous_strides, Layout};
use crate::{PadMode, Result};
use cudarc::driver::PushKernelArg;
use std::sync::Arc;
use tessera_ptx::INDEX;

/// Writes `src` into the view `dst` (of `src`'s shape) of `out`; the view must not overlap
/// itself (narrow, slice and select views do not).
fn copy_into(dev: &Arc<CudaDevice>, op: &'static str, out: &CudaBuffer, dst: &Layout, src: &CudaView) -> Result<()> {
    let n = src.numel();
    if n == 0 {
        return Ok(());
    }
    let s = StridedArgs::broadcast(op, src.shape(), &[dst, src.layout()])?.args;
    let f = dev.function(op, INDEX, &kernel("copy_into", src.dtype()))?;
    let (n64, ps) = (n as i64, src.buf.ptr);
    let mut l = dev.stream.launch_builder(&f);
    l.arg(&n64).arg(&s[0]).arg(&out.ptr).arg(&s[1]).arg(&ps);
    run(dev, op, l, grid_stride(dev, n))
}

/// The tensors laid side by side along `a` into a new tensor of `shape`: one copy each.
pub(crate) fn cat(tensors: &[&CudaView], a: usize, shape: &[usize]) -> Result<CudaArray> {
    let op = "cat";
    let dev = common_device(op, tensors)?;
    let out = output(&dev, op, tensors[0].dtype(), shape)?;
    let strides = contiguous_strides(shape);
    let mut at = 0;
    for t in tensors {
        let dst = Layout { shape: t.shape().to_vec(), strides: strides.clone(), offset: at * strides[a] as usize };
        copy_into(&dev, op, &out, &dst, t)?;
        at += t.shape()[a];
    }
    Ok(CudaArray::new(out, shape))
}

/// Zeros of `full_shape` with `src` written into the view `target` of them.
pub(crate) fn scatter_into_zeros(src: &CudaView, full_shape: &[usize], target: &Layout) -> Result<CudaArray> {
    let op = "scatter_into_zeros";
    let dev = common_device(op, &[src])?;
    let out = super::elementwise::filled(&dev, op, src.dtype(), full_shape.iter().product(), 0.0)?;
    copy_into(&dev, op, &out, target, src)?;
    Ok(CudaArray::new(out, full_shape))
}

/// `x` padded to `shape` by `full[d] = (before, after)` on every axis (checked).
pub(crate) fn pad(x: &CudaView, shape: &[usize], full: &[(usize, usize)], mode: PadMode) -> Result<CudaArray> {
    let op = "pad";
    let dev = common_device(op, &[x])?;
    let out = output(&dev, op, x.dtype(), shape)?;
    let n: usize = shape.iter().product();
    if n > 0 {
        let sx = StridedArg::uncollapsed(op, x.layout())?;
        let out_shape = extents(op, shape)?;
        let before = extents(op, &full.iter().map(|p| p.0).collect::<Vec<_>>())?;
        let (reflect, fill) = match mode {
            PadMode::Constant(v) => (0i32, Scalar::new(x.dtype(), v)),
            PadMode::Reflect => (1i32, Scalar::new(x.dtype(), 0.0)),
        };
        let f = dev.function(op, INDEX, &kernel("pad", x.dtype()))?;
        let (n64, px) = (n as i64, x.buf.ptr);
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&sx).arg(&out_shape).arg(&before).arg(&reflect);
        fill.push(&mut l);
        l.arg(&px).arg(&out.ptr);
        run(&dev, op, l, grid_stride(&dev, n))?;
    }
    Ok(CudaArray::new(out, shape))
}

/// One axis of the reflect-pad backward: the gradient `g` (contiguous) of a tensor padded
/// by `before` (and some after) along axis `d`, folded back to `len` along it.
pub(crate) fn pad_backward_reflect_axis(g: &CudaView, d: usize, before: usize, len: usize) -> Result<CudaArray> {
    let op = "pad_backward";
    let dev = common_device(op, &[g])?;
    let padded_len = g.shape()[d];
    let mut shape = g.shape().to_vec();
    shape[d] = len;
    let out = output(&dev, op, g.dtype(), &shape)?;
    let n: usize = shape.iter().product();
    if n > 0 {
        let inner: usize = shape[d + 1..].iter().product();
        let f = dev.function(op, INDEX, &kernel("pad_backward_reflect", g.dtype()))?;
        let pg = g.buf.ptr_at(g.layout().offset);
        let (n64, inner64, len64, padded64, before64) = (n as i64, inner as i64, len as i64, padded_len as i64, before as i64);
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&inner64).arg(&len64).arg(&padded64).arg(&before64).arg(&pg).arg(&out.ptr);
        run(&dev, op, l, grid_stride(&dev, n))?;
    }
    Ok(CudaArray::new(out, &shape))
}

/// `x` tiled to `shape` (`repeat`): `lead` new leading axes, then x's own, each repeated
/// `shape[d] / extent` times.
pub(crate) fn tile(x: &CudaView, lead: usize, shape: &[usize]) -> Result<CudaArray> {
    let op = "repeat";
    let dev = common_device(op, &[x])?;
    let out = output(&dev, op, x.dtype(), shape)?;
    let n: usize = shape.iter().product();
    if n > 0 {
        let l = x.layout();
        let padded = Layout {
            shape: std::iter::repeat_n(1, lead).chain(l.shape.iter().copied()).collect(),
            strides: std::iter::repeat_n(0, lead).chain(l.strides.iter().copied()).collect(),
            offset: l.offset,
        };
        let sx = StridedArg::uncollapsed(op, &padded)?;
        let out_shape = extents(op, shape)?;
        let f = dev.function(op, INDEX, &kernel("tile", x.dtype()))?;
        let (n64, px) = (n as i64, x.buf.ptr);
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&sx).arg(&out_shape).arg(&px).arg(&out.ptr);
        run(&dev, op, l, grid_stride(&dev, n))?;
    }
    Ok(CudaArray::new(out, shape))
}
