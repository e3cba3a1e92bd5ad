//! Elementwise ops: broadcasting binary ops (gradients summed back to each input's shape)
//! and unary ops (the engine's fused `g · f'(x)` kernel).

use crate::autocast;
use crate::{Result, Var};
use tessera_engine::{BinaryOp, DType, DerivativeNeeds, Tensor, UnaryOp};

impl Var {
    /// `op(self, rhs)` with broadcasting.
    pub fn binary(&self, rhs: &Var, op: BinaryOp) -> Result<Var> {
        if let Some((a, b)) = autocast::promoted(self, rhs)? {
            return a.binary(&b, op);
        }
        let (a, b) = (self.value(), rhs.value());
        let out = a.binary(&b, op)?;
        let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
        // A sum or difference needs only the shapes: saving its operands would keep them alive
        // until backward (every residual connection's two inputs). The others keep their
        // operands, and only a quotient and a power their output as well: a product's output
        // kept for nothing was 9 MiB per layer-scale gain and block of a ViT-Tiny at batch
        // 256 (225 MiB of SimMIM's step).
        let saved = match op {
            BinaryOp::Add | BinaryOp::Sub => None,
            BinaryOp::Div | BinaryOp::Pow => Some((a, b, Some(out.clone()))),
            _ => Some((a, b, None)),
        };
        Ok(Var::from_op(op.name(), out, &[self, rhs], move |g, needs| {
            let (ga, gb) = match (op, &saved) {
                (BinaryOp::Add, _) => (needs[0].then(|| g.clone()), needs[1].then(|| g.clone())),
                (BinaryOp::Sub, _) => (needs[0].then(|| g.clone()), needs[1].then(|| g.neg()).transpose()?),
                (BinaryOp::Mul, Some((a, b, _))) => (needs[0].then(|| g.mul(b)).transpose()?, needs[1].then(|| g.mul(a)).transpose()?),
                (BinaryOp::Div, Some((_, b, Some(y)))) => {
                    (needs[0].then(|| g.div(b)).transpose()?, needs[1].then(|| g.mul(y)?.div(b)?.neg()).transpose()?)
                }
                // d(a^b)/da = b·a^(b-1); d(a^b)/db = a^b·ln a
                (BinaryOp::Pow, Some((a, b, Some(y)))) => (
                    needs[0].then(|| g.mul(b)?.mul(&a.pow(&b.sub_scalar(1.0)?)?)).transpose()?,
                    needs[1].then(|| g.mul(y)?.mul(&a.log()?)).transpose()?,
                ),
                // Ties go to the left operand, matching the forward's choice.
                (BinaryOp::Maximum | BinaryOp::Minimum, Some((a, b, _))) => {
                    let left = if op == BinaryOp::Maximum { a.ge(b)? } else { a.le(b)? };
                    let zero = Tensor::full_on(&[], 0.0, g.dtype(), g.device())?;
                    (
                        needs[0].then(|| Tensor::where_(&left, g, &zero)).transpose()?,
                        needs[1].then(|| Tensor::where_(&left, &zero, g)).transpose()?,
                    )
                }
                _ => return Err(tessera_engine::Error::invalid(op.name(), "backward: the operands were not saved")),
            };
            Ok(vec![ga.map(|t| t.sum_to_shape(&sa)).transpose()?, gb.map(|t| t.sum_to_shape(&sb)).transpose()?])
        }))
    }

