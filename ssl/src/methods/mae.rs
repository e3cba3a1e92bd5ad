//! MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners", §3):
//!
//! ```text
//! mask 75% of the patches per sample (argsort of uniform noise)       # data side
//! latent = ViT(visible patches + fixed sin-cos positions, cls token)  # a quarter of the tokens
//! pred   = decoder(latent, mask tokens at the masked positions)       # [N, L, p·p·C]
//! loss   = MSE(pred, per-patch-normalized pixels) on masked patches only
//! ```
//!
//! The encoder's features (all patches, no mask) are what evaluation reads; the decoder is
//! thrown away. The reconstruction picture de-normalizes predictions with each patch's own
//! statistics when the loss normalized them.

use std::rc::Rc;
use std::sync::Arc;

use super::mim::{check_mask_ratio, kept_and_restore, normalize, reconstruction_grid, vit_backbone, PICTURE_MASK_SEED};
use super::mim_loss::{mae_loss, mae_targets, MAE_NORM_EPS};
use super::options::{nonzero, parse_options, resolve_options, MethodOptions, OptionsContext};
use super::{
    Backbone, BuildContext, DataRecipe, Family, ImageGrid, Method, MethodInfo, Preset, StepContext, StepOutput, TrainBatch, ViewAugment,
};
use crate::data::tasks::{mae_mask_batch, MaeMasking};
use crate::nn::{patchify, unpatchify, Entry, MaeDecoder, MaeDecoderConfig, Module, PosEmbed, VisionTransformer, VitConfig};
use serde::{Deserialize, Serialize};
use tessera_autograd::{Result, Var};
use tessera_engine::{DType, Generator, Tensor};

/// MAE's registry entry.
pub const INFO: MethodInfo = MethodInfo {
    name: "mae",
    family: Family::MaskedImageModeling,
    paper: "He et al. 2022, Masked Autoencoders Are Scalable Vision Learners",
    default_encoder: "vit-tiny",
    presets: &[
        Preset {
            datasets: &["default", "fashion-mnist", "mnist"],
            file: "mae-fashion-mnist.toml",
            toml: include_str!("../../../configs/mae-fashion-mnist.toml"),
        },
        Preset { datasets: &["cifar10", "folder"], file: "mae-cifar10.toml", toml: include_str!("../../../configs/mae-cifar10.toml") },
    ],
    resolve: |t, c| resolve_options::<MaeOptions>("mae", t, c),
    build,
};

/// The `[mae]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaeOptions {
    /// Fraction of patches hidden from the encoder, in (0, 1).
    pub mask_ratio: f64,
    /// Decoder width (512 for ViT-B in the paper; lighter than the encoder).
    pub decoder_dim: usize,
    pub decoder_depth: usize,
    pub decoder_heads: usize,
    /// Regress each patch normalized by its own mean and (unbiased) variance.
    pub norm_pix_loss: bool,
}

impl Default for MaeOptions {
    fn default() -> Self {
        MaeOptions { mask_ratio: 0.75, decoder_dim: 128, decoder_depth: 2, decoder_heads: 4, norm_pix_loss: true }
    }
}

impl MethodOptions for MaeOptions {
    fn validate(&self, _: &OptionsContext) -> std::result::Result<(), String> {
        check_mask_ratio(self.mask_ratio)?;
        nonzero("decoder_depth", self.decoder_depth)?;
        nonzero("decoder_heads", self.decoder_heads)?;
        if self.decoder_dim == 0 || !self.decoder_dim.is_multiple_of(4) || !self.decoder_dim.is_multiple_of(self.decoder_heads) {
            return Err(format!(
                "decoder_dim must be a positive multiple of 4 and of decoder_heads {} (got {})",
                self.decoder_heads, self.decoder_dim
            ));
        }
        Ok(())
    }
}

fn build(ctx: &BuildContext) -> std::result::Result<Box<dyn Method>, String> {
    let o: MaeOptions = parse_options("mae", ctx.options)?;
    Ok(Box::new(Mae::new(ctx, o)?))
}

/// The MAE model: the ViT encoder (fixed sin-cos positions) and its decoder.
pub struct Mae {
    vit: Rc<VisionTransformer>,
    backbone: Backbone,
    decoder: MaeDecoder,
    options: MaeOptions,
}

impl Mae {
    pub fn new(ctx: &BuildContext, options: MaeOptions) -> std::result::Result<Mae, String> {
        let mut gen = Generator::new(ctx.seed);
        let (vit, backbone) = vit_backbone(ctx.encoder, |c| VitConfig { pos_embed: PosEmbed::SinCos, ..c }, "mae", &mut gen)?;
        vit.init_as_mae(&mut gen).map_err(|e| e.to_string())?;
        let c = vit.config();
        let cfg = MaeDecoderConfig {
            encoder_dim: c.embed_dim,
            dim: options.decoder_dim,
            depth: options.decoder_depth,
            num_heads: options.decoder_heads,
            grid: c.grid(),
            patch_values: c.patch_size * c.patch_size * c.in_channels,
        };
        let decoder = MaeDecoder::new(&cfg, &mut gen).map_err(|e| e.to_string())?;
        Ok(Mae { vit, backbone, decoder, options })
    }

