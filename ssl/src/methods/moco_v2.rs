//! MoCo v2 (He et al. 2020, Algorithm 1; Chen et al. 2020, "Improved Baselines"): a query
//! encoder with an MLP head, a key encoder that is a momentum (EMA) copy of it, and a queue
//! of past keys as negatives.
//!
//! ```text
//! q = normalize(g_q(f_q(x₁)))              # queries, with gradients
//! k = normalize(g_k(f_k(x₂)))              # keys, no gradients (shuffled BN, below)
//! loss = InfoNCE([q·k, q·queueᵀ] / τ)      # positive at index 0
//! after the step: θ_k ← m·θ_k + (1 − m)·θ_q; enqueue k, dequeue the oldest
//! ```
//!
//! With `symmetric = true` each view is also a query for the other's key (the average of the
//! two losses, both key sets enqueued): twice the queries per step for one more encoder pass,
//! which learns more per second in short runs ("behaves like twice the epochs").
//!
//! **Shuffling BN on one device.** The paper shuffles the key batch across GPUs so that batch
//! norm cannot leak which key is a query's positive through shared batch statistics. Here the
//! key batch is permuted (from the seed and the step, so resumes repeat it), cut into
//! `shuffle_bn_groups` sub-batches that each get their own BN statistics — as that many
//! GPUs would — and put back in order. The query batch keeps whole-batch statistics, so a
//! query and its key never share the same set of normalizing images. This is the reference
//! CIFAR demo's split BN applied to the key side, with the shuffle that multi-GPU training
//! gets for free.

use std::cell::RefCell;

use super::moco_loss::l2_normalize_rows;
use super::options::{nonzero, parse_options, positive, resolve_options, unit_interval, MethodOptions, OptionsContext};
use super::{
    cosine_momentum, moco_infonce, two_views, Backbone, BuildContext, Family, KeyQueue, Method, MethodInfo, MomentumEncoder, Preset,
    StepContext, StepOutput, TrainBatch,
};
use crate::nn::{ghost_batch_norm, join, Activation, BatchNorm, Entry, Linear, Module, Sequential};
use serde::{Deserialize, Serialize};
use tessera_autograd::{Result, Var};
use tessera_engine::{Generator, Tensor};

/// MoCo v2's registry entry.
pub const INFO: MethodInfo = MethodInfo {
    name: "moco-v2",
    family: Family::Contrastive,
    paper: "Chen, Fan, Girshick, He 2020, Improved Baselines with Momentum Contrastive Learning",
    default_encoder: "resnet-narrow",
    presets: &[
        Preset {
            datasets: &["default", "fashion-mnist", "mnist"],
            file: "moco-v2-fashion-mnist.toml",
            toml: include_str!("../../../configs/moco-v2-fashion-mnist.toml"),
        },
        Preset {
            datasets: &["cifar10", "folder"],
            file: "moco-v2-cifar10.toml",
            toml: include_str!("../../../configs/moco-v2-cifar10.toml"),
        },
    ],
    resolve: |t, c| resolve_options::<MocoV2Options>("moco-v2", t, c),
    build,
};

/// The `[moco-v2]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MocoV2Options {
    /// InfoNCE temperature τ (0.2 in v2).
    pub temperature: f64,
    /// Key-encoder momentum m. The paper's 0.999 suits 800 ImageNet epochs; a few epochs on
    /// 10k images need the key encoder to follow faster: 0.99, as the reference CIFAR demo.
    pub momentum: f64,
    /// Keys in the queue K (4096 for 10k training images; a multiple of the batch size).
    pub queue_size: usize,
    /// Hidden width of the MLP head (the paper uses the encoder's width).
    pub proj_hidden: usize,
    /// Width of the keys and queries.
    pub proj_out: usize,
    /// Sub-batches of the shuffled key batch, each with its own BN statistics (1: none).
    pub shuffle_bn_groups: usize,
    /// Both views serve as queries (the paper: false).
    pub symmetric: bool,
    /// `constant` keeps m for the whole run (the paper); `cosine` raises it from m to 1 along
    /// a half cosine over the run, as MoCo v3 and BYOL do: the keys follow the queries fast
    /// early and settle late, which a run of a few epochs can use.
    pub momentum_schedule: MomentumSchedule,
    /// Batch norm after the head's hidden layer (Linear–BN–ReLU–Linear, SimCLR's and MoCo
    /// v3's head) instead of the paper's Linear–ReLU–Linear.
    pub head_batch_norm: bool,
}

/// How the key encoder's momentum moves over a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MomentumSchedule {
    Constant,
    Cosine,
}

impl MomentumSchedule {
    /// The momentum at `step` of `total` for the base value `m`.
    pub fn at(self, m: f64, step: u64, total: u64) -> f64 {
        match self {
            MomentumSchedule::Constant => m,
            MomentumSchedule::Cosine => cosine_momentum(m, step, total),
        }
    }
}

