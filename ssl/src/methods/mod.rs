//! Self-supervised methods, one file per method, each reading like its paper. The training
//! loop, augmentation, evaluation and logging are shared (`train`, `data`, `eval`); the
//! pieces several methods use live beside them (`momentum`, `queue`, the losses).
//!
//! Adding a method: write `methods/<name>.rs` with a type implementing [`Method`] and a
//! [`MethodInfo`] constant, and add that constant to [`METHODS`]. The CLI's `--method`
//! choices, its error message, `tessera methods`, the presets and the tests read that list.

mod clip;
mod clip_loss;
mod colorization;
mod colorization_loss;
mod contrastive_loss;
mod jigsaw;
mod mae;
mod mim;
mod mim_loss;
mod moco_loss;
mod moco_v2;
mod moco_v3;
pub mod momentum;
mod nt_xent;
pub mod options;
pub mod pretext;
pub mod queue;
mod rotation;
mod simclr;
mod simmim;

pub use clip::{Clip, ClipOptions, TOKENIZER_FILE};
pub use clip_loss::{clip_logits, clip_loss};
pub use colorization::{Colorization, ColorizationOptions, LumaEncoder};
pub use colorization_loss::colorization_loss;
pub use contrastive_loss::contrastive_loss;
pub use jigsaw::{JigsawMethod, JigsawOptions};
pub use mae::{Mae, MaeOptions};
pub use mim::{kept_and_restore, normalize as normalize_pixels};
pub use mim_loss::{mae_loss, mae_targets, simmim_loss};
pub use moco_loss::l2_normalize_rows;
pub use moco_loss::moco_infonce;
pub use moco_v2::{MocoV2, MocoV2Options, MomentumSchedule};
pub use moco_v3::{MocoV3, MocoV3Options};
pub use momentum::{cosine_momentum, MomentumEncoder};
pub use nt_xent::nt_xent;
pub use options::{resolve_options, MethodOptions, OptionsContext};
pub use queue::KeyQueue;
pub use rotation::{Rotation, RotationOptions, ROTATION_METRICS};
pub use simclr::{SimClr, SimClrOptions};
pub use simmim::{EncoderInit, SimMim, SimMimOptions};

use crate::data::Dataset;
pub use crate::data::{DataRecipe, ImageGrid, TrainBatch, ViewAugment};
use crate::nn::{EncoderSpec, Module};
use tessera_autograd::{Result, Var};
use tessera_engine::Tensor;

/// Every registered method, in the order `tessera methods` lists them.
pub static METHODS: &[&MethodInfo] = &[
    &simclr::INFO,
    &moco_v2::INFO,
    &moco_v3::INFO,
    &clip::INFO,
    &mae::INFO,
    &simmim::INFO,
    &rotation::INFO,
    &jigsaw::INFO,
    &colorization::INFO,
];

/// The losses methods define (the gradcheck enumeration requires a check of each).
pub const LOSSES: &[&str] = &["nt_xent", "moco_infonce", "contrastive_loss", "clip_loss", "mae_loss", "simmim_loss", "colorization_loss"];

/// The registered method called `name`; the error lists every registered one.
pub fn find(name: &str) -> std::result::Result<&'static MethodInfo, String> {
    METHODS.iter().copied().find(|m| m.name == name).ok_or_else(|| format!("unknown method '{name}' (available: {})", names().join(", ")))
}

/// A registered method with its default options (as an empty `[name]` section resolves),
/// for benchmarks, tests and notebooks that do not go through a configuration file.
pub fn build_default(name: &str, encoder: &EncoderSpec, batch_size: usize, seed: u64) -> std::result::Result<Box<dyn Method>, String> {
    let info = find(name)?;
    let options = (info.resolve)(&toml::Table::new(), &OptionsContext { encoder: &encoder.name, batch_size })?;
    (info.build)(&BuildContext { options: &options, encoder, seed, batch_size, train: None, run: None })
}

/// The registered names, in registry order.
pub fn names() -> Vec<&'static str> {
    METHODS.iter().map(|m| m.name).collect()
}

