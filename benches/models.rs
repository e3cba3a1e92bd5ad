//! Training-step throughput and memory of whole models: ResNet-18 (CIFAR stem, 3×32×32,
//! batch 64, SGD with momentum) and ViT-Tiny (patch 4, 1×28×28, batch 256, AdamW), on the CPU
//! or a GPU. `scripts/torch/models.py` measures the same steps in PyTorch.
//!
//!     RAYON_NUM_THREADS=2 cargo bench --bench models [-- resnet|vit]
//!     DEVICE=cuda cargo bench --bench models
//!     DEVICE=cuda DTYPE=bf16 cargo bench --bench models   # model and data in bf16 (or f16)
//!     DEVICE=cuda DTYPE=bf16-mixed cargo bench --bench models   # f32 model, autocast to bf16
//!
//! The SSL steps (`ssl`, or one of them: `ssl/moco-v2`): one SimCLR and one MoCo v2 training step on the narrow ResNet
//! (1×28×28, batch 64, AdamW, default options), to show what MoCo's key-encoder forward costs
//! and that it keeps no graph: peak tensor memory is that of one forward+backward, not two;
//! MAE and SimMIM steps on ViT-Tiny/4 (batch 256), beside the full-token `vit_tiny` step.
//! `clip`: one CLIP step (ViT-Tiny + 2-layer text transformer, batch 256) as the preset trains.
//! A rotation step shows the cost of RotNet's four rotations of every image (4 × 64 images).
//! `scripts/compare-ssl-steps` runs these cases beside `scripts/torch/ssl_steps.py`.
//!
//! A plain timing harness (each step takes seconds, too long for criterion's sampling): one
//! warm-up step, then the median of `STEPS` (default 3) timed steps, split into forward +
//! backward and the optimizer step. Memory: the peak of tensor storage during the steps
//! (host tensors, or the GPU allocator's live bytes), and the growth of the process's peak
//! resident set over the steps (comparable with PyTorch's figure).

use std::time::Instant;
use tessera::autograd::{autocast, fused, Var};
use tessera::engine::{cuda, peak_cpu_bytes, reset_peak_cpu_bytes, DType, Device, Generator, Tensor};
use tessera::ssl::data::TrainBatch;
use tessera::ssl::methods::{build_default, Method, StepContext};
use tessera::ssl::nn::{AdamW, EncoderSpec, Module, Optim, Optimizer, Pool, ResNet, ResNetConfig, Sgd, Stem, VisionTransformer, VitConfig};

#[path = "support/memory.rs"]
mod memory;
use memory::peak_rss;

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        cuda::synchronize(i).unwrap();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// How the models train: `DTYPE=bf16` or `f16` converts the model and its input (as
/// `model.to(torch.bfloat16)` does in scripts/torch/models.py); `bf16-mixed` / `f16-mixed`
/// keep them f32 and run forward and loss under autocast (as `torch.autocast` there); f32
/// by default. Returns (the model's dtype, the autocast dtype, the label suffix).
fn bench_precision() -> (DType, Option<DType>, &'static str) {
    match std::env::var("DTYPE").as_deref() {
        Ok("bf16") => (DType::BF16, None, " bf16"),
        Ok("f16") => (DType::F16, None, " f16"),
        Ok("bf16-mixed") => (DType::F32, Some(DType::BF16), " bf16-mixed"),
        Ok("f16-mixed") => (DType::F32, Some(DType::F16), " f16-mixed"),
        Ok("f32") | Err(_) => (DType::F32, None, ""),
        Ok(other) => panic!("DTYPE={other}: expected f32, bf16, f16, bf16-mixed or f16-mixed"),
    }
}

