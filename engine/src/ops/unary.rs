//! Elementwise unary ops: the forward kernel and the fused backward kernel `g · f'(x)` side by
//! side, so the two can be checked against each other at a glance.

use crate::backend::{cuda_operands, Backend};
use crate::cpu::{strided, vmath};
use crate::cuda;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
pub use crate::kinds::UnaryOp;
use crate::ops::widen::via_f32;
use crate::{with_float, DType, FloatElem, Result, Tensor};

impl Tensor {
    /// Applies an elementwise op (float dtypes).
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        if let Backend::Cuda(x) = self.backend() {
            self.expect_float(op.name())?;
            return Ok(Tensor::from_cuda_array(cuda::elementwise::unary(&x, op)?));
        }
        if let Some(y) = via_f32([self], |[x]| x.unary(op))? {
            return Ok(y);
        }
        if self.dtype() == DType::F32 && matches!(op, UnaryOp::GeluErf | UnaryOp::Exp) {
            // libm's erf and `f32::exp` are scalar calls per element; vmath's f32 versions
            // vectorize (f64 keeps the libm path, which the f64 gradient checks rely on).
            let x = self.values::<f32>(op.name())?;
            let kernel = if op == UnaryOp::Exp { vmath::exp_slice } else { vmath::gelu_slice };
            return Ok(Tensor::from_vec_unchecked(strided::map_slices(&x, kernel), self.shape()));
        }
        with_float!(self.dtype(), op.name(), |T| {
            let x = self.values::<T>(op.name())?;
            // Matching outside the element loop lets each arm monomorphize and vectorize.
            let out = dispatch_unary!(op, |f| strided::map(&x, f));
            Ok(Tensor::from_vec_unchecked(out, self.shape()))
        })
    }

    /// `grad · f'(self)` where `y = f(self)`: the fused backward kernel of [`unary`](Self::unary).
    /// All three tensors have the same shape.
    pub fn unary_backward(&self, op: UnaryOp, y: &Tensor, grad: &Tensor) -> Result<Tensor> {
        if self.shape() != grad.shape() || self.shape() != y.shape() {
            return Err(crate::Error::shapes(op.name(), self.shape(), grad.shape()));
        }
        self.same_kind(op.name(), grad)?;
        self.same_kind(op.name(), y)?;
        if let Backend::Cuda(_) = self.backend() {
            self.expect_float(op.name())?;
            let [x, y, g] = cuda_operands(op.name(), [self, y, grad])?;
            return Ok(Tensor::from_cuda_array(cuda::elementwise::unary_backward(&x, op, &y, &g)?));
        }
        if let Some(dx) = via_f32([self, y, grad], |[x, y, g]| x.unary_backward(op, &y, &g))? {
            return Ok(dx);
        }
        if op == UnaryOp::GeluErf && self.dtype() == DType::F32 {
            // As in the forward: vmath's vectorized f32 GELU' instead of libm's erf and exp
            // per element (and a `match` per element in the generic arm below).
            let (x, y, g) = (self.values::<f32>(op.name())?, y.values::<f32>(op.name())?, grad.values::<f32>(op.name())?);
            let out = strided::map3_slices(&x, &y, &g, |x, _, g, o| vmath::gelu_backward_slice(x, g, o));
            return Ok(Tensor::from_vec_unchecked(out, self.shape()));
        }
        with_float!(self.dtype(), op.name(), |T| {
            let (x, y, g) = (self.values::<T>(op.name())?, y.values::<T>(op.name())?, grad.values::<T>(op.name())?);
            // As in the forward: the common ops get their own arm, so the loop is not a match
            // per element and vectorizes.
            let out = match op {
                UnaryOp::Relu => strided::map3(&x, &y, &g, |x, _, g| if x > T::zero() { g } else { T::zero() }),
                UnaryOp::Exp => strided::map3(&x, &y, &g, |_, y, g| g * y),
                UnaryOp::Tanh => strided::map3(&x, &y, &g, |_, y, g| g * (T::one() - y * y)),
                UnaryOp::Sigmoid => strided::map3(&x, &y, &g, |_, y, g| g * (y * (T::one() - y))),
                UnaryOp::MulScalar(c) => {
                    let c = T::c(c);
                    strided::map3(&x, &y, &g, move |_, _, g| g * c)
                }
                op => strided::map3(&x, &y, &g, move |x, y, g| g * op.derivative(x, y)),
            };
            Ok(Tensor::from_vec_unchecked(out, self.shape()))
        })
    }

    /// `(f(self), grad · f'(self))`: the forward and the backward of [`unary`](Self::unary)
    /// together, for a layer that recomputes its activation in its backward (a transformer
    /// MLP's `fc2(gelu(h))` needs `gelu(h)` for the weight gradient and `gelu'(h)` for `h`'s).
    /// f32 GELU on the CPU runs as one pass that evaluates Φ once for both; every other case
    /// is the two calls. Either way the bits of `unary` and `unary_backward`.
    pub fn unary_with_backward(&self, op: UnaryOp, grad: &Tensor) -> Result<(Tensor, Tensor)> {
        let fused = op == UnaryOp::GeluErf && self.dtype() == DType::F32 && matches!(self.backend(), Backend::Cpu);
        if !fused {
            let y = self.unary(op)?;
            let dx = self.unary_backward(op, &y, grad)?;
            return Ok((y, dx));
        }
        if self.shape() != grad.shape() {
            return Err(crate::Error::shapes(op.name(), self.shape(), grad.shape()));
        }
        self.same_kind(op.name(), grad)?;
        let (x, g) = (self.values::<f32>(op.name())?, grad.values::<f32>(op.name())?);
        let (y, dx) = strided::map2_slices_to_pair(&x, &g, vmath::gelu_and_backward_slice);
        Ok((Tensor::from_vec_unchecked(y, self.shape()), Tensor::from_vec_unchecked(dx, self.shape())))
    }
}

