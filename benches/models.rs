//! Training-step throughput of whole models: forward + backward + optimizer step of
//! ResNet-18 (CIFAR stem, 3×32×32, batch 64, SGD with momentum) and ViT-Tiny (patch 4,
//! 1×28×28, batch 256, AdamW). `scripts/torch/models.py` times the same steps in PyTorch.
//!
//!     RAYON_NUM_THREADS=2 cargo bench --bench models [-- resnet|vit]
//!
//! A plain timing harness (each step takes seconds, too long for criterion's sampling):
//! one warm-up step, then the median of `STEPS` (default 3) timed steps.

use std::time::Instant;
use tessera::autograd::{fused, Var};
use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::nn::{AdamW, Module, Optim, Optimizer, ResNet, ResNetConfig, Sgd, Stem, VisionTransformer, VitConfig};

fn time_steps(name: &str, model: &dyn Module, opt: &mut dyn Optim, x: &Tensor, y: &Tensor) {
    let steps: usize = std::env::var("STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut times = Vec::with_capacity(steps);
    for i in 0..=steps {
        let t = Instant::now();
        opt.zero_grad();
        let logits = model.forward(&Var::constant(x.clone())).unwrap();
        fused::cross_entropy(&logits, y, 0.0).unwrap().backward().unwrap();
        opt.step().unwrap();
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!("{name}: {:.3} s/step (median of {steps}), {:.1} images/s", median, x.shape()[0] as f64 / median);
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |n: &str| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str()));
    let mut g = Generator::new(0);
    if wanted("resnet18") {
        let cfg = ResNetConfig::resnet18().with_stem(Stem::Cifar).with_classes(Some(10));
        let net = ResNet::new(&cfg, &mut g).unwrap();
        let mut opt = Optimizer::single(Sgd::momentum(0.9, false), net.named_parameters(), 0.1, 5e-4).unwrap();
        let x = g.normal(&[64, 3, 32, 32], 0.0, 1.0, DType::F32).unwrap();
        let y = g.randint(&[64], 0, 10).unwrap();
        time_steps("resnet18 cifar-stem 3x32x32 batch 64", &net, &mut opt, &x, &y);
    }
    if wanted("vit_tiny") {
        let cfg = VitConfig { num_classes: Some(10), ..VitConfig::tiny(28, 4).with_in_channels(1) };
        let vit = VisionTransformer::new(&cfg, &mut g).unwrap();
        let mut opt = Optimizer::single(AdamW::default(), vit.named_parameters(), 1e-3, 0.05).unwrap();
        let x = g.normal(&[256, 1, 28, 28], 0.0, 1.0, DType::F32).unwrap();
        let y = g.randint(&[256], 0, 10).unwrap();
        time_steps("vit_tiny patch4 1x28x28 batch 256", &vit, &mut opt, &x, &y);
    }
}
