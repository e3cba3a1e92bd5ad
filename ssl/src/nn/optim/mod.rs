//! Optimizers, learning-rate schedules, gradient clipping and EMA updates.
//!
//! Every optimizer is an [`Optimizer`] driven by an [`UpdateRule`] ([`Sgd`], [`AdamW`],
//! [`Lars`]): the optimizer owns the parameter groups, the per-parameter state and the step
//! counts, and hands each rule one parameter at a time: as contiguous host slices for CPU
//! parameters (a rule is a single loop over its elements), as tensors for GPU parameters (the
//! same formulas as engine ops, which run on the GPU). State exports to named tensors for
//! checkpoints ([`Optim::state_tensors`]) and imports back bitwise.

mod adamw;
mod clip;
mod ema;
mod lars;
mod schedule;
mod sgd;

pub use adamw::AdamW;
pub use clip::{clip_grad_norm, grad_norm};
pub use ema::{copy_state, ema_update, ema_update_modules};
pub use lars::Lars;
pub use schedule::{step_decay, warmup_cosine, Schedule};
pub use sgd::Sgd;

use super::error::MismatchReport;
use rayon::prelude::*;
use std::collections::HashMap;
use tessera_autograd::{Result, Var};
use tessera_engine::{with_float, DType, FloatElem, Tensor};

/// Parameters that share a learning rate and weight decay.
#[derive(Clone)]
pub struct ParamGroup {
    /// Parameters with unique names (the names key the exported state).
    pub params: Vec<(String, Var)>,
    /// Base learning rate; the current one is `lr · factor` (see [`Optim::set_lr_factor`]).
    pub lr: f64,
    pub weight_decay: f64,
}

