//! Vision Transformers with timm's structure and names: `patch_embed.proj` (a conv with
//! kernel = stride = patch), `cls_token`, `pos_embed`, `blocks.{i}`, `norm`, `head`.

use super::attention::{vit_linear, TransformerBlock};
use super::conv::{Conv2d, Conv2dConfig};
use super::init;
use super::layernorm::LayerNorm;
use super::linear::Linear;
use super::module::{join, Buffer, Encoder, Entry, Module, Param};
use tessera_autograd::{no_grad, Result, Var};
use tessera_engine::{DType, Generator, Tensor};

/// How positions are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PosEmbed {
    /// A learned parameter (timm's default), truncated-normal init with std 0.02.
    Learned,
    /// MAE's fixed 2-D sin-cos table, saved as a buffer (zero row for the class token).
    SinCos,
}

/// What [`VisionTransformer::forward`] returns before the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The class token after the final norm (timm's `global_pool="token"`).
    Token,
    /// The mean of the patch tokens, then the final norm (timm's `global_pool="avg"`, whose
    /// `fc_norm` normalizes the pooled vector; this keeps one `norm` for both pools).
    /// Normalizing each token first would discard how strongly each patch responds — on
    /// black-background images, most of what tells the patches apart.
    Mean,
}

/// Everything that shapes a [`VisionTransformer`].
#[derive(Debug, Clone, PartialEq)]
pub struct VitConfig {
    /// Side of the (square) input image; must be a multiple of `patch_size`.
    pub img_size: usize,
    pub patch_size: usize,
    pub in_channels: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    pub pos_embed: PosEmbed,
    pub pool: Pool,
    /// `Some(g)`: every block scales its two branches by learned per-channel gains that start
    /// at `g` (timm's `init_values`, SimMIM's 0.1); `None`: plain residuals (timm's default).
    pub layer_scale: Option<f64>,
    /// `Some(n)`: a classifier `head: Linear(D, n)`; `None`: the pooled features.
    pub num_classes: Option<usize>,
}

impl VitConfig {
    fn sized(img_size: usize, patch_size: usize, embed_dim: usize, depth: usize, num_heads: usize) -> Self {
        VitConfig {
            img_size,
            patch_size,
            in_channels: 3,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio: 4.0,
            qkv_bias: true,
            pos_embed: PosEmbed::Learned,
            pool: Pool::Token,
            layer_scale: None,
            num_classes: None,
        }
    }

    /// ViT-Tiny: D 192, 12 blocks, 3 heads.
    pub fn tiny(img_size: usize, patch_size: usize) -> Self {
        Self::sized(img_size, patch_size, 192, 12, 3)
    }

    /// ViT-Small: D 384, 12 blocks, 6 heads.
    pub fn small(img_size: usize, patch_size: usize) -> Self {
        Self::sized(img_size, patch_size, 384, 12, 6)
    }

    /// ViT-Base: D 768, 12 blocks, 12 heads.
    pub fn base(img_size: usize, patch_size: usize) -> Self {
        Self::sized(img_size, patch_size, 768, 12, 12)
    }

    pub fn with_in_channels(mut self, c: usize) -> Self {
        self.in_channels = c;
        self
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size.max(1)
    }

    pub fn num_patches(&self) -> usize {
        self.grid() * self.grid()
    }
}

/// MAE's 2-D sin-cos table `[grid², D]`: the first half of each row encodes the patch's
/// column, the second its row, each as `[sin(p·ω), cos(p·ω)]` with `ω_k = 10000^(-k/(D/4))`.
pub fn sincos_2d(dim: usize, grid: usize) -> Vec<f64> {
    let quarter = dim / 4;
    let omega: Vec<f64> = (0..quarter).map(|k| 1.0 / 10000f64.powf(k as f64 / quarter as f64)).collect();
    let mut out = Vec::with_capacity(grid * grid * dim);
    for i in 0..grid {
        for j in 0..grid {
            for pos in [j as f64, i as f64] {
                out.extend(omega.iter().map(|w| (pos * w).sin()));
                out.extend(omega.iter().map(|w| (pos * w).cos()));
            }
        }
    }
    out
}