/// Expands to one `match` arm per op, each passing a concrete closure to `$run`.
macro_rules! dispatch_unary {
    ($op:expr, |$f:ident| $run:expr) => {{
        use UnaryOp::*;
        match $op {
            Neg => {
                let $f = |x: T| -x;
                $run
            }
            Exp => {
                let $f = |x: T| x.exp();
                $run
            }
            Relu => {
                let $f = |x: T| if x > T::zero() { x } else { T::zero() };
                $run
            }
            Square => {
                let $f = |x: T| x * x;
                $run
            }
            AddScalar(c) => {
                let c = T::c(c);
                let $f = move |x: T| x + c;
                $run
            }
            MulScalar(c) => {
                let c = T::c(c);
                let $f = move |x: T| x * c;
                $run
            }
            op => {
                let $f = move |x: T| op.forward(x);
                $run
            }
        }
    }};
}
use dispatch_unary;

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident),* $(,)?) => {
        impl Tensor {
            $( $(#[$doc])* pub fn $name(&self) -> Result<Tensor> { self.unary(UnaryOp::$op) } )*
        }
    };
}

unary_methods! {
    neg => Neg, abs => Abs, exp => Exp, log => Log, sqrt => Sqrt, rsqrt => Rsqrt, sin => Sin, cos => Cos,
    tanh => Tanh, sigmoid => Sigmoid, relu => Relu,
    /// GELU with the exact erf.
    gelu => GeluErf,
    /// GELU with the tanh approximation.
    gelu_tanh => GeluTanh,
    silu => Silu, softplus => Softplus, sign => Sign, floor => Floor,
    /// Round half to even.
    round => Round,
    square => Square, recip => Recip,
}

impl Tensor {
    /// Clamps into `[lo, hi]`.
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Tensor> {
        if lo > hi {
            return Err(crate::Error::invalid("clamp", format!("lo {lo} exceeds hi {hi}")));
        }
        self.unary(UnaryOp::Clamp(lo, hi))
    }
    /// `self^p` for a constant exponent.
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        self.unary(UnaryOp::PowScalar(p))
    }
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(c))
    }
    pub fn sub_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(-c))
    }
    pub fn mul_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::MulScalar(c))
    }
    pub fn div_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::MulScalar(1.0 / c))
    }
}
