//! The data loader: per-epoch shuffling, batching, N augmented views per image computed in
//! parallel with rayon, and prefetching on a background thread.
//!
//! Reproducibility: the random stream of every augmented view is forked from
//! `(seed, epoch, dataset index, view)` and the shuffle from `(seed, epoch)`, never taken
//! from a shared sequential generator, so the same seed gives the same batches and pixels
//! whatever the thread count or the order in which workers finish.

use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rayon::prelude::*;
use tessera_engine::{Generator, Tensor};

use super::augment::Transform;
use super::dataset::Dataset;
use super::error::{DataError, Result};
use super::image::Image;

/// Stream ids under the loader's root generator.
const SHUFFLE_STREAM: u64 = 1;
const AUGMENT_STREAM: u64 = 2;

/// How a [`DataLoader`] batches and shuffles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Images per batch (≥ 1).
    pub batch_size: usize,
    /// Shuffle the order each epoch (from `seed` and the epoch number).
    pub shuffle: bool,
    /// Drop the last batch when it would be smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the shuffles and the augmentations.
    pub seed: u64,
    /// Batches prepared ahead of the consumer by [`DataLoader::epoch`] (≥ 1).
    pub prefetch: usize,
    /// Worker threads of the loader's own rayon pool; `None` takes the number of threads of
    /// the rayon pool current when the loader is built.
    pub num_threads: Option<usize>,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig { batch_size: 256, shuffle: true, drop_last: true, seed: 0, prefetch: 2, num_threads: None }
    }
}

/// One view of a batch: a contiguous `[B, C, H, W]` f32 buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewBatch {
    /// `[B, C, H, W]`.
    pub shape: [usize; 4],
    /// The images, batch-major, each C×H×W channel-major.
    pub data: Vec<f32>,
}

/// A batch: every view of the same `B` images, their labels and dataset indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Epoch the batch belongs to.
    pub epoch: u64,
    /// Position of the batch within the epoch.
    pub index: usize,
    /// One entry per view, in the order of the loader's pipelines.
    pub views: Vec<ViewBatch>,
    /// `[B]` labels.
    pub labels: Vec<i64>,
    /// `[B]` dataset indices of the images.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of images B.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch is empty (never, for a loader's batch).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// View `v` as an f32 tensor `[B, C, H, W]` (copies the buffer).
    pub fn view_tensor(&self, v: usize) -> Result<Tensor> {
        let view =
            self.views.get(v).ok_or_else(|| DataError::invalid("Batch::view_tensor", format!("view {v} of {}", self.views.len())))?;
        Ok(Tensor::from_vec::<f32>(view.data.clone(), &view.shape)?)
    }

    /// Every view as a tensor, without copying the buffers.
    pub fn into_view_tensors(self) -> Result<Vec<Tensor>> {
        self.views.into_iter().map(|v| Ok(Tensor::from_vec::<f32>(v.data, &v.shape)?)).collect()
    }

    /// The labels as an i64 tensor `[B]`.
    pub fn labels_tensor(&self) -> Result<Tensor> {
        Ok(Tensor::from_vec::<i64>(self.labels.clone(), &[self.labels.len()])?)
    }
}

/// Batches of augmented views of a dataset. Cheap to clone (shared dataset, pipelines and
/// thread pool).
#[derive(Clone)]
pub struct DataLoader {
    dataset: Arc<Dataset>,
    views: Vec<Arc<dyn Transform>>,
    cfg: LoaderConfig,
    pool: Arc<rayon::ThreadPool>,
}

