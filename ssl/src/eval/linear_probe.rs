//! Linear probing: a linear classifier on frozen, standardized features, trained with
//! tessera's own AdamW, and its test accuracy.

use crate::nn::optim::{AdamW, Optim, Optimizer};
use tessera_autograd::{fused, Result, Var};
use tessera_engine::{DType, Error, Generator, Tensor};

/// How the probe trains.
#[derive(Debug, Clone, Copy)]
pub struct LinearProbeConfig {
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub weight_decay: f64,
    pub seed: u64,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        LinearProbeConfig { epochs: 30, lr: 0.01, batch_size: 256, weight_decay: 1e-4, seed: 0 }
    }
}

/// Per-feature mean and standard deviation of the training features, applied to both sets
/// (the test set never informs them).
pub fn standardize(train: &Tensor, test: &Tensor) -> tessera_engine::Result<(Tensor, Tensor)> {
    let mean = train.mean(&[0], true)?;
    let std = train.var(&[0], false, true)?.add_scalar(1e-6)?.sqrt()?;
    Ok((train.sub(&mean)?.div(&std)?, test.sub(&mean)?.div(&std)?))
}

/// Trains a linear classifier on `train [N, D]` and returns its accuracy on `test [M, D]`.
pub fn linear_probe_accuracy(
    train: &Tensor,
    train_labels: &[i64],
    test: &Tensor,
    test_labels: &[i64],
    num_classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<f64> {
    if train.rank() != 2
        || test.rank() != 2
        || train.shape()[1] != test.shape()[1]
        || train.shape()[0] != train_labels.len()
        || test.shape()[0] != test_labels.len()
    {
        return Err(Error::shapes_hint(
            "linear_probe",
            train.shape(),
            test.shape(),
            "features must be [N, D] and [M, D] with one label per row",
        )
        .into());
    }
    if train.shape()[0] == 0 || test.shape()[0] == 0 || cfg.batch_size == 0 {
        return Err(Error::invalid("linear_probe", "needs non-empty feature sets and a positive batch size").into());
    }
    let (train, test) = standardize(&train.to_dtype(DType::F32)?, &test.to_dtype(DType::F32)?)?;
    let (n, d) = (train.shape()[0], train.shape()[1]);
    let mut gen = Generator::new(cfg.seed ^ 0x11AE);
    let bound = 1.0 / (d as f64).sqrt();
    let w = Var::param(gen.uniform(&[d, num_classes], -bound, bound, DType::F32)?)?;
    let b = Var::param(Tensor::zeros(&[num_classes], DType::F32)?)?;
    let mut opt =
        Optimizer::single(AdamW::default(), vec![("weight".into(), w.clone()), ("bias".into(), b.clone())], cfg.lr, cfg.weight_decay)?;
    let labels = Tensor::from_slice(train_labels, &[n])?;
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let total = (cfg.epochs * steps_per_epoch) as u64;
    for epoch in 0..cfg.epochs {
        let order = Tensor::from_vec(gen.permutation(n).into_iter().map(|i| i as i64).collect(), &[n])?;
        for s in 0..steps_per_epoch {
            let idx = order.narrow(0, s * cfg.batch_size, cfg.batch_size.min(n - s * cfg.batch_size))?;
            let x = Var::constant(train.index_select(0, &idx)?);
            let y = labels.index_select(0, &idx)?;
            let loss = fused::cross_entropy(&x.matmul(&w)?.add(&b)?, &y, 0.0)?;
            opt.zero_grad();
            loss.backward()?;
            // Cosine decay over the probe's steps.
            let t = (epoch * steps_per_epoch + s) as f64 / total as f64;
            opt.set_lr_factor(0.5 * (1.0 + (std::f64::consts::PI * t).cos()));
            opt.step()?;
        }
    }
    let logits = test.matmul(&w.value())?.add(&b.value())?;
    let pred = logits.argmax(1, false)?.to_vec::<i64>()?;
    Ok(pred.iter().zip(test_labels).filter(|(p, t)| p == t).count() as f64 / test_labels.len() as f64)
}