impl Default for MocoV2Options {
    fn default() -> Self {
        MocoV2Options {
            temperature: 0.2,
            momentum: 0.99,
            queue_size: 4096,
            proj_hidden: 512,
            proj_out: 128,
            shuffle_bn_groups: 4,
            symmetric: false,
            momentum_schedule: MomentumSchedule::Constant,
            head_batch_norm: false,
        }
    }
}

impl MethodOptions for MocoV2Options {
    fn validate(&self, ctx: &OptionsContext) -> std::result::Result<(), String> {
        positive("temperature", self.temperature)?;
        unit_interval("momentum", self.momentum)?;
        nonzero("queue_size", self.queue_size)?;
        nonzero("proj_hidden", self.proj_hidden)?;
        nonzero("proj_out", self.proj_out)?;
        nonzero("shuffle_bn_groups", self.shuffle_bn_groups)?;
        let keys_per_step = if self.symmetric { 2 * ctx.batch_size } else { ctx.batch_size };
        if !self.queue_size.is_multiple_of(keys_per_step.max(1)) {
            let what = if self.symmetric {
                format!("twice the batch size ({keys_per_step} keys per step, symmetric)")
            } else {
                format!("the batch size {}", ctx.batch_size)
            };
            return Err(format!("queue_size {} is not a multiple of {what}", self.queue_size));
        }
        if !ctx.batch_size.is_multiple_of(self.shuffle_bn_groups) {
            return Err(format!("shuffle_bn_groups {} does not divide the batch size {}", self.shuffle_bn_groups, ctx.batch_size));
        }
        Ok(())
    }
}

/// MoCo v2's head: Linear–ReLU–Linear (no batch norm, as in the reference code), or with
/// `batch_norm` Linear (no bias)–BN–ReLU–Linear.
fn mlp_head(dim: usize, hidden: usize, out: usize, batch_norm: bool, gen: &mut Generator) -> Result<Sequential> {
    let head = if batch_norm {
        Sequential::new().push(Linear::new(dim, hidden, false, gen)?).push(BatchNorm::new_1d(hidden)?)
    } else {
        Sequential::new().push(Linear::new(dim, hidden, true, gen)?)
    };
    Ok(head.push(Activation::Relu).push(Linear::new(hidden, out, true, gen)?))
}

fn build(ctx: &BuildContext) -> std::result::Result<Box<dyn Method>, String> {
    let o: MocoV2Options = parse_options("moco-v2", ctx.options)?;
    Ok(Box::new(MocoV2::new(ctx, &o).map_err(|e| e.to_string())?))
}

/// Stream of the key-batch shuffles under the run's seed.
const SHUFFLE_STREAM: u64 = 0x5348_5546;

/// The MoCo v2 model.
pub struct MocoV2 {
    backbone: Backbone,
    projector: Sequential,
    momentum_encoder: MomentumEncoder,
    queue: KeyQueue,
    options: MocoV2Options,
    seed: u64,
    /// This step's keys, enqueued after the optimizer step.
    pending_keys: RefCell<Option<Tensor>>,
}

impl MocoV2 {
    /// Builds the query encoder and head, their momentum copy and the queue from the seed.
    pub fn new(ctx: &BuildContext, o: &MocoV2Options) -> std::result::Result<MocoV2, String> {
        let e = |e: tessera_autograd::Error| e.to_string();
        let mut gen = Generator::new(ctx.seed);
        let backbone = Backbone::build(ctx.encoder, &mut gen)?;
        let dim = backbone.dim;
        let projector = mlp_head(dim, o.proj_hidden, o.proj_out, o.head_batch_norm, &mut gen).map_err(e)?;
        let queue = KeyQueue::new(o.queue_size, o.proj_out, &mut gen.fork(1)).map_err(e)?;
        // The key networks start as copies: build the same architecture, then copy the weights.
        let mut scratch = gen.fork(2);
        let (key_encoder, _) = ctx.encoder.build(&mut scratch)?;
        let key_head = mlp_head(dim, o.proj_hidden, o.proj_out, o.head_batch_norm, &mut scratch).map_err(e)?;
        let momentum_encoder = MomentumEncoder::new(key_encoder, Box::new(key_head), (backbone.net.as_ref(), &projector)).map_err(e)?;
        Ok(MocoV2 { backbone, projector, momentum_encoder, queue, options: o.clone(), seed: ctx.seed, pending_keys: RefCell::new(None) })
    }

    /// The queue of negatives.
    pub fn queue(&self) -> &KeyQueue {
        &self.queue
    }