enum Positions {
    Learned(Param),
    Fixed(Buffer),
}

/// A ViT: input `[B, C, img, img]`; `forward` returns `[B, D]` pooled features (or
/// `[B, num_classes]` logits with a head); [`forward_tokens`](Self::forward_tokens) returns
/// all tokens `[B, 1 + K, D]` for MAE and SimMIM.
pub struct VisionTransformer {
    patch_embed: Conv2d,
    cls_token: Param,
    pos_embed: Positions,
    blocks: Vec<TransformerBlock>,
    norm: LayerNorm,
    head: Option<Linear>,
    config: VitConfig,
}

impl VisionTransformer {
    /// timm's init: Linear weights truncated normal (std 0.02) with zero biases, the patch
    /// conv PyTorch's default, `cls_token` normal with std 1e-6, learned `pos_embed`
    /// truncated normal (std 0.02); seeded by `gen`, f32.
    pub fn new(config: &VitConfig, gen: &mut Generator) -> Result<VisionTransformer> {
        let c = config;
        let bad = c.patch_size == 0
            || !c.img_size.is_multiple_of(c.patch_size)
            || c.img_size == 0
            || c.embed_dim == 0
            || c.in_channels == 0
            || c.layer_scale.is_some_and(|g| !g.is_finite());
        if bad || (c.pos_embed == PosEmbed::SinCos && !c.embed_dim.is_multiple_of(4)) {
            let msg = format!("needs img_size a positive multiple of patch_size, positive sizes, a finite layer scale, and embed_dim divisible by 4 for sin-cos positions; got {c:?}");
            return Err(tessera_engine::Error::invalid("VisionTransformer", msg).into());
        }
        let (d, n) = (c.embed_dim, c.num_patches());
        let patch_cfg = Conv2dConfig::new(c.in_channels, d, c.patch_size).stride(c.patch_size);
        let patch_embed = Conv2d::new(patch_cfg, gen)?;
        let cls_token = Param::new(gen.normal(&[1, 1, d], 0.0, 1e-6, DType::F32)?)?;
        let pos_embed = match c.pos_embed {
            PosEmbed::Learned => Positions::Learned(Param::new(init::trunc_normal(gen, &[1, n + 1, d], 0.02, DType::F32)?)?),
            PosEmbed::SinCos => {
                let mut table = vec![0.0; d];
                table.extend(sincos_2d(d, c.grid()));
                Positions::Fixed(Buffer::new(Tensor::from_vec(table, &[1, n + 1, d])?.to_dtype(DType::F32)?))
            }
        };
        let block = |gen: &mut Generator| -> Result<TransformerBlock> {
            let b = TransformerBlock::new(d, c.num_heads, c.mlp_ratio, c.qkv_bias, gen)?;
            match c.layer_scale {
                Some(g) => b.with_layer_scale(g),
                None => Ok(b),
            }
        };
        let blocks = (0..c.depth).map(|_| block(gen)).collect::<Result<_>>()?;
        let head = c.num_classes.map(|k| vit_linear(d, k, true, gen)).transpose()?;
        Ok(VisionTransformer { patch_embed, cls_token, pos_embed, blocks, norm: LayerNorm::new(d, 1e-6)?, head, config: c.clone() })
    }

    pub fn config(&self) -> &VitConfig {
        &self.config
    }

    /// Re-draws the weights as MAE's reference code initializes its encoder: every matrix
    /// (Linear weights, the patch projection) Xavier-uniform, the class token normal with
    /// std 0.02 (see [`init::xavier_matrices`]).
    pub fn init_as_mae(&self, gen: &mut Generator) -> Result<()> {
        init::xavier_matrices(self, init::FusedQkv::OneMatrix, gen)?;
        let cls = self.cls_token.var();
        cls.set_value(gen.normal(cls.value().shape(), 0.0, 0.02, cls.value().dtype())?)?;
        Ok(())
    }

