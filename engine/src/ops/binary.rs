//! Elementwise binary ops with NumPy broadcasting, comparisons and `where`.

use crate::backend::{cuda_operands, Backend};
use crate::cpu::strided;
use crate::cuda;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
pub use crate::kinds::{BinaryOp, CmpOp};
use crate::layout::broadcast_shapes;
use crate::ops::widen::via_f32;
use crate::{with_any, with_float, DType, Element, Error, Result, Tensor};

impl Tensor {
    /// `op(self, rhs)` with broadcasting; both operands share dtype (float) and device.
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let name = op.name();
        self.same_kind(name, rhs)?;
        let shape = broadcast_shapes(name, self.shape(), rhs.shape())?;
        if let Backend::Cuda(_) = self.backend() {
            self.expect_float(name)?;
            let [a, b] = cuda_operands(name, [self, rhs])?;
            return Ok(Tensor::from_cuda_array(cuda::elementwise::binary(&a, &b, op, &shape)?));
        }
        if let Some(out) = via_f32([self, rhs], |[a, b]| a.binary(&b, op))? {
            return Ok(out);
        }
        with_float!(self.dtype(), name, |T| {
            let (a, b) = (self.buffer::<T>(name)?, rhs.buffer::<T>(name)?);
            let (la, lb) = (self.layout(), rhs.layout());
            // One arm per op so each closure is concrete and the inner loop vectorizes.
            let out = match op {
                BinaryOp::Add => strided::zip_map(a, la, b, lb, &shape, |x: T, y: T| x + y),
                BinaryOp::Sub => strided::zip_map(a, la, b, lb, &shape, |x: T, y: T| x - y),
                BinaryOp::Mul => strided::zip_map(a, la, b, lb, &shape, |x: T, y: T| x * y),
                BinaryOp::Div => strided::zip_map(a, la, b, lb, &shape, |x: T, y: T| x / y),
                op => strided::zip_map(a, la, b, lb, &shape, move |x: T, y: T| op.apply(x, y)),
            };
            Ok(Tensor::from_vec_unchecked(out, &shape))
        })
    }

    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Add)
    }
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Sub)
    }
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Mul)
    }
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Div)
    }
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Pow)
    }
    /// Elementwise maximum; on ties the left operand's value is taken.
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Maximum)
    }
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Minimum)
    }
    pub fn maximum_scalar(&self, c: f64) -> Result<Tensor> {
        self.clamp(c, f64::INFINITY)
    }
    pub fn minimum_scalar(&self, c: f64) -> Result<Tensor> {
        self.clamp(f64::NEG_INFINITY, c)
    }

    /// Elementwise comparison with broadcasting, any dtype; a u8 mask of 0/1.
    pub fn compare(&self, rhs: &Tensor, op: CmpOp) -> Result<Tensor> {
        let name = op.name();
        self.same_kind(name, rhs)?;
        let shape = broadcast_shapes(name, self.shape(), rhs.shape())?;
        if let Backend::Cuda(_) = self.backend() {
            let [a, b] = cuda_operands(name, [self, rhs])?;
            return Ok(Tensor::from_cuda_array(cuda::elementwise::compare(&a, &b, op, name, &shape)?));
        }
        with_any!(self.dtype(), |T| {
            let (a, b) = (self.buffer::<T>(name)?, rhs.buffer::<T>(name)?);
            let out = strided::zip_map(a, self.layout(), b, rhs.layout(), &shape, move |x: T, y: T| op.apply(x, y));
            Ok(Tensor::from_vec_unchecked(out, &shape))
        })
    }

    /// Comparison against a scalar (converted to this tensor's dtype).
    pub fn compare_scalar(&self, c: f64, op: CmpOp) -> Result<Tensor> {
        let rhs = match self.backend() {
            Backend::Cuda(x) => Tensor::from_cuda_array(cuda::elementwise::scalar_like(&x, c)?),
            Backend::Cpu => with_any!(self.dtype(), |T| Tensor::scalar(<T as Element>::from_f64(c))),
        };
        self.compare(&rhs, op)
    }

    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Eq)
    }
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Ne)
    }
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Lt)
    }
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Le)
    }
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Gt)
    }
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Ge)
    }

    /// `cond ? on_true : on_false` elementwise, all three broadcast together. `cond` is a u8
    /// mask (non-zero means true); the two values share dtype.
    pub fn where_(cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        cond.expect_dtype("where", DType::U8)?;
        on_true.same_kind("where", on_false)?;
        if cond.device() != on_true.device() {
            return Err(Error::DeviceMismatch { op: "where", lhs: cond.device(), rhs: on_true.device() });
        }
        let shape = broadcast_shapes("where", cond.shape(), on_true.shape())?;
        let shape = broadcast_shapes("where", &shape, on_false.shape())?;
        if let Backend::Cuda(_) = cond.backend() {
            let [c, a, b] = cuda_operands("where", [cond, on_true, on_false])?;
            return Ok(Tensor::from_cuda_array(cuda::elementwise::where_(&c, &a, &b, &shape)?));
        }
        let c = cond.buffer::<u8>("where")?;
        with_any!(on_true.dtype(), |T| {
            let (a, b) = (on_true.buffer::<T>("where")?, on_false.buffer::<T>("where")?);
            let out = strided::zip3_map(
                c,
                cond.layout(),
                a,
                on_true.layout(),
                b,
                on_false.layout(),
                &shape,
                |c, x: T, y: T| if c != 0 { x } else { y },
            );
            Ok(Tensor::from_vec_unchecked(out, &shape))
        })
    }
}
