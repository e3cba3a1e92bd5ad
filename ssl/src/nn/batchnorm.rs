//! Batch normalization over `[N, C]`/`[N, C, L]` (BatchNorm1d) or `[N, C, H, W]` (BatchNorm2d)
//! with PyTorch's semantics: training mode normalizes with the batch statistics and folds them
//! into running estimates (momentum 0.1, running_var from the *unbiased* batch variance);
//! eval mode normalizes with the running estimates.
//!
//! [`ghost_batch_norm`] makes training-mode batch norms normalize equal slices of the batch
//! separately, as if each slice had gone through the network on its own (MoCo's shuffled BN
//! on one device), while every other layer takes the whole batch at once.

use super::functional::batch_norm_eval;
use super::module::{join, Entry, Module, Param};
use super::Buffer;
use std::cell::Cell;
use tessera_autograd::{fused, Result, Var};
use tessera_engine::{DType, Tensor};

thread_local! {
    /// Slices of the batch that training-mode batch norms on this thread normalize
    /// separately (1: the whole batch); see [`ghost_batch_norm`].
    static GHOST_GROUPS: Cell<usize> = const { Cell::new(1) };
}

/// Restores the previous ghost-group count when dropped.
pub struct GhostBatchNormGuard {
    previous: usize,
}

impl Drop for GhostBatchNormGuard {
    fn drop(&mut self) {
        GHOST_GROUPS.with(|g| g.set(self.previous));
    }
}

/// While the guard lives, every training-mode [`BatchNorm`] on this thread whose batch
/// divides into `groups` equal slices normalizes each slice with its own statistics and folds
/// them into its running estimates one slice after the other: exactly what running the slices
/// through the network one at a time does to the batch norms (a slice with one value per
/// channel is the same error), while the convolutions and linear layers, which treat samples
/// independently, run once on the whole batch (fewer, larger ops). Eval mode and batches that
/// do not divide are unaffected.
pub fn ghost_batch_norm(groups: usize) -> GhostBatchNormGuard {
    GhostBatchNormGuard { previous: GHOST_GROUPS.with(|g| g.replace(groups.max(1))) }
}

/// Which input ranks a [`BatchNorm`] accepts, as PyTorch's BatchNorm1d / BatchNorm2d do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormDims {
    /// `[N, C]` or `[N, C, L]`.
    D1,
    /// `[N, C, H, W]`.
    D2,
}

/// Batch norm with `weight`/`bias [C]` (when affine) and buffers `running_mean`,
/// `running_var` `[C]` and `num_batches_tracked` (an i64 scalar, as in torchvision's state
/// dicts). Starts in training mode.
pub struct BatchNorm {
    pub weight: Option<Param>,
    pub bias: Option<Param>,
    pub running_mean: Buffer,
    pub running_var: Buffer,
    pub num_batches_tracked: Buffer,
    pub eps: f64,
    pub momentum: f64,
    dims: NormDims,
    training: Cell<bool>,
}

impl BatchNorm {
    /// `nn.BatchNorm1d(c)`: affine, eps 1e-5, momentum 0.1, f32.
    pub fn new_1d(channels: usize) -> Result<BatchNorm> {
        BatchNorm::with_options(channels, NormDims::D1, true, 1e-5, 0.1)
    }

    /// `nn.BatchNorm2d(c)`: affine, eps 1e-5, momentum 0.1, f32.
    pub fn new_2d(channels: usize) -> Result<BatchNorm> {
        BatchNorm::with_options(channels, NormDims::D2, true, 1e-5, 0.1)
    }

    /// Any variant; `affine = false` has no weight or bias (MoCo v3's last projection BN).
    pub fn with_options(channels: usize, dims: NormDims, affine: bool, eps: f64, momentum: f64) -> Result<BatchNorm> {
        if !(0.0..=1.0).contains(&momentum) || eps.is_nan() || eps <= 0.0 {
            return Err(tessera_engine::Error::invalid(
                "BatchNorm",
                format!("needs momentum in [0, 1] and eps > 0, got {momentum} and {eps}"),
            )
            .into());
        }
        let (ones, zeros) = (Tensor::ones(&[channels], DType::F32)?, Tensor::zeros(&[channels], DType::F32)?);
        let (weight, bias) = if affine { (Some(Param::new(ones.clone())?), Some(Param::new(zeros.clone())?)) } else { (None, None) };
        Ok(BatchNorm {
            weight,
            bias,
            running_mean: Buffer::new(zeros),
            running_var: Buffer::new(ones),
            num_batches_tracked: Buffer::new(Tensor::scalar(0i64)),
            eps,
            momentum,
            dims,
            training: Cell::new(true),
        })
    }