impl ParamGroup {
    pub fn new(params: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> ParamGroup {
        ParamGroup { params, lr, weight_decay }
    }

    /// Two groups, the usual recipe for AdamW on transformers: weights (rank ≥ 2) with
    /// `weight_decay`, biases and norm parameters (rank ≤ 1) without.
    pub fn split_decay(params: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> Vec<ParamGroup> {
        let (decay, no_decay): (Vec<_>, Vec<_>) = params.into_iter().partition(|(_, v)| v.shape().len() >= 2);
        vec![ParamGroup::new(decay, lr, weight_decay), ParamGroup::new(no_decay, lr, 0.0)]
    }
}

/// What a rule knows about the parameter it updates.
#[derive(Debug, Clone, Copy)]
pub struct Hyper {
    /// Current learning rate of the parameter's group.
    pub lr: f64,
    pub weight_decay: f64,
    /// How many updates this parameter has had, this one included (1 on the first).
    pub step: u64,
    /// Whether the parameter is a vector or scalar (biases, norm weights): LARS excludes
    /// those from weight decay and trust-ratio adaptation.
    pub is_vector: bool,
}

/// One optimization algorithm, applied to one parameter at a time.
pub trait UpdateRule: Sync {
    /// Names of the per-parameter state buffers (each shaped like the parameter).
    fn state_names(&self) -> &'static [&'static str];
    /// Updates `param` in place from `grad`; `state` holds one buffer per state name,
    /// zero-initialized before the first step.
    fn update<T: FloatElem>(&self, h: &Hyper, param: &mut [T], grad: &[T], state: &mut [&mut [T]]);
    /// Whether [`update`](Self::update) treats each element on its own (SGD, AdamW; not
    /// LARS, whose trust ratio reads whole norms): then a large parameter's update runs in
    /// pieces across the pool, with the same result.
    fn elementwise(&self) -> bool {
        false
    }
    /// The same update built from engine ops, so it runs wherever the tensors live (a GPU
    /// parameter never leaves the GPU). Returns the new parameter and the new state buffers
    /// (one per state name). It performs [`update`](Self::update)'s operations in the same
    /// order with the same per-step constants, so elementwise results match it bitwise;
    /// only norms (reductions) may differ in their last bits.
    fn update_tensors(&self, h: &Hyper, param: &Tensor, grad: &Tensor, state: &[Tensor]) -> tessera_engine::Result<(Tensor, Vec<Tensor>)>;
}

/// The object-safe face of every optimizer, for code that picks one at run time.
pub trait Optim {
    /// Applies one update to every parameter that has a gradient (others are skipped, as
    /// in PyTorch), then counts a step.
    fn step(&mut self) -> Result<()>;
    /// Forgets every parameter's gradient.
    fn zero_grad(&self);
    /// Sets every group's learning rate to its base rate times `factor` (a schedule's value).
    fn set_lr_factor(&mut self, factor: f64);
    /// The current learning rate of the first group.
    fn lr(&self) -> f64;
    /// Number of `step` calls so far (restored by `load_state_tensors`).
    fn step_count(&self) -> u64;
    /// All parameters, in group order.
    fn params(&self) -> Vec<Var>;
    /// All parameters with the names they were given, in group order: what per-layer
    /// diagnostics report on (exactly the tensors this optimizer updates).
    fn named_params(&self) -> Vec<(String, Var)>;
    /// The state as named tensors: `step` (i64 scalar), and per parameter that has state
    /// `state.{name}.step` (i64 scalar) and `state.{name}.{buffer}` (like the parameter).
    fn state_tensors(&self) -> Vec<(String, Tensor)>;
    /// Restores what `state_tensors` exported. Parameters absent from `tensors` start fresh.
    /// On a mismatch nothing changes and the report lists the offending names.
    fn load_state_tensors(&mut self, tensors: &[(String, Tensor)]) -> std::result::Result<(), MismatchReport>;
}

struct ParamState {
    step: u64,
    buffers: Vec<Tensor>,
}

struct Group {
    params: Vec<(String, Var)>,
    base_lr: f64,
    lr: f64,
    weight_decay: f64,
    state: Vec<Option<ParamState>>,
}

/// Parameter groups, their state and an [`UpdateRule`]. `Optimizer<Sgd>`, `Optimizer<AdamW>`
/// and `Optimizer<Lars>` are the three optimizers.
pub struct Optimizer<R: UpdateRule> {
    rule: R,
    groups: Vec<Group>,
    step: u64,
}

impl<R: UpdateRule> Optimizer<R> {
    /// An optimizer over `groups`. Parameter names must be unique, and the hyperparameters
    /// finite and non-negative.
    pub fn new(rule: R, groups: Vec<ParamGroup>) -> Result<Optimizer<R>> {
        let mut seen = std::collections::HashSet::new();
        for g in &groups {
            if !(g.lr.is_finite() && g.lr >= 0.0 && g.weight_decay.is_finite() && g.weight_decay >= 0.0) {
                let msg = format!("needs a finite, non-negative lr and weight decay, got {} and {}", g.lr, g.weight_decay);
                return Err(tessera_engine::Error::invalid("Optimizer", msg).into());
            }
            for (name, v) in &g.params {
                if !seen.insert(name.clone()) {
                    return Err(tessera_engine::Error::invalid("Optimizer", format!("parameter name {name:?} appears twice")).into());
                }
                if !v.requires_grad() || !v.is_leaf() {
                    return Err(tessera_engine::Error::invalid(
                        "Optimizer",
                        format!("{name:?} is not a parameter (a leaf that requires grad)"),
                    )
                    .into());
                }
            }
        }
        let groups = groups
            .into_iter()
            .map(|g| Group {
                state: g.params.iter().map(|_| None).collect(),
                params: g.params,
                base_lr: g.lr,
                lr: g.lr,
                weight_decay: g.weight_decay,
            })
            .collect();
        Ok(Optimizer { rule, groups, step: 0 })
    }

    /// One group holding `params` named as a module names them.
    pub fn single(rule: R, params: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> Result<Optimizer<R>> {
        Optimizer::new(rule, vec![ParamGroup::new(params, lr, weight_decay)])
    }

    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// Current learning rate of each group.
    pub fn group_lrs(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.lr).collect()
    }