    /// Width of the tokens and of the pooled features.
    pub fn feature_dim(&self) -> usize {
        self.config.embed_dim
    }

    fn positions(&self) -> Var {
        match &self.pos_embed {
            Positions::Learned(p) => p.get(),
            Positions::Fixed(b) => Var::constant(b.get()),
        }
    }

    /// Patch tokens with their positions added, `[B, N, D]` (before any class token).
    pub fn embed_patches(&self, x: &Var) -> Result<Var> {
        let s = x.shape();
        let c = &self.config;
        if s.len() != 4 || s[1] != c.in_channels || s[2] != c.img_size || s[3] != c.img_size {
            let msg = format!("expects [B, {}, {}, {}], got {s:?}", c.in_channels, c.img_size, c.img_size);
            return Err(tessera_engine::Error::invalid("VisionTransformer", msg).into());
        }
        let (b, n, d) = (s[0], c.num_patches(), c.embed_dim);
        let tokens = self.patch_embed.forward(x)?.reshape_to(&[b, d, n])?.transpose(1, 2)?;
        tokens.add(&self.positions().narrow(1, 1, n)?)
    }

    /// All tokens after the final norm: `[B, 1 + K, D]`, the class token first. With
    /// `keep_indices` (i64 `[B, K]` per sample, or `[K]` shared), only those patches enter
    /// the encoder (MAE); otherwise all `K = N` patches do.
    pub fn forward_tokens(&self, x: &Var, keep_indices: Option<&Tensor>) -> Result<Var> {
        let mut tokens = self.embed_patches(x)?;
        if let Some(idx) = keep_indices {
            tokens = keep(&tokens, idx)?;
        }
        self.encode(&tokens)
    }

    /// All tokens `[B, 1 + N, D]` after the final norm, with the patches where the u8
    /// `mask [B, N]` is 1 replaced by `mask_token [1, 1, D]` before positions are added
    /// (SimMIM).
    pub fn forward_tokens_masked(&self, x: &Var, mask: &Tensor, mask_token: &Var) -> Result<Var> {
        let s = x.shape();
        let (n, d) = (self.config.num_patches(), self.config.embed_dim);
        if mask.shape() != [s.first().copied().unwrap_or(0), n] || mask.dtype() != DType::U8 {
            return Err(tessera_engine::Error::shapes_hint(
                "forward_tokens_masked",
                &[s[0], n],
                mask.shape(),
                "the mask must be u8 [B, N]",
            )
            .into());
        }
        let b = s[0];
        let raw = self.patch_embed.forward(x)?.reshape_to(&[b, d, n])?.transpose(1, 2)?;
        let m = mask.reshape_to(&[b, n, 1])?;
        let tokens = Var::where_(&m, mask_token, &raw)?.add(&self.positions().narrow(1, 1, n)?)?;
        self.encode(&tokens)
    }

    /// Prepends the class token (with its position) and runs the blocks and final norm.
    fn encode(&self, tokens: &Var) -> Result<Var> {
        self.norm.forward(&self.blocks_forward(tokens)?)
    }

    /// Prepends the class token (with its position) and runs the blocks, without the norm.
    fn blocks_forward(&self, tokens: &Var) -> Result<Var> {
        let mut h = self.with_class_token(tokens)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        Ok(h)
    }

    /// `[B, N, D]` patch tokens → `[B, 1 + N, D]`, the class token (with its position) first.
    fn with_class_token(&self, tokens: &Var) -> Result<Var> {
        let (b, d) = (tokens.shape()[0], self.config.embed_dim);
        let cls = self.cls_token.get().add(&self.positions().narrow(1, 0, 1)?)?.expand(&[b, 1, d])?;
        Var::cat(&[&cls, tokens], 1)
    }