/// The self-supervised family a method belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Pull views of one image together, push others apart (SimCLR, MoCo, CLIP).
    Contrastive,
    /// Reconstruct hidden patches (MAE, SimMIM).
    MaskedImageModeling,
    /// Predict a transformation applied to the input (rotation, jigsaw, colorization).
    Pretext,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Contrastive => "contrastive",
            Family::MaskedImageModeling => "masked image modeling",
            Family::Pretext => "pretext",
        }
    }
}

/// A committed configuration for a method on a family of datasets.
pub struct Preset {
    /// Dataset kinds it serves (`default`, `fashion-mnist`, `mnist`, `cifar10`, `folder`).
    pub datasets: &'static [&'static str],
    /// Its file under `configs/`.
    pub file: &'static str,
    /// The file's text, embedded in the binary.
    pub toml: &'static str,
}

/// What a method's builder gets.
pub struct BuildContext<'a> {
    /// The method's resolved configuration section (see [`resolve_options`]).
    pub options: &'a toml::Table,
    /// The backbone to build (and to copy, for momentum encoders).
    pub encoder: &'a EncoderSpec,
    /// The training images, for methods whose model depends on statistics of the data
    /// (colorization's colour prior, CLIP's vocabulary); `None` where no data is at hand
    /// (benchmarks), and such methods then say they need it.
    pub train: Option<&'a Dataset>,
    /// Seeds the weights and the method's own random draws.
    pub seed: u64,
    /// Images per training batch.
    pub batch_size: usize,
    /// The run folder being resumed or evaluated, if any: a method with files of its own
    /// ([`Method::run_files`], CLIP's vocabulary) reloads them from there.
    pub run: Option<&'a std::path::Path>,
}

/// A method's registry entry.
pub struct MethodInfo {
    /// The `--method` name.
    pub name: &'static str,
    pub family: Family,
    /// Authors, year and title of the paper it follows.
    pub paper: &'static str,
    /// The encoder its presets use.
    pub default_encoder: &'static str,
    pub presets: &'static [Preset],
    /// Resolves the method's section of a configuration: defaults filled in, unknown keys
    /// and bad values refused (one readable line).
    pub resolve: fn(&toml::Table, &OptionsContext) -> std::result::Result<toml::Table, String>,
    /// Builds the method from a resolved configuration.
    pub build: fn(&BuildContext) -> std::result::Result<Box<dyn Method>, String>,
}

impl MethodInfo {
    /// The preset for a dataset spec (`default`, `cifar10:DIR`, ...).
    pub fn preset(&self, dataset: &str) -> std::result::Result<&'static Preset, String> {
        let kind = dataset.split(':').next().unwrap_or(dataset);
        self.presets.iter().find(|p| p.datasets.contains(&kind)).ok_or_else(|| {
            let known: Vec<&str> = self.presets.iter().flat_map(|p| p.datasets.iter().copied()).collect();
            format!("unknown dataset '{dataset}' for {} (expected one of: {})", self.name, known.join(", "))
        })
    }
}

/// The step being taken: momentum schedules and per-step random draws read it, so
/// `--max-steps` and `--resume` keep them exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepContext {
    /// Optimizer steps taken before this one (0 for the first step); after the step,
    /// [`Method::after_step`] sees it incremented.
    pub step: u64,
    /// Steps in the whole schedule (every epoch), whatever `--max-steps` says.
    pub total_steps: u64,
}

/// What one training step of a method produces.
pub struct StepOutput {
    /// The scalar loss to backpropagate.
    pub loss: Var,
    /// Encoder features of the first view `[B, D]`, detached: the online probe trains on them.
    pub features: Tensor,
    /// The method's own measurements of this step (pretext accuracy, reconstruction error
    /// on masked and visible patches, ...): the loop averages each over the epoch and logs
    /// it beside the loss in `metrics.jsonl`.
    pub metrics: Vec<(&'static str, f64)>,
}

impl StepOutput {
    /// A step's loss and probe features, without measurements of its own.
    pub fn new(loss: Var, features: Tensor) -> StepOutput {
        StepOutput { loss, features, metrics: Vec::new() }
    }

