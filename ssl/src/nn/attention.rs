//! Multi-head self-attention and the pre-norm transformer block, with timm's structure and
//! names (`attn.qkv`, `attn.proj`, `norm1`, `norm2`, `mlp.fc1`, `mlp.fc2`).

use super::init;
use super::layernorm::LayerNorm;
use super::linear::Linear;
use super::module::{join, Entry, Module, Param};
use tessera_autograd::{fused, no_grad, Result, Var};
use tessera_engine::{DType, Generator, Tensor, UnaryOp};

/// A Linear with ViT's init: weight truncated normal (std 0.02), bias zeros.
pub fn vit_linear(in_features: usize, out_features: usize, bias: bool, gen: &mut Generator) -> Result<Linear> {
    let w = init::trunc_normal(gen, &[out_features, in_features], 0.02, DType::F32)?;
    let b = if bias { Some(Tensor::zeros(&[out_features], DType::F32)?) } else { None };
    Linear::from_tensors(w, b)
}

/// Self-attention over `[B, L, D]`: one fused projection `qkv.weight [3D, D]` (q, k, v
/// stacked as in timm), `H` heads of size `D/H`, scaled dot-product attention (optionally
/// causal), then `proj [D, D]`. Output `[B, L, D]`.
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    pub num_heads: usize,
    pub causal: bool,
}

impl Attention {
    /// ViT's init (see [`vit_linear`]); `dim` must be divisible by `num_heads`.
    pub fn new(dim: usize, num_heads: usize, qkv_bias: bool, gen: &mut Generator) -> Result<Attention> {
        if num_heads == 0 || !dim.is_multiple_of(num_heads) {
            return Err(tessera_engine::Error::invalid(
                "Attention",
                format!("dim {dim} must be a positive multiple of num_heads {num_heads}"),
            )
            .into());
        }
        Ok(Attention { qkv: vit_linear(dim, 3 * dim, qkv_bias, gen)?, proj: vit_linear(dim, dim, true, gen)?, num_heads, causal: false })
    }
}

impl Attention {
    /// The fused projection's rows of `x [B, L, D]`: `[B, L, 3D]`, each token's q, k and v side
    /// by side, each split into heads as in timm.
    fn projected(&self, x: &Var) -> Result<Var> {
        if x.shape().len() != 3 {
            return Err(tessera_engine::Error::invalid("Attention", format!("expects [B, L, D], got {:?}", x.shape())).into());
        }
        self.qkv.forward(x)
    }

    /// q, k and v of `x [B, L, D]` stacked as `[3, B, H, L, D/H]` (views of the projection).
    fn heads(&self, x: &Var) -> Result<Var> {
        let (s, h) = (x.shape(), self.num_heads);
        self.projected(x)?.reshape_to(&[s[0], s[1], 3, h, s[2] / h])?.permute(&[2, 0, 3, 1, 4])
    }

    /// Where each token of `x [B, L, D]` looks: the attention probabilities `[B, H, L, L]`
    /// (each row sums to 1), computed without a graph. A separate pass, so the training
    /// forward keeps its fused kernel and pays nothing for it.
    pub fn probabilities(&self, x: &Var) -> Result<Tensor> {
        let _g = no_grad();
        let qkv = self.heads(x)?.value();
        fused::attention_probabilities(&qkv.select(0, 0)?, &qkv.select(0, 1)?, self.causal, None)
    }
}

impl Module for Attention {
    fn forward(&self, x: &Var) -> Result<Var> {
        // The heads are read from the projection's rows and merged as they are written.
        self.proj.forward(&fused::multi_head_attention(&self.projected(x)?, self.num_heads, self.causal)?)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.qkv.visit(&join(prefix, "qkv"), f);
        self.proj.visit(&join(prefix, "proj"), f);
    }
}

