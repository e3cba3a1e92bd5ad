//! Writing your own method against tessera's public API, without touching the CLI: the
//! alignment + uniformity objective of Wang & Isola (2020) on a narrow ResNet, trained by the
//! shared loop (schedule, optimizer, checkpoints, online probe) and evaluated by kNN.
//!
//! Run: `cargo run --release --example custom_method` (about a minute on two cores).
//!
//! A method is a [`Module`] (so its state is checkpointed) that implements [`Method`]: it
//! says which views it needs ([`DataRecipe`]) and turns a [`TrainBatch`] into a loss. To
//! offer it on the command line as well, add a `MethodInfo` constant beside it and list it in
//! `ssl::methods::METHODS`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tessera::autograd::{Result, Var};
use tessera::engine::{Generator, Tensor};
use tessera::ssl::data::{fashion_mnist_subset, DataRecipe, LoaderConfig, SimclrConfig, Split, TrainBatch, ViewAugment};
use tessera::ssl::eval::{encode_dataset, knn_accuracy};
use tessera::ssl::methods::{two_views, Backbone, Method, StepContext, StepOutput};
use tessera::ssl::nn::{join, EncoderSpec, Entry, Module, Pool, ProjectionHead};
use tessera::ssl::train::{self, make_optimizer, Observer, OpenMode, RunDir, TrainConfig, TrainState};

/// Alignment + uniformity (Wang & Isola 2020): pull the two views' embeddings together on
/// the unit sphere, and spread all embeddings over it.
struct AlignUniform {
    backbone: Backbone,
    head: ProjectionHead,
    /// Weight of the uniformity term.
    lambda: f64,
}

/// `E‖x − y‖²` over positive pairs of unit vectors.
fn alignment(x: &Var, y: &Var) -> Result<Var> {
    x.sub(y)?.square()?.sum(&[1], false)?.mean_all()
}

/// `log E exp(−2‖x − y‖²)` over all pairs; for unit vectors ‖x − y‖² = 2 − 2 x·y.
fn uniformity(x: &Var) -> Result<Var> {
    let n = x.shape()[0] as f64;
    let sq_dist = x.matmul(&x.t()?)?.mul_scalar(-2.0)?.add_scalar(2.0)?;
    sq_dist.mul_scalar(-2.0)?.reshape(&[-1])?.logsumexp(&[0], false)?.sub_scalar((n * n).ln())
}

impl Method for AlignUniform {
    fn name(&self) -> &'static str {
        "align-uniform"
    }

    /// The encoder being trained (evaluation reads `encoder()`, which defaults to it).
    fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// Two views through the contrastive pipeline (the default, spelled out here).
    fn data_recipe(&self) -> DataRecipe {
        DataRecipe::views(vec![ViewAugment::Contrastive; 2])
    }

    fn training_step(&self, batch: &TrainBatch, _: &StepContext) -> Result<StepOutput> {
        let embed = |x: &Tensor| -> Result<(Var, Var)> {
            let h = self.backbone.net.forward(&Var::constant(x.clone()))?;
            let z = self.head.forward(&h)?.normalize(1, 1e-12)?;
            Ok((h, z))
        };
        let (x1, x2) = two_views(batch)?;
        let (h1, z1) = embed(x1)?;
        let (_, z2) = embed(x2)?;
        let spread = uniformity(&z1)?.add(&uniformity(&z2)?)?.mul_scalar(0.5 * self.lambda)?;
        Ok(StepOutput::new(alignment(&z1, &z2)?.add(&spread)?, h1.value()))
    }
}

impl Module for AlignUniform {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.backbone.net.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(prefix, f);
        self.head.visit(&join(prefix, "head"), f);
    }
}

/// Prints each epoch's loss.
struct PrintEpochs;

impl Observer for PrintEpochs {
    fn on_epoch(&mut self, r: &mut train::EpochRecord, _: Option<&train::OnlineProbe>) -> train::Result<()> {
        println!("epoch {}: loss {:.4}, {:.0} img/s", r.epoch, r.loss, r.images_per_second);
        Ok(())
    }
}

fn main() -> tessera::ssl::Result<()> {
    // The loop runs on one of rayon's workers, as the CLI's does: each op then shares its
    // work with the other workers instead of parking this thread.
    tessera::engine::cpu::on_pool_worker(train_and_evaluate)
}

fn train_and_evaluate() -> tessera::ssl::Result<()> {
    let train_ds = Arc::new(fashion_mnist_subset(Split::Train)?.take(2048));
    let test_ds = fashion_mnist_subset(Split::Test)?.take(512);
    let [c, side, _] = train_ds.image_shape();

    let mut gen = Generator::new(0);
    let spec = EncoderSpec { name: "resnet-narrow".into(), channels: c, side, patch_size: 0, pool: Pool::Token };
    let backbone = Backbone::build(&spec, &mut gen)?;
    let head = ProjectionHead::new(backbone.dim, 128, 64, 2, false, &mut gen)?;
    let method = AlignUniform { backbone, head, lambda: 1.0 };

    // The data the method asked for, with the contrastive pipeline's settings.
    let recipe = method.data_recipe();
    let aug = SimclrConfig { scale: (0.4, 1.0), normalize: Some((vec![0.286], vec![0.353])), ..SimclrConfig::fashion_mnist() };
    let loader = recipe.loader(train_ds.clone(), &aug, LoaderConfig { batch_size: 64, seed: 0, ..LoaderConfig::default() })?;

    let cfg = TrainConfig {
        epochs: 2,
        max_steps: None,
        lr: 2e-3,
        weight_decay: 1e-6,
        optimizer: "adamw".into(),
        betas: [0.9, 0.999],
        warmup_epochs: 0.2,
        autocast: None,
        seed: 0,
        layer_norms_every: 0,
    };
    let mut opt = make_optimizer(&method, &cfg)?;
    let run = RunDir::open(&std::env::temp_dir().join("tessera-custom-method"), OpenMode::Force)?;
    let stop = AtomicBool::new(false);
    train::pretrain(&method, &loader, &recipe, opt.as_mut(), None, &run, &cfg, TrainState::default(), &stop, &mut PrintEpochs)?;

    let norm = Some((0.286, 0.353));
    let ftr = encode_dataset(method.encoder(), &train_ds, 256, norm)?;
    let fte = encode_dataset(method.encoder(), &test_ds, 256, norm)?;
    let knn = knn_accuracy(&ftr, train_ds.labels(), &fte, test_ds.labels(), train_ds.num_classes(), 20, 0.07)?;
    println!("kNN accuracy (k = 20) after 2 epochs on 2048 images: {:.3}; checkpoint in {}", knn.majority, run.root.display());
    Ok(())
}
