//! The training loop every method shares: the schedule, the optimizer, the online probe,
//! per-epoch metrics, atomic checkpoints, exact resume, NaN guard and clean interruption.

pub mod checkpoint;
pub mod layer_norms;
mod probe;
pub mod run_dir;

pub use checkpoint::{load_checkpoint, load_model_state, save_checkpoint, CHECKPOINT_FILE, MODEL_EXPORT};
pub use probe::OnlineProbe;
pub use run_dir::{write_atomic, OpenMode, RunDir};

use crate::data::{DataLoader, DataRecipe};
use crate::methods::{Method, StepContext};
use crate::nn::optim::{warmup_cosine, AdamW, Lars, Optim, Optimizer, ParamGroup, Sgd};
use crate::Context;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tessera_engine::{DType, Device};

pub use crate::error::Result;

/// Where training stands: saved in each checkpoint's metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch in progress (or the next one, after an epoch ends).
    pub epoch: usize,
    /// The next batch of that epoch.
    pub batch: usize,
    /// Optimizer steps taken in all.
    pub step: u64,
}

impl TrainState {
    /// Checks a saved position against a schedule of `epochs` epochs of `per_epoch` steps:
    /// the loop only ever saves `step = epoch × per_epoch + batch` with `batch < per_epoch`,
    /// and `batch = 0` once all epochs are done. Anything else is a damaged or foreign
    /// checkpoint, or a run resumed with another batch size or number of images.
    pub fn check_schedule(&self, epochs: usize, per_epoch: usize) -> Result<()> {
        let TrainState { epoch, batch, step } = *self;
        let at = (epoch as u64).checked_mul(per_epoch as u64).and_then(|s| s.checked_add(batch as u64));
        let fits = epoch <= epochs && batch < per_epoch.max(1) && (epoch < epochs || batch == 0);
        if fits && at == Some(step) {
            return Ok(());
        }
        let why = if fits {
            format!(
                "with {per_epoch} steps per epoch, epoch {epoch} batch {batch} is step {}, not {step}: was the batch size or the number of training images changed?",
                at.map_or("beyond 2^64".to_string(), |s| s.to_string())
            )
        } else {
            format!("this run's schedule is {epochs} epochs of {per_epoch} steps")
        };
        Err(format!("the saved position (epoch {epoch}, batch {batch}, step {step}) does not fit: {why}").into())
    }
}

/// [`TrainState::check_schedule`] for the position read from `run`'s checkpoint; the error
/// names that file.
pub fn check_position(run: &RunDir, state: &TrainState, epochs: usize, per_epoch: usize) -> Result<()> {
    state.check_schedule(epochs, per_epoch).with_context(|| run.path(CHECKPOINT_FILE).display().to_string())
}

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Finished,
    MaxSteps,
    Interrupted,
}

/// The schedule and optimizer of a run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub max_steps: Option<usize>,
    pub lr: f64,
    pub weight_decay: f64,
    pub optimizer: String,
    /// AdamW's (β₁, β₂).
    pub betas: [f64; 2],
    pub warmup_epochs: f64,
    /// Mixed precision: the training step's forward runs under `autocast` to this dtype.
    pub autocast: Option<DType>,
    /// The run's seed (batch tasks fork their draws from it).
    pub seed: u64,
    /// Log each parameter's gradient norm, weight norm and update-to-weight ratio on the
    /// first step and every this many steps after it (0: never); see [`layer_norms`].
    pub layer_norms_every: usize,
}

/// One epoch's summary, as written to `metrics.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Set when the run stopped inside this epoch (`--max-steps` or Ctrl-C).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_probe_train_acc: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_probe_acc: Option<f64>,
    /// The method's own measurements ([`StepOutput::metrics`](crate::methods::StepOutput)),
    /// averaged over the epoch's steps, logged as top-level keys.
    #[serde(flatten)]
    pub method_metrics: std::collections::BTreeMap<String, f64>,
}

/// Builds the optimizer a config names over the method's parameters.
pub fn make_optimizer(method: &dyn Method, cfg: &TrainConfig) -> Result<Box<dyn Optim>> {
    let params = method.named_trainable_parameters();
    let e = |e: tessera_autograd::Error| e.to_string();
    Ok(match cfg.optimizer.as_str() {
        "adamw" => Box::new(
            Optimizer::new(
                AdamW { beta1: cfg.betas[0], beta2: cfg.betas[1], ..AdamW::default() },
                ParamGroup::split_decay(params, cfg.lr, cfg.weight_decay),
            )
            .map_err(e)?,
        ),
        "lars" => Box::new(Optimizer::single(Lars::default(), params, cfg.lr, cfg.weight_decay).map_err(e)?),
        "sgd" => Box::new(Optimizer::single(Sgd::momentum(0.9, false), params, cfg.lr, cfg.weight_decay).map_err(e)?),
        other => return Err(format!("unknown optimizer '{other}' (expected adamw, lars or sgd)").into()),
    })
}

