//! An in-memory labelled image dataset: every loader and the synthetic generator produce one.
//! Pixels stay u8 (a quarter of the memory of f32; CIFAR-10's training set is 150 MB as u8)
//! and are scaled to [0, 1] only when a sample is read.

use std::sync::Arc;

use super::error::{DataError, Result};
use super::image::Image;

/// Which part of a dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

/// A labelled image dataset held in memory: `len()` images of shape `[C, H, W]` as u8, a
/// label in `0..num_classes()` each, and optionally a second, coarser labelling (CIFAR-100's
/// 20 superclasses).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    name: String,
    shape: [usize; 3],
    pixels: Vec<u8>,
    labels: Vec<i64>,
    classes: Vec<String>,
    coarse: Option<(Vec<i64>, Vec<String>)>,
    /// Captions per image (image–text pairs), shared between subsets' clones.
    captions: Option<Arc<Vec<Vec<String>>>>,
}

impl Dataset {
    /// A dataset from raw parts. `pixels` holds `labels.len()` images of `shape` = `[C, H, W]`
    /// in channel-major order; every label must index `classes`.
    pub fn new(name: impl Into<String>, shape: [usize; 3], pixels: Vec<u8>, labels: Vec<i64>, classes: Vec<String>) -> Result<Dataset> {
        let name = name.into();
        if shape.contains(&0) {
            return Err(DataError::invalid("Dataset::new", format!("{name}: image shape {shape:?} has a zero dimension")));
        }
        let item = shape.iter().product::<usize>();
        if Some(pixels.len()) != labels.len().checked_mul(item) {
            return Err(DataError::invalid(
                "Dataset::new",
                format!(
                    "{name}: {} labels need {} pixel bytes of {shape:?} images, got {}",
                    labels.len(),
                    labels.len() * item,
                    pixels.len()
                ),
            ));
        }
        check_labels(&name, "label", &labels, classes.len())?;
        Ok(Dataset { name, shape, pixels, labels, classes, coarse: None, captions: None })
    }

    /// Adds a second labelling (one label per image, each indexing `classes`).
    pub fn with_coarse_labels(mut self, labels: Vec<i64>, classes: Vec<String>) -> Result<Dataset> {
        if labels.len() != self.labels.len() {
            return Err(DataError::invalid(
                "Dataset::with_coarse_labels",
                format!("{}: {} coarse labels for {} images", self.name, labels.len(), self.labels.len()),
            ));
        }
        check_labels(&self.name, "coarse label", &labels, classes.len())?;
        self.coarse = Some((labels, classes));
        Ok(self)
    }

    /// Attaches captions: one non-empty list per image (image–text methods draw from them).
    pub fn with_captions(mut self, captions: Vec<Vec<String>>) -> Result<Dataset> {
        if captions.len() != self.labels.len() || captions.iter().any(|c| c.is_empty()) {
            return Err(DataError::invalid(
                "Dataset::with_captions",
                format!(
                    "{}: needs at least one caption for each of the {} images (got {} lists)",
                    self.name,
                    self.labels.len(),
                    captions.len()
                ),
            ));
        }
        self.captions = Some(Arc::new(captions));
        Ok(self)
    }

    /// The captions of every image, where the dataset has them.
    pub fn captions(&self) -> Option<&Arc<Vec<Vec<String>>>> {
        self.captions.as_ref()
    }

    /// The same dataset under another name.
    pub fn renamed(mut self, name: impl Into<String>) -> Dataset {
        self.name = name.into();
        self
    }

    /// A human-readable name (for logs), e.g. `"fashion-mnist-subset/train"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[C, H, W]` of every image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Class names, indexed by label.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// All labels, in dataset order.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }

    /// Label of image `i`. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> i64 {
        self.labels[i]
    }

    /// The coarse labels and their class names, where the dataset has them (CIFAR-100).
    pub fn coarse(&self) -> Option<(&[i64], &[String])> {
        self.coarse.as_ref().map(|(l, c)| (l.as_slice(), c.as_slice()))
    }

    /// Raw u8 pixels of image `i`, C×H×W. Panics if `i >= len()`.
    pub fn pixels(&self, i: usize) -> &[u8] {
        let n = self.shape.iter().product::<usize>();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Mean and standard deviation of every pixel, in [0, 1] units: the input normalization
    /// a run computes from its training set.
    pub fn pixel_stats(&self) -> (f32, f32) {
        let (mut s, mut ss) = (0f64, 0f64);
        for &p in &self.pixels {
            let v = p as f64 / 255.0;
            s += v;
            ss += v * v;
        }
        let n = (self.pixels.len() as f64).max(1.0);
        let mean = s / n;
        (mean as f32, ((ss / n - mean * mean).max(1e-12)).sqrt() as f32)
    }

    /// Image `i` as f32 in [0, 1]. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> Image {
        let [c, h, w] = self.shape;
        // The shape was validated at construction, so this cannot fail.
        Image::from_u8(c, h, w, self.pixels(i)).unwrap_or_else(|_| Image::zeros(c, h, w))
    }

    /// Per-channel mean and standard deviation of the pixel values scaled to [0, 1] (for
    /// `Normalize`); zeros for an empty dataset.
    pub fn channel_mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let [c, h, w] = self.shape;
        let plane = h * w;
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for img in self.pixels.chunks_exact(c * plane) {
            for (ch, px) in img.chunks_exact(plane).enumerate() {
                let s: u64 = px.iter().map(|&p| p as u64).sum();
                let s2: u64 = px.iter().map(|&p| (p as u64) * (p as u64)).sum();
                sum[ch] += s as f64;
                sq[ch] += s2 as f64;
            }
        }
        let n = (self.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n / 255.0).collect();
        let std = sq.iter().zip(&mean).map(|(s2, m)| ((s2 / n / 65025.0 - m * m).max(0.0).sqrt()) as f32).collect();
        (mean.iter().map(|&m| m as f32).collect(), std)
    }

    /// The images at `indices` (in that order, repeats allowed) as a new dataset.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::invalid(
                "Dataset::subset",
                format!("{}: index {bad} is out of range for {} images", self.name, self.len()),
            ));
        }
        let mut pixels = Vec::with_capacity(indices.len() * self.shape.iter().product::<usize>());
        for &i in indices {
            pixels.extend_from_slice(self.pixels(i));
        }
        let pick = |l: &[i64]| indices.iter().map(|&i| l[i]).collect::<Vec<_>>();
        let coarse = self.coarse.as_ref().map(|(l, c)| (pick(l), c.clone()));
        let captions = self.captions.as_ref().map(|c| Arc::new(indices.iter().map(|&i| c[i].clone()).collect()));
        Ok(Dataset {
            name: self.name.clone(),
            shape: self.shape,
            pixels,
            labels: pick(&self.labels),
            classes: self.classes.clone(),
            coarse,
            captions,
        })
    }

    /// The first `n` images (all of them if `n >= len()`).
    pub fn take(&self, n: usize) -> Dataset {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        // Indices are in range by construction.
        self.subset(&idx).unwrap_or_else(|_| self.clone())
    }
}

/// Checks that every label lies in `0..num_classes`, naming the first offender.
fn check_labels(name: &str, what: &str, labels: &[i64], num_classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l < 0 || l as u64 >= num_classes as u64) {
        Some(i) => Err(DataError::invalid(
            "Dataset::new",
            format!("{name}: image {i} has {what} {} but there are {num_classes} classes", labels[i]),
        )),
        None => Ok(()),
    }
}
