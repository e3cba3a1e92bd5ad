//! Replays supervised ViT-Tiny training for PyTorch: writes the initial weights and 30
//! batches of the embedded Fashion-MNIST subset to `target/vit-replay/`, trains 30 AdamW
//! steps and prints the loss of each. `scripts/torch/vit_replay.py` loads the same weights
//! into timm, trains on the same batches and prints its losses: they should agree to about
//! four decimals (they did on 2026-12-02: 2.3500 → 1.1874 here, 1.1878 in PyTorch).
//!
//! ```text
//! cargo run --release --example vit_replay -- [patch 7] [lr 1e-3]
//! .venv/bin/python scripts/torch/vit_replay.py [patch 7] [lr 1e-3]
//! ```

use tessera::autograd::{fused, Var};
use tessera::engine::{Generator, Tensor};
use tessera::ssl::data::{fashion_mnist_subset, Split};
use tessera::ssl::nn::checkpoint::save_tensors;
use tessera::ssl::nn::{save_model, AdamW, Module, Optim, Optimizer, ParamGroup, VisionTransformer, VitConfig};

const STEPS: usize = 30;
const BATCH: usize = 128;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let patch: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(7);
    let lr: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1e-3);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/vit-replay");
    std::fs::create_dir_all(&dir)?;
    let ds = fashion_mnist_subset(Split::Train)?;
    let (mean, std) = ds.pixel_stats();
    let cfg = VitConfig { num_classes: Some(10), ..VitConfig::tiny(28, patch).with_in_channels(1) };
    let vit = VisionTransformer::new(&cfg, &mut Generator::new(0))?;
    save_model(dir.join("init.safetensors"), &vit)?;
    let mut opt = Optimizer::new(AdamW::default(), ParamGroup::split_decay(vit.named_trainable_parameters(), lr, 0.05))?;
    let mut batches = vec![];
    for step in 0..STEPS {
        let idx: Vec<usize> = (step * BATCH..(step + 1) * BATCH).collect();
        let pixels = idx.iter().flat_map(|&i| ds.pixels(i).iter().map(|&p| (p as f32 / 255.0 - mean) / std)).collect();
        let x = Tensor::from_vec(pixels, &[BATCH, 1, 28, 28])?;
        let y = Tensor::from_vec(idx.iter().map(|&i| ds.label(i)).collect::<Vec<i64>>(), &[BATCH])?;
        batches.push((format!("x{step}"), x.clone()));
        batches.push((format!("y{step}"), y.clone()));
        opt.zero_grad();
        let loss = fused::cross_entropy(&vit.forward(&Var::constant(x))?, &y, 0.0)?;
        loss.backward()?;
        opt.step()?;
        println!("step {step} loss {:.4}", loss.value().item()?);
    }
    save_tensors(dir.join("batches.safetensors"), &batches, None)?;
    Ok(())
}
