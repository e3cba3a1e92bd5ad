//! The fully connected layer (`nn.Linear`).

use super::init;
use super::module::{join, Entry, Module, Param};
use tessera_autograd::{fused, Result, Var};
use tessera_engine::{DType, Generator, Tensor, UnaryOp};

/// `y = x·Wᵀ + b` with `weight [out, in]` and `bias [out]`; input `[..., in]`, output `[..., out]`.
pub struct Linear {
    pub weight: Param,
    pub bias: Option<Param>,
}

impl Linear {
    /// PyTorch's default init (weight and bias uniform in `±1/√in`), in f32.
    pub fn new(in_features: usize, out_features: usize, bias: bool, gen: &mut Generator) -> Result<Linear> {
        let w = init::kaiming_uniform_default(gen, &[out_features, in_features], DType::F32)?;
        let b = if bias { Some(init::default_bias(gen, in_features, out_features, DType::F32)?) } else { None };
        Linear::from_tensors(w, b)
    }

    /// A layer holding these values (`weight [out, in]`, `bias [out]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        if weight.rank() != 2 || bias.as_ref().is_some_and(|b| b.shape() != [weight.shape()[0]]) {
            let b = bias.as_ref().map_or(vec![], |b| b.shape().to_vec());
            return Err(tessera_engine::Error::shapes_hint("Linear", weight.shape(), &b, "weight must be [out, in] and bias [out]").into());
        }
        Ok(Linear { weight: Param::new(weight)?, bias: bias.map(Param::new).transpose()? })
    }

    pub fn in_features(&self) -> usize {
        self.weight.value().shape()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.value().shape()[0]
    }

    /// `self.forward(act(h))`, saving `h` alone for the backward and recomputing `act(h)`
    /// there ([`fused::linear_of_activation`]): a transformer MLP's second layer keeps one
    /// hidden-width tensor less until backward. The same values and gradients.
    pub fn forward_of_activation(&self, h: &Var, act: UnaryOp) -> Result<Var> {
        self.over_rows(h, |h2, w, b| fused::linear_of_activation(h2, act, w, b))
    }

    /// Runs `product(x2, weight, bias)` on `x [..., in]` seen as `[rows, in]` (one GEMM over
    /// all leading dims instead of a batched product) and gives back `[..., out]`.
    fn over_rows(&self, x: &Var, product: impl FnOnce(&Var, &Var, Option<&Var>) -> Result<Var>) -> Result<Var> {
        let shape = x.shape();
        let (in_f, out_f) = (self.in_features(), self.out_features());
        if shape.last() != Some(&in_f) {
            return Err(tessera_engine::Error::shapes_hint(
                "Linear",
                &shape,
                &[out_f, in_f],
                format!("the input's last dim must be {in_f}"),
            )
            .into());
        }
        let rows: usize = shape[..shape.len() - 1].iter().product();
        let x2 = if shape.len() == 2 { x.clone() } else { x.reshape_to(&[rows, in_f])? };
        let y = product(&x2, &self.weight.get(), self.bias.as_ref().map(|b| b.get()).as_ref())?;
        if shape.len() == 2 {
            return Ok(y);
        }
        let mut out_shape = shape;
        *out_shape.last_mut().expect("rank checked above") = out_f;
        y.reshape_to(&out_shape)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Var) -> Result<Var> {
        // One op: the bias is added inside the GEMM (PyTorch's addmm); under autocast the
        // op casts its f32 operands, the bias included, to the autocast dtype.
        self.over_rows(x, fused::linear)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(&join(prefix, "weight"), Entry::Param(&self.weight));
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), Entry::Param(b));
        }
    }
}