    pub fn channels(&self) -> usize {
        self.running_mean.get().numel()
    }

    fn check_input(&self, shape: &[usize]) -> Result<()> {
        let ok_rank = match self.dims {
            NormDims::D1 => shape.len() == 2 || shape.len() == 3,
            NormDims::D2 => shape.len() == 4,
        };
        if !ok_rank || shape[1] != self.channels() {
            let want = match self.dims {
                NormDims::D1 => "[N, C] or [N, C, L]",
                NormDims::D2 => "[N, C, H, W]",
            };
            let msg = format!("expects input {want} with C = {}, got {shape:?}", self.channels());
            return Err(tessera_engine::Error::invalid("BatchNorm", msg).into());
        }
        Ok(())
    }

    /// Folds batch statistics into the running estimates (no graph is recorded: these are
    /// tensors, not vars).
    fn update_running(&self, mean: &Tensor, var: &Tensor, count: usize) -> Result<()> {
        let m = self.momentum;
        let unbiased = var.mul_scalar(count as f64 / (count - 1) as f64)?;
        let rm = self.running_mean.get();
        let rv = self.running_var.get();
        self.running_mean.set(rm.mul_scalar(1.0 - m)?.add(&mean.to_dtype(rm.dtype())?.mul_scalar(m)?)?)?;
        self.running_var.set(rv.mul_scalar(1.0 - m)?.add(&unbiased.to_dtype(rv.dtype())?.mul_scalar(m)?)?)?;
        let tracked = self.num_batches_tracked.get();
        let n = tracked.to_vec::<i64>()?.first().copied().unwrap_or(0);
        self.num_batches_tracked.set(Tensor::scalar(n + 1).to_device(tracked.device())?)
    }
}

impl BatchNorm {
    /// `relu(self.forward(x))`, fused into one op in training mode (conv-BN-ReLU).
    pub fn forward_relu(&self, x: &Var) -> Result<Var> {
        self.forward_act(x, true)
    }

    fn forward_act(&self, x: &Var, relu: bool) -> Result<Var> {
        let shape = x.shape();
        self.check_input(&shape)?;
        let groups = GHOST_GROUPS.with(Cell::get);
        if groups > 1 && self.training.get() && shape[0] >= groups && shape[0].is_multiple_of(groups) {
            let size = shape[0] / groups;
            let _whole = ghost_batch_norm(1);
            let parts = (0..groups).map(|g| self.forward_act(&x.narrow(0, g * size, size)?, relu)).collect::<Result<Vec<_>>>()?;
            return Var::cat(&parts.iter().collect::<Vec<_>>(), 0);
        }
        let (w, b) = (self.weight.as_ref().map(Param::get), self.bias.as_ref().map(Param::get));
        if !self.training.get() {
            let y = batch_norm_eval(x, &self.running_mean.get(), &self.running_var.get(), w.as_ref(), b.as_ref(), self.eps)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        let count = shape.iter().product::<usize>() / shape[1].max(1);
        if count < 2 {
            let msg = format!("expected more than 1 value per channel when training, got input of shape {shape:?}");
            return Err(tessera_engine::Error::invalid("BatchNorm", msg).into());
        }
        let out = if relu { fused::batch_norm_relu } else { fused::batch_norm }(x, w.as_ref(), b.as_ref(), self.eps)?;
        self.update_running(&out.mean, &out.var, out.count)?;
        Ok(out.output)
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.forward_act(x, false)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        if let Some(w) = &self.weight {
            f(&join(prefix, "weight"), Entry::Param(w));
        }
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), Entry::Param(b));
        }
        f(&join(prefix, "running_mean"), Entry::Buffer(&self.running_mean));
        f(&join(prefix, "running_var"), Entry::Buffer(&self.running_var));
        f(&join(prefix, "num_batches_tracked"), Entry::Buffer(&self.num_batches_tracked));
        f(prefix, Entry::Mode(&self.training));
    }
}
