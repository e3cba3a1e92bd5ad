//! Layer normalization over the last dim (`nn.LayerNorm(d)`).

use super::module::{join, Entry, Module, Param};
use tessera_autograd::{fused, Result, Var};
use tessera_engine::{DType, Tensor};

/// Normalizes `[..., D]` over `D`, then scales by `weight [D]` and shifts by `bias [D]`.
pub struct LayerNorm {
    pub weight: Param,
    pub bias: Param,
    pub eps: f64,
}

impl LayerNorm {
    /// Weight ones, bias zeros, f32. PyTorch's default eps is 1e-5; timm's ViT uses 1e-6.
    pub fn new(dim: usize, eps: f64) -> Result<LayerNorm> {
        if eps.is_nan() || eps <= 0.0 {
            return Err(tessera_engine::Error::invalid("LayerNorm", format!("eps must be positive, got {eps}")).into());
        }
        Ok(LayerNorm { weight: Param::new(Tensor::ones(&[dim], DType::F32)?)?, bias: Param::new(Tensor::zeros(&[dim], DType::F32)?)?, eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Var) -> Result<Var> {
        fused::layer_norm(x, Some(&self.weight.get()), Some(&self.bias.get()), self.eps)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(&join(prefix, "weight"), Entry::Param(&self.weight));
        f(&join(prefix, "bias"), Entry::Param(&self.bias));
    }
}