impl DataLoader {
    /// A loader producing one view per pipeline in `views` (two for SimCLR and MoCo, more for
    /// multi-crop; the same `Arc` may appear several times). Needs at least one view.
    pub fn new(dataset: Arc<Dataset>, views: Vec<Arc<dyn Transform>>, cfg: LoaderConfig) -> Result<Self> {
        if views.is_empty() {
            return Err(DataError::invalid("DataLoader", "needs at least one view pipeline"));
        }
        if cfg.batch_size == 0 || cfg.prefetch == 0 || cfg.num_threads == Some(0) {
            return Err(DataError::invalid("DataLoader", format!("batch_size, prefetch and num_threads must be positive: {cfg:?}")));
        }
        let threads = cfg.num_threads.unwrap_or_else(rayon::current_num_threads);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("tessera-data-{i}"))
            .build()
            .map_err(|e| DataError::Loader(format!("cannot start {threads} worker threads: {e}")))?;
        Ok(DataLoader { dataset, views, cfg, pool: Arc::new(pool) })
    }

    /// `n` views through the same pipeline.
    pub fn with_views(dataset: Arc<Dataset>, pipeline: Arc<dyn Transform>, n: usize, cfg: LoaderConfig) -> Result<Self> {
        DataLoader::new(dataset, vec![pipeline; n], cfg)
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.cfg.batch_size);
        if self.cfg.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The dataset indices of an epoch in visiting order.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        if self.cfg.shuffle {
            Generator::new(self.cfg.seed).fork(SHUFFLE_STREAM).fork(epoch).permutation(self.dataset.len())
        } else {
            (0..self.dataset.len()).collect()
        }
    }

    /// Batch `b` of `epoch`, computed now in the caller's rayon pool (the prefetching
    /// iterator from [`DataLoader::epoch`] gives identical batches).
    pub fn batch(&self, epoch: u64, b: usize) -> Result<Batch> {
        if b >= self.num_batches() {
            return Err(DataError::invalid("DataLoader::batch", format!("batch {b} of an epoch of {}", self.num_batches())));
        }
        self.make_batch(epoch, b, &self.order(epoch))
    }

    fn make_batch(&self, epoch: u64, b: usize, order: &[usize]) -> Result<Batch> {
        let bs = self.cfg.batch_size;
        let indices: Vec<usize> = order[b * bs..((b + 1) * bs).min(order.len())].to_vec();
        let nv = self.views.len();
        let root = Generator::new(self.cfg.seed).fork(AUGMENT_STREAM).fork(epoch);
        // One task per (image, view); each forks its own stream, so scheduling cannot matter.
        let images: Vec<Result<Image>> = (0..indices.len() * nv)
            .into_par_iter()
            .map(|k| {
                let (i, v) = (indices[k / nv], k % nv);
                let mut rng = root.fork(i as u64).fork(v as u64);
                self.views[v].apply(self.dataset.image(i), &mut rng)
            })
            .collect();
        let images: Vec<Image> = images.into_iter().collect::<Result<_>>()?;
        let mut views = Vec::with_capacity(nv);
        for v in 0..nv {
            let [c, h, w] = images[v].shape();
            let mut data = Vec::with_capacity(indices.len() * c * h * w);
            for (s, img) in images.iter().skip(v).step_by(nv).enumerate() {
                if img.shape() != [c, h, w] {
                    return Err(DataError::invalid(
                        "DataLoader",
                        format!("view {v}: image {} has shape {:?} but image {} has {:?}", indices[s], img.shape(), indices[0], [c, h, w]),
                    ));
                }
                data.extend_from_slice(img.data());
            }
            views.push(ViewBatch { shape: [indices.len(), c, h, w], data });
        }
        let labels = indices.iter().map(|&i| self.dataset.label(i)).collect();
        Ok(Batch { epoch, index: b, views, labels, indices })
    }

    /// The batches of `epoch`, prepared on a background thread (in the loader's pool) up to
    /// `prefetch` batches ahead. An error ends the epoch after being yielded; dropping the
    /// iterator early stops the thread.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let (tx, rx) = mpsc::sync_channel(self.cfg.prefetch);
        let loader = self.clone();
        let worker = std::thread::Builder::new().name("tessera-data-prefetch".into()).spawn(move || {
            let order = loader.order(epoch);
            for b in 0..loader.num_batches() {
                let batch = loader.pool.install(|| loader.make_batch(epoch, b, &order));
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    break;
                }
            }
        });
        match worker {
            Ok(handle) => EpochIter { rx: Some(rx), worker: Some(handle), remaining: self.num_batches(), spawn_error: None },
            Err(e) => {
                EpochIter { rx: None, worker: None, remaining: 0, spawn_error: Some(format!("cannot start the prefetch thread: {e}")) }
            }
        }
    }
}

/// Iterator over one epoch's batches (see [`DataLoader::epoch`]).
pub struct EpochIter {
    rx: Option<Receiver<Result<Batch>>>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
    spawn_error: Option<String>,
}

impl EpochIter {
    /// Batches not yet yielded.
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(msg) = self.spawn_error.take() {
            return Some(Err(DataError::Loader(msg)));
        }
        let rx = self.rx.as_ref()?;
        match rx.recv() {
            Ok(batch) => {
                self.remaining = self.remaining.saturating_sub(1);
                if batch.is_err() {
                    self.remaining = 0;
                }
                Some(batch)
            }
            Err(_) => {
                self.rx = None;
                let panicked = self.worker.take().map(|h| h.join().is_err()).unwrap_or(false);
                (panicked || self.remaining > 0).then(|| {
                    self.remaining = 0;
                    Err(DataError::Loader("the prefetch thread stopped before the end of the epoch (it panicked)".into()))
                })
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining + self.spawn_error.is_some() as usize))
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Closing the channel first makes a blocked send fail, so the join cannot hang.
        self.rx = None;
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}
