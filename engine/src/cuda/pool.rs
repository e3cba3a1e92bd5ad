//! 2-D pooling on GPUs (ptx/kernels/pool.cu): max pooling with indices, average and adaptive
//! average pooling, and their backward. The engine ops (engine/src/ops/conv/pool.rs) validate
//! the windows and call these with the geometry; the kernels recompute each window from it.

use super::conv::View4;
use super::elementwise::{cast, filled};
use super::index::{read_i64, storage_position};
use super::{acc_dtype, common_device, kernel, output};
use crate::cuda::launch::{grid_stride, run};
use crate::cuda::{CudaArray, CudaView};
use crate::kinds::Pair;
use crate::{CpuStorage, DType, Error, Result};
use cudarc::driver::{DeviceRepr, PushKernelArg};
use tessera_ptx::POOL;

/// Mirrors `struct PoolGeom` in ptx/kernels/pool.cu: `planes` planes of `h × w` pooled to
/// `oh × ow`, plane `p` being `(p / lead1, p % lead1)` of the `[n, lead1, h, w]` view.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolGeom {
    planes: i64,
    lead1: i64,
    h: i64,
    w: i64,
    oh: i64,
    ow: i64,
    kh: i64,
    kw: i64,
    sh: i64,
    sw: i64,
    ph: i64,
    pw: i64,
    dh: i64,
    dw: i64,
}

unsafe impl DeviceRepr for PoolGeom {}

impl PoolGeom {
    /// Pooling of an input of `shape` (`[N, C, H, W]` or `[C, H, W]`, validated) to
    /// `(oh, ow)` with the given windows (adaptive pooling passes any: they are unused).
    pub fn new(shape: &[usize], (oh, ow): Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> PoolGeom {
        let r = shape.len();
        let i = |v: usize| v as i64;
        PoolGeom {
            planes: i(shape[..r - 2].iter().product()),
            lead1: i(shape[r - 3]),
            h: i(shape[r - 2]),
            w: i(shape[r - 1]),
            oh: i(oh),
            ow: i(ow),
            kh: i(kernel.0),
            kw: i(kernel.1),
            sh: i(stride.0),
            sw: i(stride.1),
            ph: i(padding.0),
            pw: i(padding.1),
            dh: i(dilation.0),
            dw: i(dilation.1),
        }
    }

    fn outputs(&self) -> usize {
        (self.planes * self.oh * self.ow) as usize
    }

    fn inputs(&self) -> usize {
        (self.planes * self.h * self.w) as usize
    }
}

/// The maxima and their i64 plane indices, each of `out_shape`.
pub(crate) fn max_pool2d(x: &CudaView, g: &PoolGeom, out_shape: &[usize]) -> Result<(CudaArray, CudaArray)> {
    let op = "max_pool2d";
    let dev = x.buf.dev.clone();
    let vals = output(&dev, op, x.dtype(), out_shape)?;
    let idx = output(&dev, op, DType::I64, out_shape)?;
    let total = g.outputs();
    if total > 0 {
        let (total64, xv, px) = (total as i64, View4::of(x), x.buf.ptr);
        let f = dev.function(op, POOL, &kernel("max_pool2d", x.dtype()))?;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&total64).arg(g).arg(&xv).arg(&px).arg(&vals.ptr).arg(&idx.ptr);
        run(&dev, op, b, grid_stride(&dev, total))?;
    }
    Ok((CudaArray::new(vals, out_shape), CudaArray::new(idx, out_shape)))
}

