//! MoCo v3 (Chen, Xie, He 2021, "An Empirical Study of Training Self-Supervised Vision
//! Transformers", Algorithm 1): no queue — each query is contrasted with the momentum keys
//! of the same batch — a predictor on the query branch, and a symmetric loss.
//!
//! ```text
//! q₁, q₂ = pred(proj(f(x₁))), pred(proj(f(x₂)))       # queries, with gradients
//! k₁, k₂ = proj_m(f_m(x₁)), proj_m(f_m(x₂))           # momentum keys, no gradients
//! loss = ctr(q₁, k₂) + ctr(q₂, k₁)                    # ctr: InfoNCE over the batch, × 2τ
//! after the step: θ_m ← m·θ_m + (1 − m)·θ, m rising from its base to 1 along a cosine
//! ```
//!
//! For ViTs the patch projection can stay at its random initialization (the paper's
//! stability trick, `freeze_patch_embed`).

use super::options::{nonzero, parse_options, positive, resolve_options, unit_interval, MethodOptions, OptionsContext};
use super::{
    contrastive_loss, cosine_momentum, two_views, Backbone, BuildContext, Family, Method, MethodInfo, MomentumEncoder, Preset, StepContext,
    StepOutput, TrainBatch,
};
use crate::nn::init::{xavier_matrices, FusedQkv};
use crate::nn::{freeze_prefix, is_vit, join, Entry, Module, ProjectionHead};
use serde::{Deserialize, Serialize};
use tessera_autograd::{Result, Var};
use tessera_engine::{Generator, Tensor};

/// MoCo v3's registry entry.
pub const INFO: MethodInfo = MethodInfo {
    name: "moco-v3",
    family: Family::Contrastive,
    paper: "Chen, Xie, He 2021, An Empirical Study of Training Self-Supervised Vision Transformers",
    default_encoder: "vit-tiny",
    presets: &[
        Preset {
            datasets: &["default", "fashion-mnist", "mnist"],
            file: "moco-v3-fashion-mnist.toml",
            toml: include_str!("../../../configs/moco-v3-fashion-mnist.toml"),
        },
        Preset {
            datasets: &["cifar10", "folder"],
            file: "moco-v3-cifar10.toml",
            toml: include_str!("../../../configs/moco-v3-cifar10.toml"),
        },
    ],
    resolve: |t, c| resolve_options::<MocoV3Options>("moco-v3", t, c),
    build,
};

/// The `[moco-v3]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MocoV3Options {
    /// τ; when unset, the paper's: 0.2 for ViTs, 1.0 for ResNets (the resolved value is saved).
    pub temperature: Option<f64>,
    /// Base momentum m₀, raised to 1 along a cosine over the schedule.
    pub momentum: f64,
    /// Projector: 3 layers, `hidden` wide, BN after every layer (the last without affine).
    pub proj_hidden: usize,
    /// Width of keys and queries.
    pub proj_out: usize,
    /// Predictor: 2 layers, `hidden` wide.
    pub pred_hidden: usize,
    /// Keep a ViT's patch projection at its random initialization (ignored for ResNets).
    pub freeze_patch_embed: bool,
}

impl Default for MocoV3Options {
    fn default() -> Self {
        MocoV3Options { temperature: None, momentum: 0.99, proj_hidden: 4096, proj_out: 256, pred_hidden: 4096, freeze_patch_embed: true }
    }
}

impl MethodOptions for MocoV3Options {
    fn complete(&mut self, ctx: &OptionsContext) {
        self.temperature.get_or_insert(if is_vit(ctx.encoder) { 0.2 } else { 1.0 });
    }

    fn validate(&self, _: &OptionsContext) -> std::result::Result<(), String> {
        positive("temperature", self.temperature.unwrap_or(1.0))?;
        unit_interval("momentum", self.momentum)?;
        nonzero("proj_hidden", self.proj_hidden)?;
        nonzero("proj_out", self.proj_out)?;
        nonzero("pred_hidden", self.pred_hidden)
    }
}

