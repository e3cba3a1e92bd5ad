//! What a method asks of the data, and the one batch type it gets back.
//!
//! A method declares a [`DataRecipe`]: the augmentation of each view it needs (two
//! contrastive views for SimCLR and MoCo, one lightly cropped view for MAE, plain images for
//! a pretext task) and, optionally, a [`BatchTask`] that turns the loaded views into the
//! method's inputs and targets (rotations and their labels, shuffled tiles and their
//! permutation index, L and ab targets, MAE/SimMIM masks, caption token ids). The training
//! loop builds the loader from the recipe and hands the method a [`TrainBatch`].

use std::sync::Arc;

use tessera_engine::{Device, Generator, Tensor};

use super::augment::{simclr, Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, SimclrConfig, Transform};
use super::dataset::Dataset;
use super::error::Result;
use super::loader::{Batch, DataLoader, LoaderConfig};

/// The augmentation pipeline of one view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewAugment {
    /// The contrastive pipeline (crop, flip, colour jitter, grayscale, blur) with the run's
    /// `[augment]` settings: SimCLR, MoCo.
    Contrastive,
    /// A random resized crop with scale (0.2, 1) and a horizontal flip, as MAE and SimMIM
    /// pretrain with.
    Light,
    /// The image as stored, normalized (pretext tasks make their own changes).
    Plain,
}

impl ViewAugment {
    /// What the view is, in words (for messages).
    pub fn describe(self) -> &'static str {
        match self {
            ViewAugment::Contrastive => "the contrastive pipeline of [augment]",
            ViewAugment::Light => "a random resized crop of scale (0.2, 1) with a horizontal flip",
            ViewAugment::Plain => "the image as stored",
        }
    }
}

/// Turns a loaded batch into a method's inputs and targets, on the data side.
pub trait BatchTask: Send + Sync {
    /// `batch.views` holds the recipe's views; `rng` is forked from the seed, the epoch and
    /// the batch position, so the result does not depend on the thread count or on resuming.
    fn apply(&self, batch: TrainBatch, rng: &Generator) -> Result<TrainBatch>;
}

/// What a method needs from the data.
#[derive(Clone)]
pub struct DataRecipe {
    /// One entry per view, in the order `TrainBatch::views` will have them.
    pub views: Vec<ViewAugment>,
    /// Inputs and targets made from the views, if the method needs more than views.
    pub task: Option<Arc<dyn BatchTask>>,
}

impl DataRecipe {
    /// Views only (contrastive methods).
    pub fn views(views: Vec<ViewAugment>) -> DataRecipe {
        DataRecipe { views, task: None }
    }

    /// The same recipe with a batch task.
    pub fn with_task(mut self, task: Arc<dyn BatchTask>) -> DataRecipe {
        self.task = Some(task);
        self
    }

    /// The loader: one pipeline per view, the contrastive views from `contrastive` (whose
    /// `normalize` and `size` every view also uses). Views with the same augmentation share
    /// one pipeline; each (image, view) pair still draws its own randomness.
    pub fn loader(&self, dataset: Arc<Dataset>, contrastive: &SimclrConfig, cfg: LoaderConfig) -> Result<DataLoader> {
        let mut views: Vec<Arc<dyn Transform>> = Vec::with_capacity(self.views.len());
        for (i, v) in self.views.iter().enumerate() {
            let built = self.views[..i].iter().position(|u| u == v).map(|j| views[j].clone());
            views.push(match built {
                Some(p) => p,
                None => Arc::new(pipeline(*v, contrastive)?),
            });
        }
        DataLoader::new(dataset, views, cfg)
    }

    /// The method's batch: the views as tensors, then the task. `seed` is the run's.
    pub fn train_batch(&self, batch: Batch, seed: u64) -> Result<TrainBatch> {
        let (epoch, index) = (batch.epoch, batch.index);
        let labels = batch.labels_tensor()?;
        let indices = batch.indices.clone();
        let views = batch.into_view_tensors()?;
        let out = TrainBatch { views, targets: None, mask: None, tokens: None, labels, indices };
        match &self.task {
            None => Ok(out),
            Some(task) => task.apply(out, &Generator::new(seed).fork(TASK_STREAM).fork(epoch).fork(index as u64)),
        }
    }
}

/// The augmentation pipeline of one kind of view.
fn pipeline(kind: ViewAugment, contrastive: &SimclrConfig) -> Result<Compose> {
    let size = contrastive.size;
    let p = match kind {
        ViewAugment::Contrastive => return simclr(contrastive),
        ViewAugment::Light => Compose::new()
            .then(RandomResizedCrop::new((size, size), (0.2, 1.0), (3.0 / 4.0, 4.0 / 3.0))?)
            .then(RandomHorizontalFlip::new(0.5)?),
        ViewAugment::Plain => Compose::new(),
    };
    Ok(match &contrastive.normalize {
        Some((mean, std)) => p.then(Normalize::new(mean.clone(), std.clone())?),
        None => p,
    })
}

/// Stream id of batch tasks under the run's seed (the loader uses 1 and 2).
const TASK_STREAM: u64 = 3;

/// One training batch, as the method's recipe asked for it. Fields a recipe does not make
/// are `None`.
#[derive(Debug, Clone)]
pub struct TrainBatch {
    /// Views `[B, C, H, W]` (sizes may differ between views), in the recipe's order.
    pub views: Vec<Tensor>,
    /// Pretext targets: rotation labels, permutation indices, ab bins (i64 or f32).
    pub targets: Option<Tensor>,
    /// Patch masks of masked image modelling, u8 `[B, L]` (1 = masked).
    pub mask: Option<Tensor>,
    /// Caption token ids `[B, T]` (CLIP).
    pub tokens: Option<Tensor>,
    /// The class labels `[B]`, for the online probe only: a self-supervised method never
    /// reads them.
    pub labels: Tensor,
    /// The images' indices in the dataset (batch tasks look up per-image data: captions).
    pub indices: Vec<usize>,
}

impl TrainBatch {
    /// Images in the batch.
    pub fn len(&self) -> usize {
        self.labels.shape().first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves every tensor the method reads to `device` (labels stay on the host).
    pub fn to_device(self, device: Device) -> Result<TrainBatch> {
        let mv = |t: Option<Tensor>| -> Result<Option<Tensor>> { Ok(t.map(|t| t.to_device(device)).transpose()?) };
        Ok(TrainBatch {
            views: self.views.iter().map(|v| v.to_device(device)).collect::<tessera_engine::Result<_>>()?,
            targets: mv(self.targets)?,
            mask: mv(self.mask)?,
            tokens: mv(self.tokens)?,
            labels: self.labels,
            indices: self.indices,
        })
    }
}