/// Hooks the loop calls; the CLI implements them (progress, probe evaluation, logging).
pub trait Observer {
    /// After every step, with the step's loss.
    fn on_step(&mut self, _state: &TrainState, _loss: f64, _lr: f64) {}
    /// At the end of each epoch (or of a partial one, when stopping early); may evaluate the
    /// online probe and fill in the record before it is logged.
    fn on_epoch(&mut self, _record: &mut EpochRecord, _probe: Option<&OnlineProbe>) -> Result<()> {
        Ok(())
    }
}

/// Runs (or continues, from `state`) pretraining. Checkpoints at every epoch end and when
/// stopping early; a non-finite loss stops training and keeps the last good checkpoint.
#[allow(clippy::too_many_arguments)]
pub fn pretrain(
    method: &dyn Method,
    loader: &DataLoader,
    recipe: &DataRecipe,
    opt: &mut dyn Optim,
    mut probe: Option<&mut OnlineProbe>,
    run: &RunDir,
    cfg: &TrainConfig,
    mut state: TrainState,
    interrupt: &AtomicBool,
    observer: &mut dyn Observer,
) -> Result<(TrainState, Stop)> {
    let per_epoch = loader.num_batches();
    if per_epoch == 0 {
        return Err(
            format!("batch size {} is larger than the dataset ({} images)", loader.config().batch_size, loader.dataset().len()).into()
        );
    }
    let total = (cfg.epochs * per_epoch) as u64;
    let warmup = (cfg.warmup_epochs * per_epoch as f64).round() as u64;
    let max_steps = cfg.max_steps.map_or(u64::MAX, |m| m as u64);
    check_position(run, &state, cfg.epochs, per_epoch)?;
    method.set_training(true);
    // Batches follow the model: move the method with `Module::to_device` to train on a GPU.
    let device = method.device();
    while state.epoch < cfg.epochs {
        let start = Instant::now();
        let (mut loss_sum, mut probe_acc_sum, mut batches, mut images) = (0.0, 0.0, 0usize, 0usize);
        let mut metric_sums = std::collections::BTreeMap::<String, f64>::new();
        let mut stop = None;
        while state.batch < per_epoch {
            if state.step >= max_steps {
                stop = Some(Stop::MaxSteps);
            } else if interrupt.load(Ordering::Relaxed) {
                stop = Some(Stop::Interrupted);
            }
            if stop.is_some() {
                break;
            }
            let batch = loader.batch(state.epoch as u64, state.batch)?;
            let batch = recipe.train_batch(batch, cfg.seed).and_then(|b| b.to_device(device))?;
            let lr_factor = warmup_cosine(state.step, total, warmup, 0.0);
            opt.set_lr_factor(lr_factor);
            let out = {
                let _amp = cfg.autocast.map(tessera_autograd::autocast).transpose()?;
                method.training_step(&batch, &StepContext { step: state.step, total_steps: total })?
            };
            let loss = out.loss.value().item()?;
            if !loss.is_finite() {
                return Err(format!(
                    "the loss became {loss} at step {} (epoch {}); training stopped, the last good checkpoint in {} is kept",
                    state.step + 1,
                    state.epoch + 1,
                    run.root.display()
                )
                .into());
            }
            opt.zero_grad();
            out.loss.backward()?;
            let norms = layer_norms::measures_step(state.step, cfg.layer_norms_every)
                .then(|| layer_norms::StepNorms::before_step(opt.named_params()))
                .transpose()?;
            opt.step()?;
            state.step += 1;
            state.batch += 1;
            if let Some(norms) = norms {
                let norms = norms.after_step()?;
                run.append_metric(&layer_norms::layer_norms_record(state.step, &norms))?;
            }
            method.after_step(&StepContext { step: state.step, total_steps: total })?;
            if let Some(p) = probe.as_deref_mut() {
                let features = out.features.to_device(Device::Cpu).and_then(|f| f.to_dtype(DType::F32))?;
                probe_acc_sum += p.step(&features, &batch.labels)?;
            }
            for (name, v) in &out.metrics {
                *metric_sums.entry(name.to_string()).or_default() += v;
            }
            loss_sum += loss;
            batches += 1;
            images += batch.len();
            observer.on_step(&state, loss, opt.lr());
        }
        let seconds = start.elapsed().as_secs_f64();
        let finished_epoch = stop.is_none();
        let mut record = EpochRecord {
            epoch: state.epoch + 1,
            partial: !finished_epoch,
            step: state.step,
            loss: loss_sum / batches.max(1) as f64,
            lr: opt.lr(),
            seconds,
            images_per_second: images as f64 / seconds.max(1e-9),
            online_probe_train_acc: probe.is_some().then(|| probe_acc_sum / batches.max(1) as f64),
            online_probe_acc: None,
            method_metrics: metric_sums.into_iter().map(|(k, v)| (k, v / batches.max(1) as f64)).collect(),
        };
        if finished_epoch {
            state.epoch += 1;
            state.batch = 0;
        }
        if batches > 0 {
            observer.on_epoch(&mut record, probe.as_deref())?;
            method.set_training(true);
            run.append_metric(&serde_json::to_value(&record)?)?;
        }
        save_checkpoint(run, method, opt, probe.as_deref(), &state)?;
        if let Some(stop) = stop {
            return Ok((state, stop));
        }
    }
    Ok((state, Stop::Finished))
}