/// Each gradient added at its index of a zero `input_shape` tensor. Errors, as the CPU does,
/// on the first index outside its plane (the check costs one 8-byte download).
pub(crate) fn max_pool2d_backward(grad: &CudaView, indices: &CudaView, input_shape: &[usize]) -> Result<CudaArray> {
    let op = "max_pool2d_backward";
    let dev = common_device(op, &[grad, indices])?;
    let r = input_shape.len();
    let (h, w) = (input_shape[r - 2], input_shape[r - 1]);
    let plane = h * w;
    // The kernel adds into its output one gradient at a time: for bf16 / f16 that is an f32
    // buffer, rounded to the dtype once at the end.
    let acc = acc_dtype(grad.dtype());
    let out = filled(&dev, op, acc, input_shape.iter().product(), 0.0)?;
    let gs = grad.shape();
    let (planes, oh, ow) = (gs[..r - 2].iter().product::<usize>(), gs[r - 2], gs[r - 1]);
    if planes * oh * ow > 0 {
        // All ones: larger than any flat position, which the kernel's atomicMin lowers.
        let bad = filled(&dev, op, DType::I64, 1, -1.0)?;
        let dims = [planes as i64, input_shape[r - 3] as i64, oh as i64, ow as i64, plane as i64];
        let (gv, iv) = (View4::of(grad), View4::of(indices));
        let (pg, pi) = (grad.buf.ptr, indices.buf.ptr);
        let f = dev.function(op, POOL, &kernel("max_pool2d_backward", grad.dtype()))?;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&dims[0]).arg(&dims[1]).arg(&dims[2]).arg(&dims[3]).arg(&dims[4]);
        b.arg(&gv).arg(&pg).arg(&iv).arg(&pi).arg(&out.ptr).arg(&bad.ptr);
        run(&dev, op, b, grid_stride(&dev, planes))?;
        let CpuStorage::I64(first_bad) = bad.download(op, 0, 1)? else { unreachable!("an i64 buffer") };
        if first_bad[0] >= 0 {
            let at = first_bad[0] as usize;
            let value = read_i64(indices.buf, op, storage_position(indices.layout(), at))?;
            return Err(Error::invalid(
                op,
                format!("index {value} is out of range for an input plane of {h}x{w} = {plane} elements (input shape {input_shape:?})"),
            ));
        }
    }
    let out = CudaArray::new(out, input_shape);
    if acc == grad.dtype() {
        Ok(out)
    } else {
        cast(&out.view(), grad.dtype())
    }
}

/// Average pooling to `out_shape`.
pub(crate) fn avg_pool2d(x: &CudaView, g: &PoolGeom, count_include_pad: bool, out_shape: &[usize]) -> Result<CudaArray> {
    forward("avg_pool2d", x, g, Some(count_include_pad), out_shape)
}

/// Adaptive average pooling to `out_shape`.
pub(crate) fn adaptive_avg_pool2d(x: &CudaView, g: &PoolGeom, out_shape: &[usize]) -> Result<CudaArray> {
    forward("adaptive_avg_pool2d", x, g, None, out_shape)
}

/// The gradient of [`avg_pool2d`] for an input of `input_shape`.
pub(crate) fn avg_pool2d_backward(grad: &CudaView, g: &PoolGeom, count_include_pad: bool, input_shape: &[usize]) -> Result<CudaArray> {
    backward("avg_pool2d_backward", grad, g, Some(count_include_pad), input_shape)
}

/// The gradient of [`adaptive_avg_pool2d`] for an input of `input_shape`.
pub(crate) fn adaptive_avg_pool2d_backward(grad: &CudaView, g: &PoolGeom, input_shape: &[usize]) -> Result<CudaArray> {
    backward("adaptive_avg_pool2d_backward", grad, g, None, input_shape)
}

/// One thread per output: `avg_pool2d` when `count_include_pad` is given, else adaptive.
fn forward(op: &'static str, x: &CudaView, g: &PoolGeom, count_include_pad: Option<bool>, out_shape: &[usize]) -> Result<CudaArray> {
    let dev = x.buf.dev.clone();
    let out = output(&dev, op, x.dtype(), out_shape)?;
    let total = g.outputs();
    if total > 0 {
        let (total64, xv, px) = (total as i64, View4::of(x), x.buf.ptr);
        let f = dev.function(op, POOL, &kernel(op, x.dtype()))?;
        let cip = count_include_pad.map(i32::from);
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&total64).arg(g);
        if let Some(cip) = &cip {
            b.arg(cip);
        }
        b.arg(&xv).arg(&px).arg(&out.ptr);
        run(&dev, op, b, grid_stride(&dev, total))?;
    }
    Ok(CudaArray::new(out, out_shape))
}

/// One thread per input pixel, gathering the windows that cover it.
fn backward(op: &'static str, grad: &CudaView, g: &PoolGeom, count_include_pad: Option<bool>, input_shape: &[usize]) -> Result<CudaArray> {
    let dev = grad.buf.dev.clone();
    let out = output(&dev, op, grad.dtype(), input_shape)?;
    let total = g.inputs();
    if total > 0 {
        let (total64, gv, pg) = (total as i64, View4::of(grad), grad.buf.ptr);
        let f = dev.function(op, POOL, &kernel(op, grad.dtype()))?;
        let cip = count_include_pad.map(i32::from);
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&total64).arg(g);
        if let Some(cip) = &cip {
            b.arg(cip);
        }
        b.arg(&gv).arg(&pg).arg(&out.ptr);
        run(&dev, op, b, grid_stride(&dev, total))?;
    }
    Ok(CudaArray::new(out, input_shape))
}
