//! SimMIM (Xie et al. 2022, "SimMIM: a Simple Framework for Masked Image Modeling", §3):
//!
//! ```text
//! mask ~60% of coarse blocks (mask patch ≥ ViT patch), upsampled to patches  # data side
//! tokens = ViT(every patch, masked ones replaced by a learned mask token)
//! recon  = pixel shuffle(Linear(tokens))          # a one-layer head, raw pixels
//! loss   = Σ |x − recon| · mask / (Σ mask + 1e-5) / C
//! ```
//!
//! The head here is a linear layer per patch token, the reference's 1×1 convolution + pixel
//! shuffle with its outputs in [`patchify`](crate::nn::patchify) order.

use std::rc::Rc;
use std::sync::Arc;

use super::mae::masked_view;
use super::mim::{check_mask_ratio, normalize, reconstruction_grid, vit_backbone, PICTURE_MASK_SEED};
use super::mim_loss::simmim_loss;
use super::options::{parse_options, resolve_options, MethodOptions, OptionsContext};
use super::{
    Backbone, BuildContext, DataRecipe, Family, ImageGrid, Method, MethodInfo, Preset, StepContext, StepOutput, TrainBatch, ViewAugment,
};
use crate::data::tasks::{SimMimMasker, SimMimMasking};
use crate::nn::{
    init, join, patch_mask_to_pixels, unpatchify, vit_linear, Entry, Linear, Module, Param, PosEmbed, VisionTransformer, VitConfig,
};
use serde::{Deserialize, Serialize};
use tessera_autograd::{Result, Var};
use tessera_engine::{DType, Generator, Tensor};

/// SimMIM's registry entry.
pub const INFO: MethodInfo = MethodInfo {
    name: "simmim",
    family: Family::MaskedImageModeling,
    paper: "Xie et al. 2022, SimMIM: a Simple Framework for Masked Image Modeling",
    default_encoder: "vit-tiny",
    presets: &[
        Preset {
            datasets: &["default", "fashion-mnist", "mnist"],
            file: "simmim-fashion-mnist.toml",
            toml: include_str!("../../../configs/simmim-fashion-mnist.toml"),
        },
        Preset {
            datasets: &["cifar10", "folder"],
            file: "simmim-cifar10.toml",
            toml: include_str!("../../../configs/simmim-cifar10.toml"),
        },
    ],
    resolve: |t, c| resolve_options::<SimMimOptions>("simmim", t, c),
    build,
};

/// The `[simmim]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimMimOptions {
    /// Fraction of mask blocks hidden, in (0, 1).
    pub mask_ratio: f64,
    /// Side of a mask block in pixels: a multiple of the ViT patch that divides the image.
    /// 0 picks twice the patch when that divides the image (32 px blocks for 16 px patches
    /// in the paper), else the patch itself (28 × 28 images with patch 4).
    pub mask_patch: usize,
    /// The encoder's initialization: `timm` (the reference's: matrices normal with std 0.02)
    /// or `xavier` (MAE's: Xavier-uniform matrices, about 2.5× larger on ViT-Tiny). At a few
    /// hundred steps timm's init leaves the features nearly constant (BENCHMARKS.md, "SimMIM").
    pub init: EncoderInit,
    /// Layer scale: each block's two branches are multiplied by learned per-channel gains
    /// that start here, as in the reference ViT (its `INIT_VALUES`, 0.1); 0 turns it off
    /// (plain residuals, timm's ViT). On the Fashion-MNIST preset it lifts the linear probe
    /// by 0.05 (BENCHMARKS.md, "SimMIM").
    pub layer_scale: f64,
}

/// How SimMIM initializes its ViT encoder (`[simmim] init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderInit {
    /// The reference's: matrices truncated normal with std 0.02.
    Timm,
    /// MAE's: Xavier-uniform matrices.
    Xavier,
}

impl Default for SimMimOptions {
    fn default() -> Self {
        SimMimOptions { mask_ratio: 0.6, mask_patch: 0, init: EncoderInit::Xavier, layer_scale: 0.1 }
    }
}

impl MethodOptions for SimMimOptions {
    fn validate(&self, _: &OptionsContext) -> std::result::Result<(), String> {
        if !(self.layer_scale.is_finite() && self.layer_scale >= 0.0) {
            return Err(format!("layer_scale must be a finite number ≥ 0 (0 turns it off), got {}", self.layer_scale));
        }
        check_mask_ratio(self.mask_ratio)
    }
}

/// The mask block side in effect for images of `side` pixels and ViT patch `patch`.
pub fn mask_patch(configured: usize, side: usize, patch: usize) -> usize {
    match configured {
        0 if side.is_multiple_of(2 * patch) => 2 * patch,
        0 => patch,
        m => m,
    }
}

fn build(ctx: &BuildContext) -> std::result::Result<Box<dyn Method>, String> {
    let o: SimMimOptions = parse_options("simmim", ctx.options)?;
    Ok(Box::new(SimMim::new(ctx, o)?))
}

