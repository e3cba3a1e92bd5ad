//! The representation diagnostics of a run (issue 17), measured on a fixed held-out set —
//! the first test images — every epoch (into `metrics.jsonl`, the epoch line and `plots/`)
//! and by `tessera inspect` on a saved run. Everything runs without gradients on small
//! subsets, so a default run pays a few percent of its wall clock for them.

use std::sync::Arc;

use super::assemble::augment_config;
use super::config::Config;
use crate::data::{DataRecipe, Dataset, LoaderConfig, ViewAugment};
use crate::eval::{
    alignment, effective_rank, encode_dataset, encode_images, knn_accuracy, pca_2d, similarity_histograms, singular_values, spread,
    uniformity, SimilarityHistograms,
};
use crate::methods::Method;
use crate::nn::{in_eval_mode, Module};
use serde_json::json;
use tessera_engine::{Device, Tensor};

/// Held-out images the diagnostics use: enough for a stable rank and uniformity, few enough
/// to cost little beside an epoch (uniformity is quadratic in them).
pub const DIAGNOSTIC_IMAGES: usize = 512;
/// Training images the per-epoch kNN classifies the held-out images against (the first
/// ones of the training split, the same every epoch). The final evaluation uses them all.
pub const KNN_TRAIN_IMAGES: usize = 1000;
/// Held-out images seen through two augmented views: the positive pairs of alignment and of
/// the positive-pair histogram.
pub const POSITIVE_PAIRS: usize = 256;
/// Bins of the cosine-similarity histograms over [−1, 1].
pub const HISTOGRAM_BINS: usize = 40;
/// Seed stream of the positive pairs' augmentations under the run's seed.
const VIEWS_STREAM: u64 = 0xD1A6;

/// The fixed inputs of the diagnostics, prepared once per run.
pub struct Diagnostics {
    held_out: Dataset,
    /// Two augmented views (normalized) of the first held-out images, drawn once so every
    /// epoch measures the same pairs; `None` for methods that train on unaugmented images.
    views: Option<(Tensor, Tensor)>,
    knn_train: Dataset,
    norm: (f32, f32),
    knn_k: usize,
    knn_temperature: f64,
}

/// One measurement of a representation.
pub struct Measured {
    /// Logged keys and values, in a fixed order.
    pub scalars: Vec<(String, f64)>,
    /// Of the held-out encoder features, largest first.
    pub singular_values: Vec<f64>,
    /// Of the projector's output on those features, for methods with a projector.
    pub projector_singular_values: Option<Vec<f64>>,
    pub histograms: SimilarityHistograms,
    /// The held-out features on their first two principal components.
    pub map: Vec<[f64; 2]>,
    pub labels: Vec<i64>,
    pub classes: Vec<String>,
}

impl Diagnostics {
    /// The held-out set from `test`, the kNN reference set from `train`, and positive pairs
    /// made by the augmentation of the method's first view (`recipe`).
    pub fn new(cfg: &Config, train: &Dataset, test: &Dataset, norm: (f32, f32), recipe: &DataRecipe) -> crate::Result<Diagnostics> {
        let held_out = test.take(DIAGNOSTIC_IMAGES);
        if held_out.len() < 2 {
            return Err(format!("the diagnostics need at least 2 test images, the test split has {}", held_out.len()).into());
        }
        let views = match recipe.views.first() {
            Some(&kind) if kind != ViewAugment::Plain => Some(positive_views(cfg, &held_out.take(POSITIVE_PAIRS), norm, kind)?),
            _ => None,
        };
        Ok(Diagnostics {
            held_out,
            views,
            knn_train: train.take(KNN_TRAIN_IMAGES),
            norm,
            knn_k: cfg.eval.knn_k,
            knn_temperature: cfg.eval.knn_temperature,
        })
    }

    /// The held-out images.
    pub fn held_out(&self) -> &Dataset {
        &self.held_out
    }

    /// The encoder features of the held-out images.
    pub fn encode_held_out(&self, encoder: &dyn Module) -> crate::Result<Tensor> {
        encode_dataset(encoder, &self.held_out, 512, Some(self.norm)).map_err(crate::Error::msg)
    }

