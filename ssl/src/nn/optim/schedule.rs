//! Learning-rate schedules as pure functions of the step: the factor multiplies each group's
//! base rate (`optimizer.set_lr_factor(schedule.factor(step))` before each step), so a resumed
//! run recomputes the rate from the restored step count.

use std::f64::consts::PI;

/// Linear warmup from 0, then cosine decay to `final_factor` at `total_steps`:
/// `step / warmup` for `step < warmup`, then
/// `final + (1 - final) · ½(1 + cos(π · (step - warmup) / (total - warmup)))`; steps past
/// `total_steps` stay at `final_factor` (SimCLR's and MAE's schedule).
pub fn warmup_cosine(step: u64, total_steps: u64, warmup_steps: u64, final_factor: f64) -> f64 {
    if step < warmup_steps {
        return step as f64 / warmup_steps as f64;
    }
    let span = total_steps.saturating_sub(warmup_steps);
    if span == 0 {
        return if step < total_steps.max(warmup_steps) { 1.0 } else { final_factor };
    }
    let progress = ((step - warmup_steps) as f64 / span as f64).min(1.0);
    final_factor + (1.0 - final_factor) * 0.5 * (1.0 + (PI * progress).cos())
}

/// Step decay: `gamma^k` where `k` counts the milestones `≤ step` (PyTorch's MultiStepLR).
pub fn step_decay(step: u64, milestones: &[u64], gamma: f64) -> f64 {
    gamma.powi(milestones.iter().filter(|&&m| m <= step).count() as i32)
}

/// A schedule chosen at run time (from a config file).
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Constant,
    WarmupCosine { total_steps: u64, warmup_steps: u64, final_factor: f64 },
    Step { milestones: Vec<u64>, gamma: f64 },
}

impl Schedule {
    /// The learning-rate factor at `step` (0-based: the step about to be taken).
    pub fn factor(&self, step: u64) -> f64 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::WarmupCosine { total_steps, warmup_steps, final_factor } => {
                warmup_cosine(step, *total_steps, *warmup_steps, *final_factor)
            }
            Schedule::Step { milestones, gamma } => step_decay(step, milestones, *gamma),
        }
    }
}