    /// Unit-length keys of `x [B, C, H, W]` through the momentum encoder, with shuffled BN;
    /// `draw` numbers the shuffle (two per step).
    fn keys(&self, x: &Tensor, draw: u64) -> Result<Tensor> {
        let (n, groups) = (x.shape()[0], self.options.shuffle_bn_groups.max(1));
        if groups == 1 || !n.is_multiple_of(groups) {
            return Ok(l2_normalize_rows(&self.momentum_encoder.forward(x)?)?);
        }
        let perm = Generator::new(self.seed).fork(SHUFFLE_STREAM).fork(draw).permutation(n);
        let mut inverse = vec![0i64; n];
        for (pos, &i) in perm.iter().enumerate() {
            inverse[i] = pos as i64;
        }
        let dev = x.device();
        let perm = Tensor::from_vec(perm.iter().map(|&i| i as i64).collect::<Vec<_>>(), &[n])?.to_device(dev)?;
        let shuffled = x.index_select(0, &perm)?;
        // Each group of the shuffled batch gets its own BN statistics; the rest of the
        // encoder runs once on the whole batch.
        let _ghost = ghost_batch_norm(groups);
        let keys = self.momentum_encoder.forward(&shuffled)?.index_select(0, &Tensor::from_vec(inverse, &[n])?.to_device(dev)?)?;
        Ok(l2_normalize_rows(&keys)?)
    }
}

impl Method for MocoV2 {
    fn name(&self) -> &'static str {
        "moco-v2"
    }

    fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// The projection head's output g_q(h) (before the keys' normalization).
    fn projector_embedding(&self, features: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.projector.forward(&Var::constant(features.clone()))?.value()))
    }

    fn training_step(&self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepOutput> {
        let (x1, x2) = two_views(batch)?;
        let (queue, tau) = (self.queue.keys(), self.options.temperature);
        if !self.options.symmetric {
            let h = self.backbone.net.forward(&Var::constant(x1.clone()))?;
            let q = self.projector.forward(&h)?;
            let k = self.keys(x2, 2 * ctx.step)?;
            let loss = moco_infonce(&q, &k, &queue, tau)?;
            let agreement = key_query_agreement(&q, &k)?;
            *self.pending_keys.borrow_mut() = Some(k);
            return self.with_queue_metrics(StepOutput::new(loss, h.value()), ctx, n_keys(x1), agreement);
        }
        // Both views as queries, in one encoder pass of 2B images.
        let n = x1.shape()[0];
        let h = self.backbone.net.forward(&Var::constant(Tensor::cat(&[x1, x2], 0)?))?;
        let q = self.projector.forward(&h)?;
        let (k1, k2) = (self.keys(x1, 2 * ctx.step + 1)?, self.keys(x2, 2 * ctx.step)?);
        let loss = moco_infonce(&q.narrow(0, 0, n)?, &k2, &queue, tau)?.add(&moco_infonce(&q.narrow(0, n, n)?, &k1, &queue, tau)?)?;
        let agreement = (key_query_agreement(&q.narrow(0, 0, n)?, &k2)? + key_query_agreement(&q.narrow(0, n, n)?, &k1)?) / 2.0;
        *self.pending_keys.borrow_mut() = Some(Tensor::cat(&[&k2, &k1], 0)?);
        self.with_queue_metrics(StepOutput::new(loss.mul_scalar(0.5)?, h.value().narrow(0, 0, n)?), ctx, 2 * n, agreement)
    }

    /// The momentum update, then this step's keys replace the oldest in the queue.
    fn after_step(&self, ctx: &StepContext) -> Result<()> {
        let m = self.options.momentum_schedule.at(self.options.momentum, ctx.step, ctx.total_steps);
        self.momentum_encoder.update((self.backbone.net.as_ref(), &self.projector), m)?;
        if let Some(k) = self.pending_keys.borrow_mut().take() {
            self.queue.enqueue(&k)?;
        }
        Ok(())
    }
}

impl MocoV2 {
    /// The queue's diagnostics: `key_query_cos` (mean cosine of each query with its own key,
    /// the positive logit · τ), `queue_age_steps` and `queue_filled` ([`KeyQueue::age`]).
    fn with_queue_metrics(&self, out: StepOutput, ctx: &StepContext, keys_per_step: usize, agreement: f64) -> Result<StepOutput> {
        let (age, filled) = self.queue.age(ctx.step, keys_per_step);
        Ok(out.with_metric("key_query_cos", agreement).with_metric("queue_age_steps", age).with_metric("queue_filled", filled))
    }
}

/// Images in a view batch.
fn n_keys(x: &Tensor) -> usize {
    x.shape().first().copied().unwrap_or(0)
}

/// Mean cosine similarity of query row i with key row i (keys are unit-length already, see
/// [`MocoV2::keys`]), without a graph.
fn key_query_agreement(q: &Var, k: &Tensor) -> Result<f64> {
    let q = l2_normalize_rows(&q.value())?;
    let n = q.shape()[0].max(1) as f64;
    Ok(q.mul(k)?.sum_all()?.item()? / n)
}

impl Module for MocoV2 {
    /// The representation f_q(x).
    fn forward(&self, x: &Var) -> Result<Var> {
        self.backbone.net.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(prefix, f);
        self.projector.visit(&join(prefix, "projector"), f);
        self.momentum_encoder.visit(&join(prefix, "momentum"), f);
        self.queue.visit(prefix, f);
    }
}