    /// Every block's attention probabilities on images `x [B, C, H, W]`, first block first,
    /// each `[B, H, 1 + N, 1 + N]` (token 0 is the class token, then the patches row by row),
    /// computed without a graph: what the attention maps and their rollout are drawn from.
    pub fn attention_maps(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let _g = no_grad();
        let mut h = self.with_class_token(&self.embed_patches(&Var::constant(x.clone()))?)?;
        let mut maps = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            maps.push(block.attention_probabilities(&h)?);
            if i + 1 < self.blocks.len() {
                h = block.forward(&h)?;
            }
        }
        Ok(maps)
    }

    /// The mean of the patch tokens of `tokens [B, 1 + K, D]` as they leave the blocks, then
    /// the final norm: [`Pool::Mean`]'s features of the patches that entered.
    fn mean_pool(&self, tokens: &Var) -> Result<Var> {
        let l = tokens.shape()[1];
        self.norm.forward(&tokens.narrow(1, 1, l - 1)?.mean(&[1], false)?)
    }

    /// Pooled features `[B, D]` before the head.
    pub fn forward_features(&self, x: &Var) -> Result<Var> {
        self.pooled_features(x, self.config.pool)
    }

    /// Features `[B, D]` before the head under `pool`, whatever the config's pool.
    pub fn pooled_features(&self, x: &Var, pool: Pool) -> Result<Var> {
        match pool {
            Pool::Token => self.forward_tokens(x, None)?.select(1, 0),
            Pool::Mean => self.mean_pool(&self.blocks_forward(&self.embed_patches(x)?)?),
        }
    }
}

/// A ViT's features read through another pool than its config's (the same weights): what a
/// run's report scores beside the configured pool, so the class token and the mean of the
/// patch tokens are both on record. Its `forward` is the pooled features, without a head.
pub struct WithPool<'a> {
    pub vit: &'a VisionTransformer,
    pub pool: Pool,
}

impl Module for WithPool<'_> {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.vit.pooled_features(x, self.pool)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.vit.visit(prefix, f)
    }
}

/// Tokens `[B, N, D]` → `[B, K, D]` picked by `idx` (`[B, K]` per sample or `[K]` shared).
fn keep(tokens: &Var, idx: &Tensor) -> Result<Var> {
    let s = tokens.shape();
    match idx.shape() {
        [_] => tokens.index_select(1, idx),
        [b, k] if *b == s[0] => tokens.gather(1, &idx.reshape_to(&[*b, *k, 1])?.expand(&[*b, *k, s[2]])?.contiguous()?),
        other => Err(tessera_engine::Error::shapes_hint("forward_tokens", &s, other, "keep_indices must be i64 [B, K] or [K]").into()),
    }
}

impl Module for VisionTransformer {
    fn as_vision_transformer(&self) -> Option<&VisionTransformer> {
        Some(self)
    }

    fn forward(&self, x: &Var) -> Result<Var> {
        let h = self.forward_features(x)?;
        match &self.head {
            Some(head) => head.forward(&h),
            None => Ok(h),
        }
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(&join(prefix, "cls_token"), Entry::Param(&self.cls_token));
        match &self.pos_embed {
            Positions::Learned(p) => f(&join(prefix, "pos_embed"), Entry::Param(p)),
            Positions::Fixed(b) => f(&join(prefix, "pos_embed"), Entry::Buffer(b)),
        }
        self.patch_embed.visit(&join(prefix, "patch_embed.proj"), f);
        for (i, block) in self.blocks.iter().enumerate() {
            block.visit(&join(prefix, &format!("blocks.{i}")), f);
        }
        self.norm.visit(&join(prefix, "norm"), f);
        if let Some(head) = &self.head {
            head.visit(&join(prefix, "head"), f);
        }
    }
}

/// The pooled features, or the logits' width when the ViT has a head.
impl Encoder for VisionTransformer {
    fn output_dim(&self) -> usize {
        self.config.num_classes.unwrap_or(self.config.embed_dim)
    }
}