fn time_steps(name: &str, device: Device, model: &dyn Module, build_opt: &dyn Fn(&dyn Module) -> Box<dyn Optim>, x: &Tensor, y: &Tensor) {
    let steps: usize = std::env::var("STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let (dtype, amp, suffix) = bench_precision();
    let name = format!("{name}{suffix}");
    model.to_device(device).unwrap();
    model.to_dtype(dtype).unwrap();
    let mut opt = build_opt(model);
    let x = x.to_device(device).unwrap().to_dtype(dtype).unwrap();
    let (mut fwd_bwd, mut total) = (Vec::new(), Vec::new());
    let rss_before = peak_rss(true);
    reset_peak_cpu_bytes();
    if let Device::Cuda(i) = device {
        cuda::reset_peak_memory(i).unwrap();
    }
    for i in 0..=steps {
        sync(device);
        let t = Instant::now();
        opt.zero_grad();
        let loss = {
            let _amp = amp.map(|d| autocast(d).unwrap());
            fused::cross_entropy(&model.forward(&Var::constant(x.clone())).unwrap(), y, 0.0).unwrap()
        };
        loss.backward().unwrap();
        sync(device);
        let fb = t.elapsed().as_secs_f64();
        opt.step().unwrap();
        sync(device);
        if i > 0 {
            fwd_bwd.push(fb);
            total.push(t.elapsed().as_secs_f64());
        }
    }
    if std::env::var_os("PROFILE").is_some() && device != Device::Cpu {
        // One more forward+backward with every kernel timed on its own, per engine op.
        cuda::profile::enable(true);
        let logits = model.forward(&Var::constant(x.clone())).unwrap();
        fused::cross_entropy(&logits, y, 0.0).unwrap().backward().unwrap();
        cuda::profile::enable(false);
        let report = cuda::profile::report();
        let total: f64 = report.iter().map(|r| r.2).sum();
        println!("{name}: kernel time by op in one forward+backward (serialized), {:.1} ms in all:", total * 1e3);
        for (op, calls, secs) in report.iter().take(12) {
            println!("  {op:<28} {calls:>5} launches {:>8.2} ms {:>5.1}%", secs * 1e3, 100.0 * secs / total);
        }
    }
    let peak_tensors = match device {
        Device::Cpu => peak_cpu_bytes(),
        Device::Cuda(i) => cuda::memory_stats(i).unwrap().peak_bytes,
    };
    let rss_growth = peak_rss(false).saturating_sub(rss_before);
    let (fb, step) = (median(fwd_bwd), median(total));
    println!(
        "{name} [{device}]: forward+backward {fb:.4} s, full step {step:.4} s (median of {steps}), {:.1} images/s, peak tensors {:.1} MiB, peak RSS growth {:.1} MiB",
        x.shape()[0] as f64 / step,
        peak_tensors as f64 / (1 << 20) as f64,
        rss_growth as f64 / (1 << 20) as f64
    );
}

/// One warm-up step through the Method API (views -> loss -> backward -> optimizer ->
/// `after_step`), then the median time of `steps` more; the forward runs under autocast when
/// `DTYPE` names a mixed precision (`bf16-mixed`, `f16-mixed`: the model stays f32, as
/// `tessera pretrain --precision` runs it).
fn median_step_time(method: &dyn Method, opt: &mut dyn Optim, tb: &TrainBatch, steps: usize) -> f64 {
    let (_, amp, _) = bench_precision();
    let mut times = Vec::new();
    for i in 0..=steps {
        let t = Instant::now();
        let ctx = StepContext { step: i as u64, total_steps: 1000 };
        opt.zero_grad();
        let out = {
            let _amp = amp.map(|d| autocast(d).unwrap());
            method.training_step(tb, &ctx).unwrap()
        };
        out.loss.backward().unwrap();
        opt.step().unwrap();
        method.after_step(&StepContext { step: ctx.step + 1, ..ctx }).unwrap();
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    median(times)
}

/// Training steps of a registered method through the Method API (views, loss, backward,
/// optimizer, momentum/queue hook), on the CPU.
fn time_method_steps(name: &str, encoder: &str, batch: usize) {
    let steps: usize = std::env::var("STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let spec = EncoderSpec { name: encoder.into(), channels: 1, side: 28, patch_size: 0, pool: Pool::Token };
    let method = build_default(name, &spec, batch, 0).unwrap();
    let mut opt = Optimizer::single(AdamW::default(), method.named_trainable_parameters(), 1e-3, 1e-6).unwrap();
    let mut g = Generator::new(1);
    let recipe = method.data_recipe();
    let views: Vec<Tensor> = recipe.views.iter().map(|_| g.normal(&[batch, 1, 28, 28], 0.0, 1.0, DType::F32).unwrap()).collect();
    let labels = Tensor::zeros(&[batch], DType::I64).unwrap();
    let tb = TrainBatch { views, targets: None, mask: None, tokens: None, labels, indices: (0..batch).collect() };
    // The method's data-side task (masks, pretext targets), drawn once.
    let tb = match &recipe.task {
        Some(task) => task.apply(tb, &Generator::new(2)).unwrap(),
        None => tb,
    };
    reset_peak_cpu_bytes();
    let rss_before = peak_rss(true);
    let step = median_step_time(method.as_ref(), &mut opt, &tb, steps);
    println!(
        "{name} step, {encoder} 1x28x28 batch {batch}{} [cpu]: {step:.4} s (median of {steps}), {:.1} images/s, peak tensors {:.1} MiB, peak RSS growth {:.1} MiB",
        bench_precision().2,
        batch as f64 / step,
        peak_cpu_bytes() as f64 / (1 << 20) as f64,
        peak_rss(false).saturating_sub(rss_before) as f64 / (1 << 20) as f64
    );
}

/// CLIP training steps (ViT-Tiny image tower, the default 2-layer text tower, batch 256, 1×28×28,
/// templated Fashion-MNIST captions through the method's own data recipe), on the CPU.
fn time_clip_steps(batch: usize) {
    use tessera::ssl::methods::{find, BuildContext, OptionsContext};
    let steps: usize = std::env::var("STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let spec = EncoderSpec { name: "vit-tiny".into(), channels: 1, side: 28, patch_size: 0, pool: Pool::Token };
    let train = tessera::ssl::data::fashion_mnist_subset(tessera::ssl::data::Split::Train).unwrap().take(batch);
    let info = find("clip").unwrap();
    let options = (info.resolve)(&Default::default(), &OptionsContext { encoder: "vit-tiny", batch_size: batch }).unwrap();
    let ctx = BuildContext { options: &options, encoder: &spec, seed: 0, batch_size: batch, train: Some(&train), run: None };
    let method = (info.build)(&ctx).unwrap();
    let mut opt = Optimizer::single(AdamW::default(), method.named_trainable_parameters(), 5e-4, 0.2).unwrap();
    let views = vec![Generator::new(1).normal(&[batch, 1, 28, 28], 0.0, 1.0, DType::F32).unwrap()];
    let labels = Tensor::from_slice(train.labels(), &[batch]).unwrap();
    let raw = TrainBatch { views, targets: None, mask: None, tokens: None, labels, indices: (0..batch).collect() };
    let tb = method.data_recipe().task.unwrap().apply(raw, &Generator::new(2)).unwrap();
    reset_peak_cpu_bytes();
    let rss_before = peak_rss(true);
    let step = median_step_time(method.as_ref(), &mut opt, &tb, steps);
    println!(
        "clip step, vit-tiny + 2-layer text 1x28x28 batch {batch}{} [cpu]: {step:.4} s (median of {steps}), {:.1} images/s, peak tensors {:.1} MiB, peak RSS growth {:.1} MiB",
        bench_precision().2,
        batch as f64 / step,
        peak_cpu_bytes() as f64 / (1 << 20) as f64,
        peak_rss(false).saturating_sub(rss_before) as f64 / (1 << 20) as f64
    );
}

fn main() {
    // As the CLI does: a step's buffers are reused instead of page-faulted back in, and the
    // steps run on one of the pool's workers (`on_pool_worker`; PyTorch's main thread is
    // likewise one of its OpenMP team).
    assert!(tessera::engine::cpu::allocator::retain_freed_memory() || !cfg!(target_env = "gnu"), "glibc refused the malloc settings");
    tessera::engine::cpu::on_pool_worker(run_cases);
}

fn run_cases() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |n: &str| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str()));
    let device: Device = std::env::var("DEVICE").unwrap_or_else(|_| "cpu".into()).parse().unwrap();
    if device != Device::Cpu && !cuda::is_available() {
        println!("skipping the {device} model benchmarks: no CUDA driver or GPU was found");
        return;
    }
    // Method steps, filtered as `ssl` (all) or `ssl/<method>`. RotNet's step sees every image
    // in four rotations (4 × 64 images forward + backward); masked image modelling runs at
    // batch 256 on ViT-Tiny/4, to compare with the full-token `vit_tiny` step below (MAE's
    // encoder sees a quarter of the tokens). scripts/torch/ssl_steps.py is the PyTorch side.
    // (filter name, method, encoder, batch): `ssl/b256/simclr` is the default SimCLR model at
    // the batch the speed issue times (2 × 256 images), kept out of the `ssl/simclr` filter.
    let method_cases = [
        ("simclr", "simclr", "resnet-narrow", 64),
        ("b256/simclr", "simclr", "resnet-narrow", 256),
        ("moco-v2", "moco-v2", "resnet-narrow", 64),
        ("rotation", "rotation", "resnet-narrow", 64),
        ("mae", "mae", "vit-tiny", 256),
        ("simmim", "simmim", "vit-tiny", 256),
    ];
    for (case, method, encoder, batch) in method_cases {
        if device == Device::Cpu && wanted(&format!("ssl/{case}")) {
            time_method_steps(method, encoder, batch);
        }
    }
    if device == Device::Cpu && wanted("clip") {
        time_clip_steps(256);
    }
    let mut g = Generator::new(0);
    if wanted("resnet18") {
        let cfg = ResNetConfig::resnet18().with_stem(Stem::Cifar).with_classes(Some(10));
        let net = ResNet::new(&cfg, &mut g).unwrap();
        let opt = |m: &dyn Module| -> Box<dyn Optim> {
            Box::new(Optimizer::single(Sgd::momentum(0.9, false), m.named_parameters(), 0.1, 5e-4).unwrap())
        };
        let x = g.normal(&[64, 3, 32, 32], 0.0, 1.0, DType::F32).unwrap();
        let y = g.randint(&[64], 0, 10).unwrap();
        time_steps("resnet18 cifar-stem 3x32x32 batch 64", device, &net, &opt, &x, &y);
    }
    if wanted("vit_tiny") {
        let cfg = VitConfig { num_classes: Some(10), ..VitConfig::tiny(28, 4).with_in_channels(1) };
        let vit = VisionTransformer::new(&cfg, &mut g).unwrap();
        let opt =
            |m: &dyn Module| -> Box<dyn Optim> { Box::new(Optimizer::single(AdamW::default(), m.named_parameters(), 1e-3, 0.05).unwrap()) };
        let x = g.normal(&[256, 1, 28, 28], 0.0, 1.0, DType::F32).unwrap();
        let y = g.randint(&[256], 0, 10).unwrap();
        time_steps("vit_tiny patch4 1x28x28 batch 256", device, &vit, &opt, &x, &y);
    }
}
