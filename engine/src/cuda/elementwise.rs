//! Elementwise kernels (ptx/kernels/elementwise.cu): strided copy, casts, fill, unary ops
//! and their fused backward, broadcasting binary ops, comparisons and `where`. The op codes
//! here and in the .cu file are one table: keep them in step.

use super::{common_device, kernel, output};
use crate::cuda::launch::{grid_stride, run, StridedArg, StridedArgs};
use crate::cuda::{CudaArray, CudaBuffer, CudaDevice, CudaView};
use crate::{BinaryOp, CmpOp, DType, Device, Result, UnaryOp};
use cudarc::driver::PushKernelArg;
use std::sync::Arc;
use tessera_ptx::ELEMENTWISE;

fn unary_code(op: UnaryOp) -> (i32, f64, f64) {
    use UnaryOp::*;
    match op {
        Neg => (0, 0.0, 0.0),
        Abs => (1, 0.0, 0.0),
        Exp => (2, 0.0, 0.0),
        Log => (3, 0.0, 0.0),
        Sqrt => (4, 0.0, 0.0),
        Rsqrt => (5, 0.0, 0.0),
        Sin => (6, 0.0, 0.0),
        Cos => (7, 0.0, 0.0),
        Tanh => (8, 0.0, 0.0),
        Sigmoid => (9, 0.0, 0.0),
        Relu => (10, 0.0, 0.0),
        GeluErf => (11, 0.0, 0.0),
        GeluTanh => (12, 0.0, 0.0),
        Silu => (13, 0.0, 0.0),
        Softplus => (14, 0.0, 0.0),
        Sign => (15, 0.0, 0.0),
        Floor => (16, 0.0, 0.0),
        Round => (17, 0.0, 0.0),
        Square => (18, 0.0, 0.0),
        Recip => (19, 0.0, 0.0),
        Clamp(lo, hi) => (20, lo, hi),
        PowScalar(p) => (21, p, 0.0),
        AddScalar(c) => (22, c, 0.0),
        MulScalar(c) => (23, c, 0.0),
    }
}

fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Pow => 4,
        BinaryOp::Maximum => 5,
        BinaryOp::Minimum => 6,
    }
}

fn cmp_code(op: CmpOp) -> i32 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::Ne => 1,
        CmpOp::Lt => 2,
        CmpOp::Le => 3,
        CmpOp::Gt => 4,
        CmpOp::Ge => 5,
    }
}

/// A contiguous copy of a strided view.
pub(crate) fn contiguous(t: &CudaView) -> Result<CudaArray> {
    let op = "contiguous";
    let src = t.buf;
    let dev = src.dev.clone();
    let out = output(&dev, op, t.dtype(), t.shape())?;
    let n = t.numel() as i64;
    if n > 0 {
        let s = StridedArg::of(op, t.layout())?;
        let f = dev.function(op, ELEMENTWISE, &kernel("copy_strided", t.dtype()))?;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&n).arg(&s).arg(&src.ptr).arg(&out.ptr);
        run(&dev, op, b, grid_stride(&dev, n as usize))?;
    }
    Ok(CudaArray::new(out, t.shape()))
}

/// The values converted to `dtype`, with the CPU backend's rules.
pub(crate) fn cast(t: &CudaView, dtype: DType) -> Result<CudaArray> {
    let op = "to_dtype";
    let src = t.buf;
    let dev = src.dev.clone();
    let out = output(&dev, op, dtype, t.shape())?;
    let n = t.numel() as i64;
    if n > 0 {
        let s = StridedArg::of(op, t.layout())?;
        let f = dev.function(op, ELEMENTWISE, &format!("cast_{}_{}", t.dtype().name(), dtype.name()))?;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&n).arg(&s).arg(&src.ptr).arg(&out.ptr);
        run(&dev, op, b, grid_stride(&dev, n as usize))?;
    }
    Ok(CudaArray::new(out, t.shape()))
}

/// A new buffer of `len` elements all equal to `value`.
pub(crate) fn filled(dev: &Arc<CudaDevice>, op: &'static str, dtype: DType, len: usize, value: f64) -> Result<CudaBuffer> {
    let out = CudaBuffer::alloc(dev, op, dtype, len)?;
    if len > 0 {
        let f = dev.function(op, ELEMENTWISE, &kernel("fill", dtype))?;
        let n = len as i64;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&n).arg(&value).arg(&out.ptr);
        run(dev, op, b, grid_stride(dev, len))?;
    }
    Ok(out)
}

/// A tensor of `shape` filled with `value` on a GPU.
pub(crate) fn full(ordinal: usize, shape: &[usize], value: f64, dtype: DType) -> Result<CudaArray> {
    let dev = crate::cuda::device("full", ordinal)?;
    Ok(CudaArray::new(filled(&dev, "full", dtype, shape.iter().product(), value)?, shape))
}