/// The transformer MLP `fc2(gelu(fc1(x)))` with a hidden width of `ratio · D`.
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    pub fn new(dim: usize, hidden: usize, gen: &mut Generator) -> Result<Mlp> {
        Ok(Mlp { fc1: vit_linear(dim, hidden, true, gen)?, fc2: vit_linear(hidden, dim, true, gen)? })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Var) -> Result<Var> {
        // GELU's output is recomputed in fc2's backward rather than kept (fc2's input is the
        // step's widest activation).
        self.fc2.forward_of_activation(&self.fc1.forward(x)?, UnaryOp::GeluErf)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.fc1.visit(&join(prefix, "fc1"), f);
        self.fc2.visit(&join(prefix, "fc2"), f);
    }
}

/// The pre-norm block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`; `[B, L, D] → [B, L, D]`.
/// With layer scale, each branch's output is first multiplied by its own learned per-channel
/// gain (`x + γ₁ ⊙ attn(…)`, CaiT's LayerScale, timm's `ls1` / `ls2`).
pub struct TransformerBlock {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
    pub layer_scale: Option<[Param; 2]>,
}

impl TransformerBlock {
    /// timm's defaults: LayerNorm eps 1e-6, GELU MLP of width `mlp_ratio · dim`.
    pub fn new(dim: usize, num_heads: usize, mlp_ratio: f64, qkv_bias: bool, gen: &mut Generator) -> Result<TransformerBlock> {
        let hidden = (dim as f64 * mlp_ratio) as usize;
        Ok(TransformerBlock {
            norm1: LayerNorm::new(dim, 1e-6)?,
            attn: Attention::new(dim, num_heads, qkv_bias, gen)?,
            norm2: LayerNorm::new(dim, 1e-6)?,
            mlp: Mlp::new(dim, hidden, gen)?,
            layer_scale: None,
        })
    }

    /// The same block with layer scale: both branch gains start at `init` in every channel
    /// (timm's `init_values`; SimMIM's ViT uses 0.1, so each block starts close to the
    /// identity).
    pub fn with_layer_scale(mut self, init: f64) -> Result<TransformerBlock> {
        let dim = self.norm1.weight.get().shape()[0];
        let gain = || Param::new(Tensor::full(&[dim], init, DType::F32)?);
        self.layer_scale = Some([gain()?, gain()?]);
        Ok(self)
    }

    /// A branch's output, scaled by gain `i` when the block has layer scale.
    fn scaled(&self, branch: Var, i: usize) -> Result<Var> {
        match &self.layer_scale {
            Some(gains) => branch.mul(&gains[i].get()),
            None => Ok(branch),
        }
    }
}

impl TransformerBlock {
    /// The same block attending only to earlier positions and itself (a text tower's
    /// causal mask): token `i`'s output cannot depend on tokens after `i`.
    pub fn causal(mut self) -> TransformerBlock {
        self.attn.causal = true;
        self
    }
}

impl TransformerBlock {
    /// The attention probabilities `[B, H, L, L]` this block's attention computes on
    /// `x [B, L, D]` (after its `norm1`), without a graph.
    pub fn attention_probabilities(&self, x: &Var) -> Result<Tensor> {
        let _g = no_grad();
        self.attn.probabilities(&self.norm1.forward(x)?)
    }
}

impl Module for TransformerBlock {
    fn forward(&self, x: &Var) -> Result<Var> {
        let x = x.add(&self.scaled(self.attn.forward(&self.norm1.forward(x)?)?, 0)?)?;
        x.add(&self.scaled(self.mlp.forward(&self.norm2.forward(&x)?)?, 1)?)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.norm1.visit(&join(prefix, "norm1"), f);
        self.attn.visit(&join(prefix, "attn"), f);
        self.norm2.visit(&join(prefix, "norm2"), f);
        self.mlp.visit(&join(prefix, "mlp"), f);
        if let Some([g1, g2]) = &self.layer_scale {
            f(&join(prefix, "ls1.gamma"), Entry::Param(g1));
            f(&join(prefix, "ls2.gamma"), Entry::Param(g2));
        }
    }
}