    /// Sets group `i`'s base learning rate (the current one becomes base · the last factor).
    pub fn set_group_lr(&mut self, i: usize, lr: f64) {
        if let Some(g) = self.groups.get_mut(i) {
            let factor = if g.base_lr != 0.0 { g.lr / g.base_lr } else { 1.0 };
            g.base_lr = lr;
            g.lr = lr * factor;
        }
    }
}

/// Runs the rule on one parameter, where it lives: engine ops on a GPU, or one host read of
/// value, gradient and state and one write back on the CPU.
fn update_one<R: UpdateRule>(rule: &R, var: &Var, grad: &Tensor, h: Hyper, slot: &mut Option<ParamState>) -> Result<()> {
    let value = var.value();
    if grad.shape() != value.shape() || grad.dtype() != value.dtype() {
        return Err(tessera_engine::Error::shapes_hint(
            "Optimizer::step",
            value.shape(),
            grad.shape(),
            "the gradient must match its parameter",
        )
        .into());
    }
    let state = slot.get_or_insert_with(|| ParamState { step: 0, buffers: Vec::new() });
    if state.buffers.len() != rule.state_names().len() {
        state.buffers = rule.state_names().iter().map(|_| value.zeros_like()).collect::<tessera_engine::Result<_>>()?;
    }
    state.step += 1;
    let h = Hyper { step: state.step, ..h };
    let device = value.device();
    let dtype = value.dtype();
    if value.is_cuda() || dtype.is_half() {
        // GPU parameters take the tensor path: every op is a kernel on the parameter's
        // device, so nothing crosses the bus. Buffers restored from a checkpoint (or a grad
        // left on another device) join the parameter first.
        let grad = grad.to_device(device)?;
        for b in state.buffers.iter_mut().filter(|b| b.device() != device) {
            *b = b.to_device(device)?;
        }
        if dtype.is_half() {
            // bf16 / f16 parameters (either device) are updated in f32 and rounded once, as
            // PyTorch's fused AdamW does: op by op in f16, Adam's eps (1e-8) and small
            // second moments round to zero and the step divides by zero.
            let wide = |t: &Tensor| t.to_dtype(DType::F32);
            let buffers: Vec<Tensor> = state.buffers.iter().map(wide).collect::<tessera_engine::Result<_>>()?;
            let (updated, buffers) = rule.update_tensors(&h, &wide(&value)?, &wide(&grad)?, &buffers)?;
            state.buffers = buffers.iter().map(|b| b.to_dtype(dtype)).collect::<tessera_engine::Result<_>>()?;
            return var.set_value(updated.to_dtype(dtype)?);
        }
        let (updated, buffers) = rule.update_tensors(&h, &value, &grad, &state.buffers)?;
        debug_assert_eq!(buffers.len(), state.buffers.len(), "a rule returns one buffer per state name");
        state.buffers = buffers;
        return var.set_value(updated);
    }
    // CPU parameters keep the slice path: one loop per rule, the reference the PyTorch
    // fixtures check.
    let updated = with_float!(value.dtype(), "Optimizer::step", |T| {
        let mut p = value.to_vec::<T>()?;
        let g = grad.to_device(device)?;
        let g = g.values::<T>("Optimizer::step")?;
        let mut bufs: Vec<Vec<T>> = state.buffers.iter().map(|b| b.to_vec::<T>()).collect::<tessera_engine::Result<_>>()?;
        update_slices(rule, &h, &mut p, &g, &mut bufs);
        for (slot, b) in state.buffers.iter_mut().zip(bufs) {
            *slot = Tensor::from_vec(b, value.shape())?;
        }
        Tensor::from_vec(p, value.shape())
    })?;
    var.set_value(updated)
}

/// Elements one task of [`update_slices`] updates.
const UPDATE_CHUNK: usize = 1 << 14;

/// `rule.update` on a parameter's values, gradient and state buffers: in pieces of
/// [`UPDATE_CHUNK`] elements across the pool when the rule is elementwise and the parameter
/// large (a ViT-Tiny's AdamW step ran on one core, 2% of an MAE step), else in one call.
fn update_slices<R: UpdateRule, T: FloatElem>(rule: &R, h: &Hyper, param: &mut [T], grad: &[T], state: &mut [Vec<T>]) {
    if !rule.elementwise() || param.len() <= UPDATE_CHUNK {
        let mut state: Vec<&mut [T]> = state.iter_mut().map(|b| &mut b[..]).collect();
        return rule.update(h, param, grad, &mut state);
    }
    // (parameter, gradient, state buffers) of each piece.
    let mut pieces: Vec<_> =
        param.chunks_mut(UPDATE_CHUNK).zip(grad.chunks(UPDATE_CHUNK)).map(|(p, g)| (p, g, Vec::<&mut [T]>::new())).collect();
    for buffer in state.iter_mut() {
        for (piece, b) in pieces.iter_mut().zip(buffer.chunks_mut(UPDATE_CHUNK)) {
            piece.2.push(b);
        }
    }
    pieces.into_par_iter().for_each(|(p, g, mut s)| rule.update(h, p, g, &mut s));
}

impl<R: UpdateRule> Optim for Optimizer<R> {
    fn step(&mut self) -> Result<()> {
        for g in &mut self.groups {
            for ((_, var), slot) in g.params.iter().zip(g.state.iter_mut()) {
                let Some(grad) = var.grad() else { continue };
                let h = Hyper { lr: g.lr, weight_decay: g.weight_decay, step: 0, is_vector: var.shape().len() <= 1 };
                update_one(&self.rule, var, &grad, h, slot)?;
            }
        }
        self.step += 1;
        Ok(())
    }

