//! RotNet (Gidaris, Singh, Komodakis 2018): every image in its four rotations (0°, 90°,
//! 180°, 270°, by rot90: no interpolation, so no artefact tells them apart) in one batch, a
//! 4-way classifier on the encoder, cross-entropy. The encoder's features are evaluated.
//!
//! ```text
//! x₄ = [rot90(x, k) for x in batch for k in 0..4]     # 4B images, labels k
//! loss = CE(head(f(x₄)), k)
//! ```

use std::sync::Arc;

use super::options::{nonzero, parse_options, resolve_options, MethodOptions, OptionsContext};
use super::pretext::{class_targets, classify, mean_where, pretext_view};
use super::{Backbone, BuildContext, DataRecipe, Family, Method, MethodInfo, Preset, StepContext, StepOutput, TrainBatch, ViewAugment};
use crate::data::tasks::RotationTask;
use crate::nn::{join, Entry, Module, ProjectionHead};
use serde::{Deserialize, Serialize};
use tessera_autograd::{Result, Var};
use tessera_engine::{DType, Generator, Tensor};

/// RotNet's registry entry.
pub const INFO: MethodInfo = MethodInfo {
    name: "rotation",
    family: Family::Pretext,
    paper: "Gidaris, Singh, Komodakis 2018, Unsupervised Representation Learning by Predicting Image Rotations",
    default_encoder: "resnet-narrow",
    presets: &[Preset {
        datasets: &["default", "fashion-mnist", "mnist", "cifar10", "folder", "synthetic"],
        file: "rotation-fashion-mnist.toml",
        toml: include_str!("../../../configs/rotation-fashion-mnist.toml"),
    }],
    resolve: |t, c| resolve_options::<RotationOptions>("rotation", t, c),
    build,
};

/// Names of the per-rotation accuracies in the epoch log, in label order.
pub const ROTATION_METRICS: [&str; 4] = ["rot0_acc", "rot90_acc", "rot180_acc", "rot270_acc"];

/// The `[rotation]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RotationOptions {
    /// Layers of the rotation classifier: 1 is a linear layer on the features, 2 or more an
    /// MLP with BN (RotNet puts its classifier on top of a few more layers).
    pub head_layers: usize,
    /// Hidden width of the classifier (unused with one layer).
    pub head_hidden: usize,
    /// The images before rotating: `plain` (as stored) or `light` (random resized crop of
    /// 20–100% and a horizontal flip, which keep "up" where it was).
    pub augment: String,
}

impl Default for RotationOptions {
    fn default() -> Self {
        RotationOptions { head_layers: 2, head_hidden: 256, augment: "plain".into() }
    }
}

impl MethodOptions for RotationOptions {
    fn validate(&self, _: &OptionsContext) -> std::result::Result<(), String> {
        nonzero("head_layers", self.head_layers)?;
        nonzero("head_hidden", self.head_hidden)?;
        pretext_view(&self.augment).map(|_| ())
    }
}

fn build(ctx: &BuildContext) -> std::result::Result<Box<dyn Method>, String> {
    let o: RotationOptions = parse_options("rotation", ctx.options)?;
    let mut gen = Generator::new(ctx.seed);
    let backbone = Backbone::build(ctx.encoder, &mut gen)?;
    let head = ProjectionHead::new(backbone.dim, o.head_hidden, 4, o.head_layers, false, &mut gen).map_err(|e| e.to_string())?;
    Ok(Box::new(Rotation { backbone, head, view: pretext_view(&o.augment)? }))
}

/// The RotNet model: encoder and rotation classifier.
pub struct Rotation {
    pub backbone: Backbone,
    pub head: ProjectionHead,
    view: ViewAugment,
}

impl Method for Rotation {
    fn name(&self) -> &'static str {
        "rotation"
    }

    fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    fn data_recipe(&self) -> DataRecipe {
        DataRecipe::views(vec![self.view]).with_task(Arc::new(RotationTask))
    }

    fn training_step(&self, batch: &TrainBatch, _: &StepContext) -> Result<StepOutput> {
        let targets = class_targets("rotation", batch.targets.as_ref())?;
        let x = batch.views.first().ok_or_else(|| tessera_engine::Error::invalid("rotation", "the batch has no view"))?;
        let h = self.backbone.net.forward(&Var::constant(x.clone()))?;
        let (loss, hits) = classify(&self.head.forward(&h)?, targets)?;
        // The unrotated copies (rows 0, 4, 8, ...) feed the online probe.
        let n = x.shape()[0] / 4;
        let upright = Tensor::arange(0.0, (4 * n) as f64, 4.0, DType::I64)?.to_device(x.device())?;
        let mut out = StepOutput::new(loss, h.value().index_select(0, &upright)?).with_metric("pretext_acc", mean_where(&hits, |_| true));
        for (k, name) in ROTATION_METRICS.iter().enumerate() {
            out = out.with_metric(name, mean_where(&hits, |i| i % 4 == k));
        }
        Ok(out)
    }
}

impl Module for Rotation {
    /// The representation f(x).
    fn forward(&self, x: &Var) -> Result<Var> {
        self.backbone.net.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(prefix, f);
        self.head.visit(&join(prefix, "head"), f);
    }
}
