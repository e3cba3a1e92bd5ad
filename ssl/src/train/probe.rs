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