    /// Adds one measurement (same name every step, so the epoch mean means something).
    pub fn with_metric(mut self, name: &'static str, value: f64) -> StepOutput {
        self.metrics.push((name, value));
        self
    }
}

/// The encoder a method trains and evaluation reads, with the width of its features.
pub struct Backbone {
    pub net: Box<dyn Module>,
    pub dim: usize,
}

impl Backbone {
    /// Builds the encoder `spec` names from `gen`.
    pub fn build(spec: &EncoderSpec, gen: &mut tessera_engine::Generator) -> std::result::Result<Backbone, String> {
        let (net, dim) = spec.build(gen)?;
        Ok(Backbone { net, dim })
    }

    /// Its parameters and buffers under `{prefix}.encoder`.
    pub fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, crate::nn::Entry<'_>)) {
        self.net.visit(&crate::nn::join(prefix, "encoder"), f);
    }
}

/// Views 0 and 1 of a batch (the two augmented views of contrastive methods); an error names
/// how many the batch has.
pub fn two_views(batch: &TrainBatch) -> Result<(&Tensor, &Tensor)> {
    match batch.views.as_slice() {
        [a, b, ..] => Ok((a, b)),
        other => Err(tessera_engine::Error::invalid("training_step", format!("needs two views, the batch has {}", other.len())).into()),
    }
}

/// A self-supervised method: a model that turns a [`TrainBatch`] into a loss. Everything
/// it needs to continue training — parameters, momentum encoders, queues, learnable
/// temperatures — is a parameter or buffer reached by [`Module::visit`], so the run's
/// checkpoint holds it and `--resume` restores it bitwise. State nothing should train
/// (a momentum encoder) is frozen, so optimizers leave it alone.
pub trait Method: Module {
    fn name(&self) -> &'static str;
    /// The encoder being trained.
    fn backbone(&self) -> &Backbone;
    /// The views and batch task this method needs from the data (by default two views
    /// through the contrastive pipeline).
    fn data_recipe(&self) -> DataRecipe {
        DataRecipe::views(vec![ViewAugment::Contrastive; 2])
    }
    /// The encoder whose features are evaluated.
    fn encoder(&self) -> &dyn Module {
        self.backbone().net.as_ref()
    }
    /// Width of the encoder's features.
    fn feature_dim(&self) -> usize {
        self.backbone().dim
    }
    /// The loss on one batch.
    fn training_step(&self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepOutput>;
    /// Called after each optimizer step, with `ctx.step` counting it: momentum (EMA)
    /// updates, queue updates and other per-step schedules happen here.
    fn after_step(&self, _ctx: &StepContext) -> Result<()> {
        Ok(())
    }
    /// The projector's output for encoder features `h [N, D]` on the method's device (SimCLR
    /// and MoCo's projection head, CLIP's visual projection into the joint space), for the
    /// diagnostics' `rankme_projector`; `None` (the default) for methods without one. Callers
    /// run it in eval mode without a graph.
    fn projector_embedding(&self, _features: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// A picture of what the model does on `images` (raw pixels in [0, 1], `[B, C, H, W]` on
    /// the host; `norm` is the (mean, std) the training inputs are normalized with): MAE's
    /// reconstructions, colorizations. The run writes it to `plots/` every epoch and
    /// `tessera reconstruct` from a saved run; `None` (the default) when the method has none.
    fn visualize(&self, _images: &Tensor, _norm: (f32, f32)) -> Result<Option<ImageGrid>> {
        Ok(None)
    }
    /// The image and text towers of an image–text method (CLIP), for zero-shot evaluation
    /// and text embeddings; `None` (the default) for image-only methods.
    fn dual_encoder(&self) -> Option<&dyn crate::eval::DualEncoder> {
        None
    }
    /// Files the run folder keeps beside the checkpoint, `(name, bytes)`, that rebuild the
    /// method exactly (CLIP's `tokenizer.json`); the builder finds them through
    /// [`BuildContext::run`]. None by default.
    fn run_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(Vec::new())
    }
}
