//! Per-parameter gradient norm, weight norm and update-to-weight ratio of an optimizer step
//! (issue 17), every `layer_norms_every` steps: the standard check that each layer learns at
//! a sane rate (an update of about 1e-3 of the weight per step; far smaller, the layer
//! is stuck; far larger, it thrashes). Measurement only reads the gradients and the values
//! before and after the step, which the optimizer replaces rather than writes into, so a
//! run trains bitwise the same with it on or off.

use serde_json::{json, Map, Value};
use tessera_autograd::{Result, Var};
use tessera_engine::{Device, Tensor};

/// The `kind` of the `metrics.jsonl` records this module writes.
pub const LAYER_NORMS_KIND: &str = "layer_norms";

/// One parameter tensor's norms at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamNorms {
    /// ‖g‖₂ of the gradient the step used.
    pub grad_norm: f64,
    /// ‖w‖₂ before the step.
    pub weight_norm: f64,
    /// ‖Δw‖₂, the step's change to the tensor (learning rate, momentum and weight decay
    /// included: what the optimizer actually did).
    pub update_norm: f64,
}

impl ParamNorms {
    /// ‖Δw‖ / ‖w‖; `None` when the weights are all zero (a zero-initialized bias before its
    /// first update), where the ratio means nothing.
    pub fn update_ratio(&self) -> Option<f64> {
        (self.weight_norm > 0.0).then(|| self.update_norm / self.weight_norm)
    }
}

/// What [`StepNorms::before_step`] read, kept until the step is taken.
pub struct StepNorms {
    /// Name, parameter, its value before the step, and its gradient's norm.
    params: Vec<(String, Var, Tensor, f64)>,
}

impl StepNorms {
    /// Reads each parameter's gradient norm and keeps a handle on its current value, before
    /// the optimizer steps. Parameters without a gradient are left out, as the optimizer
    /// skips them.
    pub fn before_step(params: Vec<(String, Var)>) -> Result<StepNorms> {
        let mut kept = Vec::with_capacity(params.len());
        for (name, var) in params {
            let Some(grad) = var.grad() else { continue };
            let grad_norm = sum_of_squares(&grad)?.sqrt();
            let before = var.value();
            kept.push((name, var, before, grad_norm));
        }
        Ok(StepNorms { params: kept })
    }

    /// The norms, once the optimizer has stepped, in the optimizer's parameter order.
    pub fn after_step(self) -> Result<Vec<(String, ParamNorms)>> {
        self.params
            .into_iter()
            .map(|(name, var, before, grad_norm)| {
                let (old, new) = (host_values(&before)?, host_values(&var.value())?);
                let update_norm = old.iter().zip(&new).map(|(a, b)| (b - a) * (b - a)).sum::<f64>().sqrt();
                let weight_norm = old.iter().map(|x| x * x).sum::<f64>().sqrt();
                Ok((name, ParamNorms { grad_norm, weight_norm, update_norm }))
            })
            .collect()
    }
}

fn host_values(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_device(Device::Cpu)?.to_vec_f64()?)
}

fn sum_of_squares(t: &Tensor) -> Result<f64> {
    Ok(host_values(t)?.iter().map(|x| x * x).sum())
}

/// Whether the step about to be taken, after `steps_taken` steps, is measured: the first
/// step and every `every`-th after it (never when `every` is 0).
pub fn measures_step(steps_taken: u64, every: usize) -> bool {
    every > 0 && steps_taken.is_multiple_of(every as u64)
}

/// The `metrics.jsonl` record of the step that made the count `step`:
/// `{"kind": "layer_norms", "step": …, "layers": {name: {"grad_norm", "weight_norm",
/// "update_norm", "update_ratio"}}}` (`update_ratio` null where the weights were zero). It
/// has no `epoch` key, so readers of the epoch records pass over it.
pub fn layer_norms_record(step: u64, norms: &[(String, ParamNorms)]) -> Value {
    let layers: Map<String, Value> = norms
        .iter()
        .map(|(name, n)| {
            let entry = json!({
                "grad_norm": n.grad_norm,
                "weight_norm": n.weight_norm,
                "update_norm": n.update_norm,
                "update_ratio": n.update_ratio(),
            });
            (name.clone(), entry)
        })
        .collect();
    json!({"kind": LAYER_NORMS_KIND, "step": step, "layers": layers})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::optim::{Optim, Optimizer, Sgd};
    use crate::nn::{Linear, Module};

    /// A 2 → 1 linear layer with weights [3, 4] and bias 0, input [1, 2], loss = the output:
    /// ∂L/∂w = [1, 2], ∂L/∂b = 1. Plain SGD with lr 0.1 moves w by −0.1·[1, 2].
    #[test]
    fn norms_of_a_tiny_model_match_a_hand_computation() {
        let layer = Linear::from_tensors(
            Tensor::from_vec(vec![3.0f32, 4.0], &[1, 2]).unwrap(),
            Some(Tensor::from_vec(vec![0.0f32], &[1]).unwrap()),
        )
        .unwrap();
        let mut opt = Optimizer::single(Sgd::momentum(0.0, false), layer.named_parameters(), 0.1, 0.0).unwrap();
        let x = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2]).unwrap());
        layer.forward(&x).unwrap().sum_all().unwrap().backward().unwrap();
        let probe = StepNorms::before_step(opt.named_params()).unwrap();
        opt.step().unwrap();
        let norms = probe.after_step().unwrap();
        let (w, b) = (&norms[0], &norms[1]);
        assert_eq!((w.0.as_str(), b.0.as_str()), ("weight", "bias"));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(w.1.grad_norm, 5f64.sqrt()) && close(w.1.weight_norm, 5.0), "{w:?}");
        assert!(close(w.1.update_norm, 0.1 * 5f64.sqrt()) && close(w.1.update_ratio().unwrap(), 0.1 * 5f64.sqrt() / 5.0), "{w:?}");
        assert!(close(b.1.grad_norm, 1.0) && close(b.1.update_norm, 0.1) && b.1.update_ratio().is_none(), "{b:?}");
        let record = layer_norms_record(1, &norms);
        assert_eq!(record["kind"], "layer_norms");
        assert!(record.get("epoch").is_none(), "{record}");
        assert!(record["layers"]["bias"]["update_ratio"].is_null(), "{record}");
        assert!(close(record["layers"]["weight"]["grad_norm"].as_f64().unwrap(), 5f64.sqrt()));
    }

    #[test]
    fn the_first_step_and_every_nth_are_measured() {
        let measured: Vec<u64> = (0..120).filter(|&s| measures_step(s, 50)).collect();
        assert_eq!(measured, [0, 50, 100]);
        assert!(!(0..10).any(|s| measures_step(s, 0)), "0 turns it off");
    }
}
