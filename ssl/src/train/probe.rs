//! The online linear probe (as solo-learn trains it): a linear classifier on detached
//! encoder features, updated every step at little cost, so accuracy is visible per epoch.

use crate::nn::optim::{AdamW, Optim, Optimizer};
use tessera_autograd::{fused, Result, Var};
use tessera_engine::{DType, Generator, Tensor};

pub struct OnlineProbe {
    weight: Var,
    bias: Var,
    opt: Optimizer<AdamW>,
}

impl OnlineProbe {
    pub fn new(dim: usize, classes: usize, lr: f64, gen: &mut Generator) -> Result<OnlineProbe> {
        let bound = 1.0 / (dim as f64).sqrt();
        let weight = Var::param(gen.uniform(&[dim, classes], -bound, bound, DType::F32)?)?;
        let bias = Var::param(Tensor::zeros(&[classes], DType::F32)?)?;
        let opt = Optimizer::single(AdamW::default(), vec![("weight".into(), weight.clone()), ("bias".into(), bias.clone())], lr, 0.0)?;
        Ok(OnlineProbe { weight, bias, opt })
    }

    /// One step on detached features `[B, D]` with labels `[B]`; returns the batch accuracy.
    pub fn step(&mut self, features: &Tensor, labels: &Tensor) -> Result<f64> {
        let logits = Var::constant(features.clone()).matmul(&self.weight)?.add(&self.bias)?;
        let acc = accuracy(&logits.value(), labels)?;
        let loss = fused::cross_entropy(&logits, labels, 0.0)?;
        self.opt.zero_grad();
        loss.backward()?;
        self.opt.step()?;
        Ok(acc)
    }

    /// The probe's weights and optimizer state, for the run's checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("weight".to_string(), self.weight.value()), ("bias".to_string(), self.bias.value())];
        out.extend(self.opt.state_tensors().into_iter().map(|(n, t)| (format!("optimizer.{n}"), t)));
        out
    }

    /// Restores what [`OnlineProbe::state_tensors`] gave; an error names what does not fit.
    pub fn load_state_tensors(&mut self, tensors: &[(String, Tensor)]) -> crate::Result<()> {
        let get = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());
        let (Some(w), Some(b)) = (get("weight"), get("bias")) else { return Err("the online probe's weight or bias is missing".into()) };
        if w.shape() != self.weight.value().shape() || b.shape() != self.bias.value().shape() {
            return Err(format!("the online probe's weight is {:?}, this run's is {:?}", w.shape(), self.weight.value().shape()).into());
        }
        let opt = crate::nn::checkpoint::with_prefix_stripped(tensors, "optimizer.");
        self.opt.load_state_tensors(&opt).map_err(|r| format!("the online probe's optimizer state does not fit: {r}"))?;
        self.weight.set_value(w.to_dtype(DType::F32)?)?;
        self.bias.set_value(b.to_dtype(DType::F32)?).map_err(crate::Error::msg)
    }

    /// Accuracy on held-out features.
    pub fn evaluate(&self, features: &Tensor, labels: &Tensor) -> Result<f64> {
        let logits = features.matmul(&self.weight.value())?.add(&self.bias.value())?;
        accuracy(&logits, labels)
    }
}

fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let hits = logits.argmax(1, false)?.eq(labels)?.to_dtype(DType::F64)?.mean_all()?.item()?;
    Ok(hits)
}
