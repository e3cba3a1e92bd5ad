//! Supervised sanity check of the narrow ResNet: one epoch of Fashion-MNIST with labels
//! must reach 80% test accuracy. Ignored by default (a few minutes on two cores):
//!
//!     cargo test --release --test nn_supervised -- --ignored --nocapture
//!
//! Reads the full dataset from `TESSERA_FASHION_MNIST` or `/work/shared/datasets/fashion-mnist`;
//! without it, falls back to the embedded 10k/2k subset for five epochs (same number of steps).

use std::time::Instant;
use tessera::autograd::{fused, no_grad, Var};
use tessera::engine::{Generator, Tensor};
use tessera::ssl::data::{fashion_mnist_subset, load_fashion_mnist, Dataset, Split};
use tessera::ssl::nn::optim::warmup_cosine;
use tessera::ssl::nn::{AdamW, Linear, Module, Optim, Optimizer, ParamGroup, ResNet, ResNetConfig};

/// Images `idx` as a normalized `[B, 1, 28, 28]` batch and their labels.
fn batch(ds: &Dataset, idx: &[usize]) -> (Tensor, Tensor) {
    let (mean, std) = (0.2860f32, 0.3530f32);
    let mut px = Vec::with_capacity(idx.len() * 784);
    for &i in idx {
        px.extend(ds.pixels(i).iter().map(|&p| (p as f32 / 255.0 - mean) / std));
    }
    let labels: Vec<i64> = idx.iter().map(|&i| ds.label(i)).collect();
    (Tensor::from_vec(px, &[idx.len(), 1, 28, 28]).unwrap(), Tensor::from_vec(labels, &[idx.len()]).unwrap())
}

#[test]
#[ignore = "trains for minutes; run explicitly"]
fn narrow_resnet_learns_fashion_mnist_in_one_epoch() {
    let dir = std::env::var("TESSERA_FASHION_MNIST").unwrap_or_else(|_| "/work/shared/datasets/fashion-mnist".into());
    let (train, test, epochs) = match (load_fashion_mnist(&dir, Split::Train), load_fashion_mnist(&dir, Split::Test)) {
        (Ok(a), Ok(b)) => (a, b, 1),
        _ => (fashion_mnist_subset(Split::Train).unwrap(), fashion_mnist_subset(Split::Test).unwrap(), 5),
    };
    let mut g = Generator::new(0);
    let encoder = ResNet::new(&ResNetConfig::narrow(), &mut g).unwrap();
    let head = Linear::new(encoder.feature_dim(), 10, true, &mut g).unwrap();
    let mut params = encoder.named_parameters();
    params.extend(head.named_parameters().into_iter().map(|(n, v)| (format!("head.{n}"), v)));
    let mut opt = Optimizer::new(AdamW::default(), ParamGroup::split_decay(params, 2e-3, 0.05)).unwrap();
    let bs = 128;
    let steps_per_epoch = train.len() / bs;
    let total = (steps_per_epoch * epochs) as u64;
    let start = Instant::now();
    let mut step = 0u64;
    for epoch in 0..epochs {
        let order = g.permutation(train.len());
        for b in 0..steps_per_epoch {
            let (x, y) = batch(&train, &order[b * bs..(b + 1) * bs]);
            opt.set_lr_factor(warmup_cosine(step, total, total / 20, 0.0));
            opt.zero_grad();
            let logits = head.forward(&encoder.forward(&Var::constant(x)).unwrap()).unwrap();
            let loss = fused::cross_entropy(&logits, &y, 0.0).unwrap();
            loss.backward().unwrap();
            opt.step().unwrap();
            step += 1;
            if step.is_multiple_of(100) {
                eprintln!(
                    "epoch {epoch} step {step}/{total} loss {:.4} ({:.0} s)",
                    loss.value().item().unwrap(),
                    start.elapsed().as_secs_f64()
                );
            }
        }
    }
    let train_s = start.elapsed().as_secs_f64();
    encoder.set_training(false);
    let _guard = no_grad();
    let mut correct = 0usize;
    for chunk in (0..test.len()).collect::<Vec<_>>().chunks(500) {
        let (x, y) = batch(&test, chunk);
        let logits = head.forward(&encoder.forward(&Var::constant(x)).unwrap()).unwrap().value();
        let pred = logits.argmax(-1, false).unwrap().to_vec::<i64>().unwrap();
        correct += pred.iter().zip(y.to_vec::<i64>().unwrap()).filter(|(p, t)| **p == *t).count();
    }
    let acc = correct as f64 / test.len() as f64;
    eprintln!("{} train images × {epochs} epoch(s): {train_s:.0} s training, test accuracy {:.2}%", train.len(), 100.0 * acc);
    assert!(acc >= 0.80, "test accuracy {acc:.4} is below 0.80");
}
