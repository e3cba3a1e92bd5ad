//! The elementwise functions of one operand: each op's forward `f(x)` and derivative `f'(x)`
//! side by side (the CPU kernels apply them; ptx/kernels/elementwise.cu mirrors them).

#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::dtype::FloatElem;

/// What a unary op's derivative reads ([`UnaryOp::derivative_needs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DerivativeNeeds {
    /// A constant (or zero) derivative.
    Nothing,
    /// The input `x` alone.
    Input,
    /// The output `y = f(x)` alone.
    Output,
}

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

    /// Which of `x` and `y = f(x)` the derivative needs ([`UnaryOp::derivative`], and the
    /// backward kernels, read nothing else): what autograd keeps for the backward, passing
    /// the kept tensor in both slots. ReLU's derivative reads the sign of `x`, which
    /// `y = max(x, 0)` has too (`y > 0` exactly where `x > 0`, NaN included), so it keeps `y`,
    /// which the next layer usually holds anyway.
    pub fn derivative_needs(self) -> DerivativeNeeds {
        use UnaryOp::*;
        match self {
            Neg | Sign | Floor | Round | AddScalar(_) | MulScalar(_) => DerivativeNeeds::Nothing,
            Exp | Sqrt | Rsqrt | Tanh | Sigmoid | Recip | Relu => DerivativeNeeds::Output,
            Abs | Log | Sin | Cos | GeluErf | GeluTanh | Silu | Softplus | Square | Clamp(..) | PowScalar(_) => DerivativeNeeds::Input,
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