pub(crate) fn unary(x: &CudaView, op: UnaryOp) -> Result<CudaArray> {
    let name = op.name();
    let src = x.buf;
    let dev = src.dev.clone();
    let out = output(&dev, name, x.dtype(), x.shape())?;
    let n = x.numel() as i64;
    if n > 0 {
        let (code, p0, p1) = unary_code(op);
        let s = StridedArg::of(name, x.layout())?;
        let f = dev.function(name, ELEMENTWISE, &kernel("unary", x.dtype()))?;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&n).arg(&code).arg(&p0).arg(&p1).arg(&s).arg(&src.ptr).arg(&out.ptr);
        run(&dev, name, b, grid_stride(&dev, n as usize))?;
    }
    Ok(CudaArray::new(out, x.shape()))
}

/// `grad · f'(x)` given `y = f(x)`; all three share a shape.
pub(crate) fn unary_backward(x: &CudaView, op: UnaryOp, y: &CudaView, grad: &CudaView) -> Result<CudaArray> {
    let name = op.name();
    let dev = common_device(name, &[x, y, grad])?;
    let out = output(&dev, name, x.dtype(), x.shape())?;
    let n = x.numel() as i64;
    if n > 0 {
        let (code, p0, p1) = unary_code(op);
        let a = StridedArgs::broadcast(name, x.shape(), &[x.layout(), y.layout(), grad.layout()])?.args;
        let f = dev.function(name, ELEMENTWISE, &kernel("unary_backward", x.dtype()))?;
        let (px, py, pg) = (x.buf.ptr, y.buf.ptr, grad.buf.ptr);
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&n).arg(&code).arg(&p0).arg(&p1).arg(&a[0]).arg(&px).arg(&a[1]).arg(&py).arg(&a[2]).arg(&pg).arg(&out.ptr);
        run(&dev, name, b, grid_stride(&dev, n as usize))?;
    }
    Ok(CudaArray::new(out, x.shape()))
}

/// `kernel(code, a, b) → out` over the broadcast `shape`, for binary ops and comparisons.
fn two_operand(
    base: &str,
    name: &'static str,
    code: i32,
    a: &CudaView,
    b: &CudaView,
    shape: &[usize],
    out_dtype: DType,
) -> Result<CudaArray> {
    let dev = common_device(name, &[a, b])?;
    let out = output(&dev, name, out_dtype, shape)?;
    let n: usize = shape.iter().product();
    if n > 0 {
        let s = StridedArgs::broadcast(name, shape, &[a.layout(), b.layout()])?.args;
        let f = dev.function(name, ELEMENTWISE, &kernel(base, a.dtype()))?;
        let (pa, pb) = (a.buf.ptr, b.buf.ptr);
        let n64 = n as i64;
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&code).arg(&s[0]).arg(&pa).arg(&s[1]).arg(&pb).arg(&out.ptr);
        run(&dev, name, l, grid_stride(&dev, n))?;
    }
    Ok(CudaArray::new(out, shape))
}

pub(crate) fn binary(a: &CudaView, b: &CudaView, op: BinaryOp, shape: &[usize]) -> Result<CudaArray> {
    two_operand("binary", op.name(), binary_code(op), a, b, shape, a.dtype())
}

pub(crate) fn compare(a: &CudaView, b: &CudaView, op: CmpOp, name: &'static str, shape: &[usize]) -> Result<CudaArray> {
    two_operand("compare", name, cmp_code(op), a, b, shape, DType::U8)
}

pub(crate) fn where_(cond: &CudaView, on_true: &CudaView, on_false: &CudaView, shape: &[usize]) -> Result<CudaArray> {
    let name = "where";
    let dev = common_device(name, &[cond, on_true, on_false])?;
    let out = output(&dev, name, on_true.dtype(), shape)?;
    let n: usize = shape.iter().product();
    if n > 0 {
        let s = StridedArgs::broadcast(name, shape, &[cond.layout(), on_true.layout(), on_false.layout()])?.args;
        let f = dev.function(name, ELEMENTWISE, &kernel("where", on_true.dtype()))?;
        let (pc, pa, pb) = (cond.buf.ptr, on_true.buf.ptr, on_false.buf.ptr);
        let n64 = n as i64;
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&s[0]).arg(&pc).arg(&s[1]).arg(&pa).arg(&s[2]).arg(&pb).arg(&out.ptr);
        run(&dev, name, l, grid_stride(&dev, n))?;
    }
    Ok(CudaArray::new(out, shape))
}

/// A scalar operand on the GPU of `like`, for ops that take a host constant.
pub(crate) fn scalar_like(like: &CudaView, value: f64) -> Result<CudaArray> {
    let Device::Cuda(ordinal) = like.device() else { unreachable!("called for GPU tensors only") };
    full(ordinal, &[], value, like.dtype())
}