/// The SimMIM model: the ViT encoder, its mask token and the one-layer pixel head.
pub struct SimMim {
    vit: Rc<VisionTransformer>,
    backbone: Backbone,
    mask_token: Param,
    head: Linear,
    masker: SimMimMasker,
}

impl SimMim {
    /// The mask token is truncated normal (std 0.02), as in the reference.
    pub fn new(ctx: &BuildContext, options: SimMimOptions) -> std::result::Result<SimMim, String> {
        let e = |e: tessera_autograd::Error| e.to_string();
        let mut gen = Generator::new(ctx.seed);
        let (vit, backbone) = vit_backbone(
            ctx.encoder,
            |c| VitConfig { pos_embed: PosEmbed::Learned, layer_scale: (options.layer_scale > 0.0).then_some(options.layer_scale), ..c },
            "simmim",
            &mut gen,
        )?;
        if options.init == EncoderInit::Xavier {
            vit.init_as_mae(&mut gen).map_err(e)?;
        }
        let c = vit.config().clone();
        let block = mask_patch(options.mask_patch, c.img_size, c.patch_size);
        let masker = SimMimMasker::new((c.img_size, c.img_size), block, c.patch_size, options.mask_ratio).map_err(|_| {
            format!("mask_patch {block} must be a multiple of the ViT patch {} that divides the image side {}", c.patch_size, c.img_size)
        })?;
        let mask_token = Param::new(init::trunc_normal(&mut gen, &[1, 1, c.embed_dim], 0.02, DType::F32).map_err(e)?).map_err(e)?;
        let head = vit_linear(c.embed_dim, c.patch_size * c.patch_size * c.in_channels, true, &mut gen).map_err(e)?;
        Ok(SimMim { vit, backbone, mask_token, head, masker })
    }

    /// Encoder tokens of the patches `[B, L, D]` and the reconstruction `[B, C, H, W]`.
    pub fn reconstruct(&self, x: &Var, mask: &Tensor) -> Result<(Var, Var)> {
        let c = self.vit.config();
        let tokens = self.vit.forward_tokens_masked(x, &mask.to_dtype(DType::U8)?, &self.mask_token.get())?;
        let patches = tokens.narrow(1, 1, c.num_patches())?;
        let recon = unpatchify(&self.head.forward(&patches)?, c.patch_size, c.in_channels, (c.img_size, c.img_size))?;
        Ok((patches, recon))
    }

    fn pixel_mask(&self, mask: &Tensor) -> tessera_engine::Result<Tensor> {
        patch_mask_to_pixels(mask, self.masker.model_grid(), self.vit.config().patch_size)
    }
}

impl Method for SimMim {
    fn name(&self) -> &'static str {
        "simmim"
    }

    fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// One lightly cropped view, and block-wise masks drawn on the data side.
    fn data_recipe(&self) -> DataRecipe {
        DataRecipe::views(vec![ViewAugment::Light]).with_task(Arc::new(SimMimMasking(self.masker.clone())))
    }

    fn training_step(&self, batch: &TrainBatch, _: &StepContext) -> Result<StepOutput> {
        let (x, mask) = masked_view(batch)?;
        let x = Var::constant(x.clone());
        let (patches, recon) = self.reconstruct(&x, mask)?;
        let pixel_mask = self.pixel_mask(mask)?;
        let loss = simmim_loss(&x, &recon, &pixel_mask)?;
        // The L1 error on visible pixels, which the loss ignores (an identity shortcut shows here).
        let visible = pixel_mask.mul_scalar(-1.0)?.add_scalar(1.0)?;
        let visible_l1 = simmim_loss(&x, &Var::constant(recon.value()), &visible)?.value().item()?;
        Ok(StepOutput::new(loss, patches.value().mean(&[1], false)?).with_metric("visible_pixel_l1", visible_l1))
    }

    fn visualize(&self, images: &Tensor, norm: (f32, f32)) -> Result<Option<ImageGrid>> {
        let device = self.vit.device();
        let x = Var::constant(normalize(images, norm)?.to_device(device)?);
        let (gh, gw) = self.masker.model_grid();
        let mask = Tensor::from_vec(
            self.masker.sample_batch(images.shape()[0], &Generator::new(PICTURE_MASK_SEED)),
            &[images.shape()[0], gh * gw],
        )?
        .to_dtype(DType::U8)?
        .to_device(device)?;
        let (_, recon) = self.reconstruct(&x, &mask)?;
        Ok(Some(reconstruction_grid(images, norm, &mask, self.vit.config().patch_size, &recon.value())?))
    }
}

impl Module for SimMim {
    /// The encoder's pooled features of whole images.
    fn forward(&self, x: &Var) -> Result<Var> {
        self.backbone.net.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(prefix, f);
        f(&join(prefix, "mask_token"), Entry::Param(&self.mask_token));
        self.head.visit(&join(prefix, "decoder"), f);
    }
}
