//! Elementwise unary ops: the forward kernel and the fused backward kernel `g · f'(x)` side by
//! side, so the two can be checked against each other at a glance.

use crate::cpu::{strided, vmath};
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::ops::widen::via_f32;
use crate::{with_float, DType, FloatElem, Result, Tensor};

/// An elementwise function of one float tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Relu,
    /// `x · Φ(x)` with the exact normal CDF.
    GeluErf,
    /// The tanh approximation of GELU.
    GeluTanh,
    Silu,
    Softplus,
    Sign,
    Floor,
    Round,
    Square,
    Recip,
    /// `min(max(x, lo), hi)`.
    Clamp(f64, f64),
    /// `x^p` for a constant `p`.
    PowScalar(f64),
    /// `x + c`.
    AddScalar(f64),
    /// `x · c`.
    MulScalar(f64),
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;

fn erf<T: FloatElem>(x: T) -> T {
    T::c(libm::erf(x.to_f64()))
}

fn sigmoid<T: FloatElem>(x: T) -> T {
    // Split by sign so exp never overflows.
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

fn softplus<T: FloatElem>(x: T) -> T {
    // log(1 + e^x) = max(x, 0) + log1p(e^-|x|), stable for large |x|.
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

impl UnaryOp {
    /// Every op, the parameterized ones with sample constants: for tests and tools that
    /// sweep them all.
    pub const ALL: [UnaryOp; 24] = {
        use UnaryOp::*;
        [
            Neg,
            Abs,
            Exp,
            Log,
            Sqrt,
            Rsqrt,
            Sin,
            Cos,
            Tanh,
            Sigmoid,
            Relu,
            GeluErf,
            GeluTanh,
            Silu,
            Softplus,
            Sign,
            Floor,
            Round,
            Square,
            Recip,
            Clamp(-0.5, 1.25),
            PowScalar(1.5),
            AddScalar(0.25),
            MulScalar(-2.0),
        ]
    };

    /// f(x).
    #[inline(always)]
    pub fn forward<T: FloatElem>(self, x: T) -> T {
        use UnaryOp::*;
        match self {
            Neg => -x,
            Abs => x.abs(),
            Exp => x.exp(),
            Log => x.ln(),
            Sqrt => x.sqrt(),
            Rsqrt => x.sqrt().recip(),
            Sin => x.sin(),
            Cos => x.cos(),
            Tanh => x.tanh(),
            Sigmoid => sigmoid(x),
            Relu => x.max(T::zero()),
            GeluErf => T::c(0.5) * x * (T::one() + erf(x * T::c(FRAC_1_SQRT_2))),
            GeluTanh => T::c(0.5) * x * (T::one() + (T::c(SQRT_2_OVER_PI) * (x + T::c(0.044715) * x * x * x)).tanh()),
            Silu => x * sigmoid(x),
            Softplus => softplus(x),
            Sign => {
                if x > T::zero() {
                    T::one()
                } else if x < T::zero() {
                    -T::one()
                } else {
                    T::zero()
                }
            }
            Floor => x.floor(),
            Round => round_half_even(x),
            Square => x * x,
            Recip => x.recip(),
            Clamp(lo, hi) => x.max(T::c(lo)).min(T::c(hi)),
            PowScalar(p) => x.powf(T::c(p)),
            AddScalar(c) => x + T::c(c),
            MulScalar(c) => x * T::c(c),
        }
    }

    /// f'(x), given x and y = f(x) (whichever is cheaper to use). Piecewise-constant ops
    /// (sign, floor, round) have derivative 0; at a kink, relu/abs/clamp take the subgradient
    /// PyTorch takes (0 for relu at 0, 0 for abs at 0, 1 inside the closed clamp range).
    #[inline(always)]
    pub fn derivative<T: FloatElem>(self, x: T, y: T) -> T {
        use UnaryOp::*;
        let one = T::one();
        match self {
            Neg => -one,
            Abs => {
                if x > T::zero() {
                    one
                } else if x < T::zero() {
                    -one
                } else {
                    T::zero()
                }
            }
            Exp => y,
            Log => x.recip(),
            Sqrt => T::c(0.5) / y,
            Rsqrt => T::c(-0.5) * y * y * y,
            Sin => x.cos(),
            Cos => -x.sin(),
            Tanh => one - y * y,
            Sigmoid => y * (one - y),
            Relu => {
                if x > T::zero() {
                    one
                } else {
                    T::zero()
                }
            }
            GeluErf => {
                let cdf = T::c(0.5) * (one + erf(x * T::c(FRAC_1_SQRT_2)));
                let pdf = (T::c(-0.5) * x * x).exp() * T::c(0.398_942_280_401_432_7);
                cdf + x * pdf
            }
            GeluTanh => {
                let inner = T::c(SQRT_2_OVER_PI) * (x + T::c(0.044715) * x * x * x);
                let t = inner.tanh();
                let dinner = T::c(SQRT_2_OVER_PI) * (one + T::c(3.0 * 0.044715) * x * x);
                T::c(0.5) * (one + t) + T::c(0.5) * x * (one - t * t) * dinner
            }
            Silu => {
                let s = sigmoid(x);
                s * (one + x * (one - s))
            }
            Softplus => sigmoid(x),
            Sign | Floor | Round => T::zero(),
            Square => T::c(2.0) * x,
            Recip => -y * y,
            Clamp(lo, hi) => {
                if x >= T::c(lo) && x <= T::c(hi) {
                    one
                } else {
                    T::zero()
                }
            }
            PowScalar(p) => T::c(p) * x.powf(T::c(p - 1.0)),
            AddScalar(_) => one,
            MulScalar(c) => T::c(c),
        }
    }

    /// Whether the op is differentiable almost everywhere with a non-zero gradient (sign,
    /// floor and round are not; autograd treats them as constants).
    pub fn is_differentiable(self) -> bool {
        !matches!(self, UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Round)
    }

    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "neg",
            Abs => "abs",
            Exp => "exp",
            Log => "log",
            Sqrt => "sqrt",
            Rsqrt => "rsqrt",
            Sin => "sin",
            Cos => "cos",
            Tanh => "tanh",
            Sigmoid => "sigmoid",
            Relu => "relu",
            GeluErf => "gelu",
            GeluTanh => "gelu_tanh",
            Silu => "silu",
            Softplus => "softplus",
            Sign => "sign",
            Floor => "floor",
            Round => "round",
            Square => "square",
            Recip => "recip",
            Clamp(..) => "clamp",
            PowScalar(_) => "pow_scalar",
            AddScalar(_) => "add_scalar",
            MulScalar(_) => "mul_scalar",
        }
    }
}

/// Rounds half to even, as PyTorch's `round` does.
fn round_half_even<T: FloatElem>(x: T) -> T {
    let r = x.round();
    if (x - x.trunc()).abs() == T::c(0.5) {
        T::c(2.0) * (x / T::c(2.0)).round()
    } else {
        r
    }
}

impl Tensor {
    /// Applies an elementwise op (float dtypes).
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        if self.is_cuda() {
            self.expect_float(op.name())?;
            return crate::cuda::ops::elementwise::unary(self, op);
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
        if self.is_cuda() {
            self.expect_float(op.name())?;
            return crate::cuda::ops::elementwise::unary_backward(self, op, y, grad);
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
