//! MAE's decoder (He et al. 2022, §3): the encoder's tokens of the visible patches are
//! projected to the decoder width, a shared learned mask token fills every masked position,
//! the sequence is put back in image order, fixed 2-D sin-cos positions are added, and a few
//! transformer blocks predict each patch's pixels. Names follow the reference code
//! (`decoder_embed`, `mask_token`, `decoder_pos_embed`, `decoder_blocks`, `decoder_norm`,
//! `decoder_pred`).

use super::attention::{vit_linear, TransformerBlock};
use super::init;
use super::layernorm::LayerNorm;
use super::linear::Linear;
use super::module::{join, Buffer, Entry, Module, Param};
use super::vit::sincos_2d;
use tessera_autograd::{Result, Var};
use tessera_engine::{DType, Generator, Tensor};

/// The shape of an [`MaeDecoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct MaeDecoderConfig {
    /// Width of the encoder's tokens.
    pub encoder_dim: usize,
    /// Width of the decoder (512 for ViT-B in the paper; narrower for small encoders).
    pub dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    /// Patches per side of the (square) image grid.
    pub grid: usize,
    /// Values predicted per patch: p·p·C.
    pub patch_values: usize,
}

/// The decoder; `forward_masked` maps encoder tokens `[B, 1 + K, D]` (class token first)
/// and the restore permutation to predictions `[B, L, p·p·C]`.
pub struct MaeDecoder {
    embed: Linear,
    mask_token: Param,
    pos_embed: Buffer,
    blocks: Vec<TransformerBlock>,
    norm: LayerNorm,
    pred: Linear,
    config: MaeDecoderConfig,
}

impl MaeDecoder {
    /// The reference init: Linear layers Xavier-uniform ([`init::xavier_matrices`]), the mask
    /// token normal (std 0.02), positions the fixed sin-cos table (a zero row for the class
    /// token).
    pub fn new(config: &MaeDecoderConfig, gen: &mut Generator) -> Result<MaeDecoder> {
        let c = config;
        if c.dim == 0 || !c.dim.is_multiple_of(4) || c.grid == 0 || c.patch_values == 0 {
            let msg = format!("needs a width divisible by 4 (sin-cos positions) and a non-empty grid, got {c:?}");
            return Err(tessera_engine::Error::invalid("MaeDecoder", msg).into());
        }
        let l = c.grid * c.grid;
        let mut table = vec![0.0; c.dim];
        table.extend(sincos_2d(c.dim, c.grid));
        let blocks = (0..c.depth).map(|_| TransformerBlock::new(c.dim, c.num_heads, 4.0, true, gen)).collect::<Result<_>>()?;
        let decoder = MaeDecoder {
            embed: vit_linear(c.encoder_dim, c.dim, true, gen)?,
            mask_token: Param::new(gen.normal(&[1, 1, c.dim], 0.0, 0.02, DType::F32)?)?,
            pos_embed: Buffer::new(Tensor::from_vec(table, &[1, l + 1, c.dim])?.to_dtype(DType::F32)?),
            blocks,
            norm: LayerNorm::new(c.dim, 1e-6)?,
            pred: vit_linear(c.dim, c.patch_values, true, gen)?,
            config: c.clone(),
        };
        init::xavier_matrices(&decoder, init::FusedQkv::OneMatrix, gen)?;
        Ok(decoder)
    }

    pub fn config(&self) -> &MaeDecoderConfig {
        &self.config
    }

    /// Predictions `[B, L, p·p·C]` from the encoder's tokens `[B, 1 + K, D]` of the kept
    /// patches (in the order `ids_restore` assumes: kept first, then masked) and
    /// `ids_restore` (i64 `[B, L]`: where each original patch sits in that order).
    pub fn forward_masked(&self, latent: &Var, ids_restore: &Tensor) -> Result<Var> {
        let (s, l, dd) = (latent.shape(), self.config.grid * self.config.grid, self.config.dim);
        if s.len() != 3 || s[1] < 1 || s[1] > l + 1 || ids_restore.shape() != [s[0], l] {
            return Err(tessera_engine::Error::shapes_hint(
                "MaeDecoder",
                &s,
                ids_restore.shape(),
                format!("expects latent [B, 1 + K, D] with K ≤ {l} and ids_restore [B, {l}]"),
            )
            .into());
        }
        let (b, kept) = (s[0], s[1] - 1);
        let x = self.embed.forward(latent)?;
        let masks = self.mask_token.get().expand(&[b, l - kept, dd])?;
        let shuffled = Var::cat(&[&x.narrow(1, 1, kept)?, &masks], 1)?;
        let index = ids_restore.reshape(&[b as isize, l as isize, 1])?.broadcast_to(&[b, l, dd])?.contiguous()?;
        let patches = shuffled.gather(1, &index)?;
        let mut h = Var::cat(&[&x.narrow(1, 0, 1)?, &patches], 1)?.add(&Var::constant(self.pos_embed.get()))?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        let out = self.pred.forward(&self.norm.forward(&h)?)?;
        out.narrow(1, 1, l)
    }
}

impl Module for MaeDecoder {
    /// Decodes a full sequence (every patch kept, in order): `[B, 1 + L, D] → [B, L, p·p·C]`.
    fn forward(&self, latent: &Var) -> Result<Var> {
        let b = latent.shape().first().copied().unwrap_or(0);
        let l = self.config.grid * self.config.grid;
        let order: Vec<i64> = (0..b).flat_map(|_| 0..l as i64).collect();
        self.forward_masked(latent, &Tensor::from_vec(order, &[b, l])?.to_device(latent.value().device())?)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.embed.visit(&join(prefix, "decoder_embed"), f);
        f(&join(prefix, "mask_token"), Entry::Param(&self.mask_token));
        f(&join(prefix, "decoder_pos_embed"), Entry::Buffer(&self.pos_embed));
        for (i, block) in self.blocks.iter().enumerate() {
            block.visit(&join(prefix, &format!("decoder_blocks.{i}")), f);
        }
        self.norm.visit(&join(prefix, "decoder_norm"), f);
        self.pred.visit(&join(prefix, "decoder_pred"), f);
    }
}