    pub fn add(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Add)
    }
    pub fn sub(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Sub)
    }
    pub fn mul(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Mul)
    }
    pub fn div(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Div)
    }
    pub fn pow(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Pow)
    }
    pub fn maximum(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Maximum)
    }
    pub fn minimum(&self, rhs: &Var) -> Result<Var> {
        self.binary(rhs, BinaryOp::Minimum)
    }

    /// The values converted to `dtype`, like PyTorch's `x.to(dtype)`: between float dtypes
    /// (bf16 and f16 included) the gradient flows back converted to this variable's dtype,
    /// so an f32 parameter used in bf16 still gets an f32 gradient. Converting to or from an
    /// integer dtype leaves the graph (a constant).
    pub fn to_dtype(&self, dtype: DType) -> Result<Var> {
        let x = self.value();
        let from = x.dtype();
        if from == dtype {
            return Ok(self.clone());
        }
        let out = x.to_dtype(dtype)?;
        if !(from.is_float() && dtype.is_float()) {
            return Ok(Var::constant(out));
        }
        Ok(Var::from_op("to_dtype", out, &[self], move |g, _| Ok(vec![Some(g.to_dtype(from)?)])))
    }

    /// An elementwise function; piecewise-constant ones (sign, floor, round) pass no gradient.
    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        let x = self.value();
        let y = x.unary(op)?;
        if !op.is_differentiable() {
            return Ok(Var::constant(y));
        }
        // Only what the derivative reads is kept; the kernel takes x and y, and the kept
        // tensor (or, for a constant derivative, the gradient) stands in for the other,
        // which the rule ignores. Keeping both held, for instance, the input of every `exp`
        // and the output of every GELU until backward.
        let kept = match op.derivative_needs() {
            DerivativeNeeds::Nothing => None,
            DerivativeNeeds::Input => Some(x),
            DerivativeNeeds::Output => Some(y.clone()),
        };
        Ok(Var::from_op(op.name(), y, &[self], move |g, _| {
            let kept = kept.as_ref().unwrap_or(g);
            Ok(vec![Some(kept.unary_backward(op, kept, g)?)])
        }))
    }

    pub fn neg(&self) -> Result<Var> {
        self.unary(UnaryOp::Neg)
    }
    pub fn abs(&self) -> Result<Var> {
        self.unary(UnaryOp::Abs)
    }
    pub fn exp(&self) -> Result<Var> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Var> {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn rsqrt(&self) -> Result<Var> {
        self.unary(UnaryOp::Rsqrt)
    }
    pub fn sin(&self) -> Result<Var> {
        self.unary(UnaryOp::Sin)
    }
    pub fn cos(&self) -> Result<Var> {
        self.unary(UnaryOp::Cos)
    }
    pub fn tanh(&self) -> Result<Var> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Result<Var> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn relu(&self) -> Result<Var> {
        self.unary(UnaryOp::Relu)
    }
    /// GELU with the exact erf.
    pub fn gelu(&self) -> Result<Var> {
        self.unary(UnaryOp::GeluErf)
    }
    /// GELU with the tanh approximation.
    pub fn gelu_tanh(&self) -> Result<Var> {
        self.unary(UnaryOp::GeluTanh)
    }
    pub fn silu(&self) -> Result<Var> {
        self.unary(UnaryOp::Silu)
    }
    pub fn softplus(&self) -> Result<Var> {
        self.unary(UnaryOp::Softplus)
    }
    pub fn square(&self) -> Result<Var> {
        self.unary(UnaryOp::Square)
    }
    pub fn recip(&self) -> Result<Var> {
        self.unary(UnaryOp::Recip)
    }
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Var> {
        if lo > hi {
            return Err(tessera_engine::Error::invalid("clamp", format!("lo {lo} exceeds hi {hi}")).into());
        }
        self.unary(UnaryOp::Clamp(lo, hi))
    }
    pub fn powf(&self, p: f64) -> Result<Var> {
        self.unary(UnaryOp::PowScalar(p))
    }
    pub fn add_scalar(&self, c: f64) -> Result<Var> {
        self.unary(UnaryOp::AddScalar(c))
    }
    pub fn sub_scalar(&self, c: f64) -> Result<Var> {
        self.unary(UnaryOp::AddScalar(-c))
    }
    pub fn mul_scalar(&self, c: f64) -> Result<Var> {
        self.unary(UnaryOp::MulScalar(c))
    }
    pub fn div_scalar(&self, c: f64) -> Result<Var> {
        self.unary(UnaryOp::MulScalar(1.0 / c))
    }
    pub fn sign(&self) -> Result<Var> {
        self.unary(UnaryOp::Sign)
    }
    pub fn floor(&self) -> Result<Var> {
        self.unary(UnaryOp::Floor)
    }
    pub fn round(&self) -> Result<Var> {
        self.unary(UnaryOp::Round)
    }

    /// `cond ? self : other`; `cond` is a u8 mask broadcast with both. Under autocast the
    /// two branches meet at their common dtype, as for binary ops.
    pub fn where_(cond: &Tensor, on_true: &Var, on_false: &Var) -> Result<Var> {
        if let Some((a, b)) = autocast::promoted(on_true, on_false)? {
            return Var::where_(cond, &a, &b);
        }
        let (a, b) = (on_true.value(), on_false.value());
        let out = Tensor::where_(cond, &a, &b)?;
        let cond = cond.clone();
        Ok(Var::from_op("where", out, &[on_true, on_false], move |g, needs| {
            let zero = Tensor::full_on(&[], 0.0, g.dtype(), g.device())?;
            Ok(vec![
                needs[0].then(|| Tensor::where_(&cond, g, &zero)?.sum_to_shape(a.shape())).transpose()?,
                needs[1].then(|| Tensor::where_(&cond, &zero, g)?.sum_to_shape(b.shape())).transpose()?,
            ])
        }))
    }

    /// A constant scalar of this var's dtype (for mixing numbers into expressions).
    pub fn scalar_like(&self, v: f64) -> Result<Var> {
        let x = self.value();
        Ok(Var::constant(Tensor::full_on(&[], v, x.dtype(), x.device())?))
    }

    /// The dtype of the value.
    pub fn dtype(&self) -> DType {
        self.value().dtype()
    }
}