fn build(ctx: &BuildContext) -> std::result::Result<Box<dyn Method>, String> {
    let mut o: MocoV3Options = parse_options("moco-v3", ctx.options)?;
    o.complete(&OptionsContext { encoder: &ctx.encoder.name, batch_size: ctx.batch_size });
    Ok(Box::new(MocoV3::new(ctx, &o).map_err(|e| e.to_string())?))
}

/// The MoCo v3 model.
pub struct MocoV3 {
    backbone: Backbone,
    projector: ProjectionHead,
    predictor: ProjectionHead,
    momentum_encoder: MomentumEncoder,
    temperature: f64,
    base_momentum: f64,
}

impl MocoV3 {
    /// Builds the backbone, projector, predictor and the momentum copy from the seed.
    pub fn new(ctx: &BuildContext, o: &MocoV3Options) -> std::result::Result<MocoV3, String> {
        let e = |e: tessera_autograd::Error| e.to_string();
        let projector = |dim: usize, gen: &mut Generator| ProjectionHead::new(dim, o.proj_hidden, o.proj_out, 3, true, gen);
        let mut gen = Generator::new(ctx.seed);
        let backbone = Backbone::build(ctx.encoder, &mut gen)?;
        if is_vit(&ctx.encoder.name) {
            // MoCo v3's `vits.py`: Xavier-uniform matrices, q, k and v each as its own.
            xavier_matrices(&*backbone.net, FusedQkv::ThreeMatrices, &mut gen).map_err(e)?;
        }
        let dim = backbone.dim;
        let proj = projector(dim, &mut gen).map_err(e)?;
        let predictor = ProjectionHead::new(o.proj_out, o.pred_hidden, o.proj_out, 2, false, &mut gen).map_err(e)?;
        let mut scratch = gen.fork(2);
        let (key_encoder, _) = ctx.encoder.build(&mut scratch)?;
        let key_head = projector(dim, &mut scratch).map_err(e)?;
        let momentum_encoder = MomentumEncoder::new(key_encoder, Box::new(key_head), (backbone.net.as_ref(), &proj)).map_err(e)?;
        if o.freeze_patch_embed && is_vit(&ctx.encoder.name) {
            freeze_prefix(backbone.net.as_ref(), "patch_embed.");
        }
        Ok(MocoV3 {
            backbone,
            projector: proj,
            predictor,
            momentum_encoder,
            temperature: o.temperature.unwrap_or(1.0),
            base_momentum: o.momentum,
        })
    }

    fn query(&self, x: &Var) -> Result<(Var, Var)> {
        let h = self.backbone.net.forward(x)?;
        let q = self.predictor.forward(&self.projector.forward(&h)?)?;
        Ok((h, q))
    }
}

impl Method for MocoV3 {
    fn name(&self) -> &'static str {
        "moco-v3"
    }

    fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// The projector's output (before the predictor): what the momentum keys are made of.
    fn projector_embedding(&self, features: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.projector.forward(&Var::constant(features.clone()))?.value()))
    }

    fn training_step(&self, batch: &TrainBatch, _: &StepContext) -> Result<StepOutput> {
        let (x1, x2) = two_views(batch)?;
        let (h1, q1) = self.query(&Var::constant(x1.clone()))?;
        let (_, q2) = self.query(&Var::constant(x2.clone()))?;
        let (k1, k2) = (self.momentum_encoder.forward(x1)?, self.momentum_encoder.forward(x2)?);
        let loss = contrastive_loss(&q1, &k2, self.temperature)?.add(&contrastive_loss(&q2, &k1, self.temperature)?)?;
        Ok(StepOutput::new(loss, h1.value()))
    }

    /// The momentum update with m on its cosine schedule at this step.
    fn after_step(&self, ctx: &StepContext) -> Result<()> {
        let m = cosine_momentum(self.base_momentum, ctx.step, ctx.total_steps);
        self.momentum_encoder.update((self.backbone.net.as_ref(), &self.projector), m)
    }
}

impl Module for MocoV3 {
    /// The representation f(x).
    fn forward(&self, x: &Var) -> Result<Var> {
        self.backbone.net.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(prefix, f);
        self.projector.visit(&join(prefix, "projector"), f);
        self.predictor.visit(&join(prefix, "predictor"), f);
        self.momentum_encoder.visit(&join(prefix, "momentum"), f);
    }
}