    fn patch(&self) -> usize {
        self.vit.config().patch_size
    }

    /// Encoder tokens of the visible patches `[B, 1 + K, D]` and predictions `[B, L, p·p·C]`.
    pub fn reconstruct(&self, x: &Var, mask: &Tensor) -> Result<(Var, Var)> {
        let (keep, restore) = kept_and_restore(mask)?;
        let latent = self.vit.forward_tokens(x, Some(&keep))?;
        let pred = self.decoder.forward_masked(&latent, &restore)?;
        Ok((latent, pred))
    }
}

impl Method for Mae {
    fn name(&self) -> &'static str {
        "mae"
    }

    fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// One lightly cropped view, and the per-sample masks drawn on the data side.
    fn data_recipe(&self) -> DataRecipe {
        let task = MaeMasking { num_patches: self.vit.config().num_patches(), ratio: self.options.mask_ratio };
        DataRecipe::views(vec![ViewAugment::Light]).with_task(Arc::new(task))
    }

    fn training_step(&self, batch: &TrainBatch, _: &StepContext) -> Result<StepOutput> {
        let (x, mask) = masked_view(batch)?;
        let x = Var::constant(x.clone());
        let (latent, pred) = self.reconstruct(&x, mask)?;
        let loss = mae_loss(&x, &pred, mask, self.patch(), self.options.norm_pix_loss)?;
        // The online probe reads the mean of the visible tokens: it costs no second forward.
        let k = latent.shape()[1] - 1;
        let features = latent.value().narrow(1, 1, k)?.mean(&[1], false)?;
        let visible = visible_error(&x, &pred, mask, self.patch(), self.options.norm_pix_loss)?;
        Ok(StepOutput::new(loss, features).with_metric("visible_patch_mse", visible))
    }

    fn visualize(&self, images: &Tensor, norm: (f32, f32)) -> Result<Option<ImageGrid>> {
        let device = self.vit.device();
        let x = Var::constant(normalize(images, norm)?.to_device(device)?);
        let (b, l) = (images.shape()[0], self.vit.config().num_patches());
        let m = mae_mask_batch(b, l, self.options.mask_ratio, &Generator::new(PICTURE_MASK_SEED))
            .map_err(|e| tessera_engine::Error::invalid("mae", e.to_string()))?;
        let mask = Tensor::from_vec(m.mask.iter().map(|&v| v as u8).collect(), &[b, l])?.to_device(device)?;
        let (_, pred) = self.reconstruct(&x, &mask)?;
        let mut pred = pred.value();
        if self.options.norm_pix_loss {
            // Predictions are normalized patches: give them back each patch's own statistics.
            let patches = patchify(&x, self.patch())?.value();
            let std = patches.var(&[-1], true, true)?.add_scalar(MAE_NORM_EPS)?.sqrt()?;
            pred = pred.mul(&std)?.add(&patches.mean(&[-1], true)?)?;
        }
        let [c, h, w] = [images.shape()[1], images.shape()[2], images.shape()[3]];
        let recon = unpatchify(&Var::constant(pred), self.patch(), c, (h, w))?.value();
        Ok(Some(reconstruction_grid(images, norm, &mask, self.patch(), &recon)?))
    }
}

/// The view and mask of a masked-image-modelling batch; the error says what is missing.
pub(super) fn masked_view(batch: &TrainBatch) -> Result<(&Tensor, &Tensor)> {
    match (batch.views.first(), batch.mask.as_ref()) {
        (Some(x), Some(m)) => Ok((x, m)),
        _ => Err(tessera_engine::Error::invalid("training_step", "masked image modelling needs a view and a patch mask").into()),
    }
}

/// Mean squared error on the visible patches (which the loss ignores), without a graph.
fn visible_error(x: &Var, pred: &Var, mask: &Tensor, patch: usize, norm_pix: bool) -> Result<f64> {
    let target = mae_targets(x, patch, norm_pix)?.value();
    // In f32 whatever the prediction's dtype (bf16 under autocast).
    let err = pred.value().to_dtype(DType::F32)?.sub(&target.to_dtype(DType::F32)?)?.square()?.mean(&[-1], false)?;
    let visible = mask.to_dtype(DType::F32)?.mul_scalar(-1.0)?.add_scalar(1.0)?;
    let total = visible.sum_all()?.item()?;
    Ok(err.mul(&visible)?.sum_all()?.item()? / total.max(1.0))
}

impl Module for Mae {
    /// The encoder's pooled features of whole images.
    fn forward(&self, x: &Var) -> Result<Var> {
        self.backbone.net.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(prefix, f);
        self.decoder.visit(prefix, f);
    }
}