    fn zero_grad(&self) {
        self.groups.iter().flat_map(|g| &g.params).for_each(|(_, v)| v.zero_grad());
    }

    fn set_lr_factor(&mut self, factor: f64) {
        for g in &mut self.groups {
            g.lr = g.base_lr * factor;
        }
    }

    fn lr(&self) -> f64 {
        self.groups.first().map_or(0.0, |g| g.lr)
    }

    fn step_count(&self) -> u64 {
        self.step
    }

    fn params(&self) -> Vec<Var> {
        self.groups.iter().flat_map(|g| g.params.iter().map(|(_, v)| v.clone())).collect()
    }

    fn named_params(&self) -> Vec<(String, Var)> {
        self.groups.iter().flat_map(|g| g.params.iter().cloned()).collect()
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::scalar(self.step as i64))];
        for g in &self.groups {
            for ((name, _), st) in g.params.iter().zip(&g.state) {
                let Some(st) = st else { continue };
                out.push((format!("state.{name}.step"), Tensor::scalar(st.step as i64)));
                for (b, t) in self.rule.state_names().iter().zip(&st.buffers) {
                    out.push((format!("state.{name}.{b}"), t.clone()));
                }
            }
        }
        out
    }

    fn load_state_tensors(&mut self, tensors: &[(String, Tensor)]) -> std::result::Result<(), MismatchReport> {
        let mut report = MismatchReport::default();
        let mut by_name: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let step = take_i64(&mut by_name, "step", &mut report);
        let names = self.rule.state_names();
        let mut new_state: Vec<Vec<Option<ParamState>>> = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let mut states = Vec::with_capacity(g.params.len());
            for (name, var) in &g.params {
                let prefix = format!("state.{name}.");
                let present = by_name.keys().any(|k| k.starts_with(&prefix));
                if !present {
                    states.push(None);
                    continue;
                }
                let value = var.value();
                let pstep = take_i64(&mut by_name, &format!("{prefix}step"), &mut report);
                let mut buffers = Vec::with_capacity(names.len());
                for b in names {
                    let key = format!("{prefix}{b}");
                    match by_name.remove(key.as_str()) {
                        None => report.missing.push((key, value.shape().to_vec())),
                        Some(t) if t.shape() != value.shape() || t.dtype() != value.dtype() => {
                            report.misshapen.push((key, describe(value.dtype(), value.shape()), describe(t.dtype(), t.shape())))
                        }
                        // Checkpoints load on the host; state joins the parameter's
                        // device now so `state_tensors` reports where it will live. Should
                        // the copy fail, the first step retries it and reports the error.
                        Some(t) => buffers.push(t.to_device(value.device()).unwrap_or_else(|_| t.clone())),
                    }
                }
                states.push(pstep.map(|s| ParamState { step: s as u64, buffers }));
            }
            new_state.push(states);
        }
        report.unexpected = by_name.iter().map(|(n, t)| (n.to_string(), t.shape().to_vec())).collect();
        report.unexpected.sort();
        if !report.is_empty() {
            return Err(report);
        }
        for (g, s) in self.groups.iter_mut().zip(new_state) {
            g.state = s;
        }
        self.step = step.unwrap_or(0) as u64;
        Ok(())
    }
}

/// `"f32[64, 3]"`: how reports show a tensor's kind.
pub(crate) fn describe(dtype: DType, shape: &[usize]) -> String {
    format!("{}{shape:?}", dtype.name())
}

/// Removes and reads a non-negative i64 scalar, reporting it when absent or malformed.
fn take_i64(map: &mut HashMap<&str, &Tensor>, key: &str, report: &mut MismatchReport) -> Option<i64> {
    match map.remove(key) {
        None => {
            report.missing.push((key.to_string(), vec![]));
            None
        }
        Some(t) => match t.to_vec::<i64>() {
            Ok(v) if t.rank() == 0 && v[0] >= 0 => Some(v[0]),
            _ => {
                report.misshapen.push((key.to_string(), describe(DType::I64, &[]), describe(t.dtype(), t.shape())));
                None
            }
        },
    }
}