    /// Every diagnostic of `method`'s encoder (and projector, where it has one), given the
    /// encoder's `features` of the held-out images (the online probe has them already).
    pub fn measure(&self, method: &dyn Method, features: &Tensor) -> crate::Result<Measured> {
        let e = |e: tessera_engine::Error| e.to_string();
        let encoder = method.encoder();
        let labels = self.held_out.labels().to_vec();
        let sv = singular_values(features).map_err(e)?;
        let s = spread(features).map_err(e)?;
        let projector_sv = projector_output(method, features)?.map(|z| singular_values(&z)).transpose().map_err(e)?;
        let mut scalars = vec![("rankme".to_string(), effective_rank(&sv))];
        if let Some(psv) = &projector_sv {
            scalars.push(("rankme_projector".into(), effective_rank(psv)));
        }
        scalars.extend([
            ("uniformity".into(), uniformity(features, 2.0).map_err(e)?),
            ("collapse_std".into(), s.mean_std),
            ("uniform_std".into(), s.uniform_std),
            ("dead_dims".into(), s.dead_fraction),
        ]);
        let mut histograms = similarity_histograms(features, None, &labels, HISTOGRAM_BINS).map_err(e)?;
        if let Some((a, b)) = &self.views {
            let fa = encode_images(encoder, a, 512)?;
            let fb = encode_images(encoder, b, 512)?;
            scalars.push(("alignment".into(), alignment(&fa, &fb, 2.0).map_err(e)?));
            histograms.positive = similarity_histograms(&fa, Some(&fb), &labels[..fa.shape()[0]], HISTOGRAM_BINS).map_err(e)?.positive;
        }
        let reference = encode_dataset(encoder, &self.knn_train, 512, Some(self.norm))?;
        let knn = knn_accuracy(
            &reference,
            self.knn_train.labels(),
            features,
            &labels,
            self.knn_train.num_classes(),
            self.knn_k.min(self.knn_train.len()),
            self.knn_temperature,
        )
        .map_err(e)?;
        scalars.push(("knn_acc_epoch".into(), knn.majority));
        let map = pca_2d(features).map_err(e)?;
        Ok(Measured {
            scalars,
            singular_values: sv,
            projector_singular_values: projector_sv,
            histograms,
            map,
            labels,
            classes: self.held_out.classes().to_vec(),
        })
    }
}

/// The projector's output `[N, E]` on the host for encoder `features` `[N, D]` on the host,
/// in eval mode without a graph; `None` for methods without a projector.
pub(crate) fn projector_output(method: &dyn Method, features: &Tensor) -> crate::Result<Option<Tensor>> {
    let projected = in_eval_mode(method, || method.projector_embedding(&features.to_device(method.device())?));
    projected.and_then(|z| Ok(z.map(|z| z.to_device(Device::Cpu)).transpose()?)).map_err(crate::Error::msg)
}

/// Two views of each image in `images` by the augmentation `kind`, with the run's
/// augmentation settings, drawn from a fixed seed.
fn positive_views(cfg: &Config, images: &Dataset, norm: (f32, f32), kind: ViewAugment) -> crate::Result<(Tensor, Tensor)> {
    let [c, h, _] = images.image_shape();
    let lc = LoaderConfig {
        batch_size: images.len(),
        shuffle: false,
        drop_last: false,
        seed: cfg.seed ^ VIEWS_STREAM,
        prefetch: 1,
        num_threads: None,
    };
    let e = |e: crate::data::DataError| e.to_string();
    let loader = DataRecipe::views(vec![kind; 2]).loader(Arc::new(images.clone()), &augment_config(cfg, c, h, norm), lc).map_err(e)?;
    let batch = loader.epoch(0).next().ok_or("no images to augment for the diagnostics")?.map_err(e)?;
    Ok((batch.view_tensor(0).map_err(e)?, batch.view_tensor(1).map_err(e)?))
}

impl Measured {
    /// The value logged under `key`.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.scalars.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// A line to print when the measurement says the representation has collapsed: the
    /// embedding's per-dimension spread below a fifth of a uniform spread's, or an effective
    /// rank under 2 (everything on a line).
    pub fn collapse_warning(&self) -> Option<String> {
        let (std, uniform, rank) = (self.get("collapse_std")?, self.get("uniform_std")?, self.get("rankme")?);
        (std < COLLAPSE_STD_RATIO * uniform || rank < COLLAPSE_RANK).then(|| {
            format!("warning: the representation is collapsing (collapse_std {std:.4} against {uniform:.4} for a uniform spread, rankme {rank:.2})")
        })
    }

    /// The scalars, the spectrum and the histograms as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (k, v) in &self.scalars {
            out.insert(k.clone(), json!(v));
        }
        out.insert("singular_values".into(), json!(self.singular_values));
        if let Some(psv) = &self.projector_singular_values {
            out.insert("projector_singular_values".into(), json!(psv));
        }
        let h = &self.histograms;
        out.insert(
            "similarity_histograms".into(),
            json!({"bins": h.bins, "positive": h.positive, "same_class": h.same_class, "different_class": h.different_class}),
        );
        serde_json::Value::Object(out)
    }
}

/// `collapse_std` below this fraction of `uniform_std` flags a collapse.
pub const COLLAPSE_STD_RATIO: f64 = 0.2;
/// An effective rank below this flags a collapse.
pub const COLLAPSE_RANK: f64 = 2.0;
