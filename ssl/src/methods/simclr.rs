//! SimCLR (Chen et al., 2020), Algorithm 1: two augmented views of each image, a shared
//! encoder f, a projection head g, and the NT-Xent loss on z = g(f(x)). The representation
//! used downstream is h = f(x), before the head.

use super::options::{nonzero, positive, resolve_options, MethodOptions, OptionsContext};
use super::{nt_xent, two_views, Backbone, BuildContext, Family, Method, MethodInfo, Preset, StepContext, StepOutput, TrainBatch};
use crate::nn::{join, Entry, Module, ProjectionHead};
use serde::{Deserialize, Serialize};
use tessera_autograd::{Result, Var};
use tessera_engine::{Generator, Tensor};

/// SimCLR's registry entry.
pub const INFO: MethodInfo = MethodInfo {
    name: "simclr",
    family: Family::Contrastive,
    paper: "Chen et al. 2020, A Simple Framework for Contrastive Learning of Visual Representations",
    default_encoder: "resnet-narrow",
    presets: &[
        Preset {
            datasets: &["default", "fashion-mnist", "mnist"],
            file: "simclr-fashion-mnist.toml",
            toml: include_str!("../../../configs/simclr-fashion-mnist.toml"),
        },
        Preset {
            datasets: &["cifar10", "folder"],
            file: "simclr-cifar10.toml",
            toml: include_str!("../../../configs/simclr-cifar10.toml"),
        },
    ],
    resolve: |t, c| resolve_options::<SimClrOptions>("simclr", t, c),
    build,
};

/// The `[simclr]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimClrOptions {
    /// NT-Xent temperature τ (0.5 in the paper's CIFAR-10 setup).
    pub temperature: f64,
    /// Hidden width of the projection head.
    pub proj_hidden: usize,
    /// Output width of the projection head (the space the loss works in).
    pub proj_out: usize,
}

impl Default for SimClrOptions {
    fn default() -> Self {
        SimClrOptions { temperature: 0.5, proj_hidden: 512, proj_out: 128 }
    }
}

impl MethodOptions for SimClrOptions {
    fn validate(&self, _: &OptionsContext) -> std::result::Result<(), String> {
        positive("temperature", self.temperature)?;
        nonzero("proj_hidden", self.proj_hidden)?;
        nonzero("proj_out", self.proj_out)
    }
}

fn build(ctx: &BuildContext) -> std::result::Result<Box<dyn Method>, String> {
    let o: SimClrOptions = super::options::parse_options("simclr", ctx.options)?;
    let mut gen = Generator::new(ctx.seed);
    let backbone = Backbone::build(ctx.encoder, &mut gen)?;
    Ok(Box::new(SimClr::new(backbone, o.proj_hidden, o.proj_out, o.temperature, &mut gen).map_err(|e| e.to_string())?))
}

/// The SimCLR model: encoder, projection head and temperature.
pub struct SimClr {
    pub backbone: Backbone,
    pub projector: ProjectionHead,
    pub temperature: f64,
}

impl SimClr {
    /// The head is Linear-BN-ReLU-Linear (`backbone.dim → hidden → out`).
    pub fn new(backbone: Backbone, hidden: usize, out: usize, temperature: f64, gen: &mut Generator) -> Result<SimClr> {
        let projector = ProjectionHead::new(backbone.dim, hidden, out, 2, false, gen)?;
        Ok(SimClr { backbone, projector, temperature })
    }
}

impl Method for SimClr {
    fn name(&self) -> &'static str {
        "simclr"
    }

    fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// The projection head's output z = g(h).
    fn projector_embedding(&self, features: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.projector.forward(&Var::constant(features.clone()))?.value()))
    }

    fn training_step(&self, batch: &TrainBatch, _: &StepContext) -> Result<StepOutput> {
        let (x1, x2) = two_views(batch)?;
        let n = x1.shape()[0];
        // Both views go through the encoder as one batch of 2N, so batch norm sees both, as in
        // the paper's single-device setting; rows i and i + N are the positive pair.
        let x = Var::constant(Tensor::cat(&[x1, x2], 0)?);
        let h = self.backbone.net.forward(&x)?;
        let z = self.projector.forward(&h)?;
        let loss = nt_xent(&z, self.temperature)?;
        Ok(StepOutput::new(loss, h.value().narrow(0, 0, n)?))
    }
}

impl Module for SimClr {
    /// The representation h = f(x).
    fn forward(&self, x: &Var) -> Result<Var> {
        self.backbone.net.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(prefix, f);
        self.projector.visit(&join(prefix, "projector"), f);
    }
}
