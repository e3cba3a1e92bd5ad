//! Seeded augmentations on C×H×W f32 images (values in [0, 1], any channel count), composed
//! with per-transform probabilities as SimCLR and lightly define them. Every random choice
//! comes from the `Generator` handed to [`Transform::apply`], so a sample's augmentation is
//! a pure function of its generator's seed.

pub mod blur;
pub mod color;
pub mod crop;
pub mod flip;
pub mod grayscale;
pub mod normalize;
pub mod simclr;
pub mod solarize;

use tessera_engine::Generator;

use super::error::{DataError, Result};
use super::image::Image;

pub use blur::GaussianBlur;
pub use color::ColorJitter;
pub use crop::{CenterCrop, RandomResizedCrop};
pub use flip::{hflip, vflip, RandomHorizontalFlip};
pub use grayscale::{to_grayscale, RandomGrayscale};
pub use normalize::Normalize;
pub use simclr::{simclr, SimclrConfig};
pub use solarize::Solarize;

/// An image transform. Implementations draw all randomness from `rng` and must be
/// deterministic given its state; errors report invalid input (a channel count the
/// transform was not built for), never a panic.
pub trait Transform: Send + Sync {
    /// Transforms `img`, drawing any randomness from `rng`.
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image>;
}

/// Uniform draw in `[lo, hi)`.
pub(crate) fn uniform(rng: &mut Generator, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.next_f64()
}

/// Checks that `p` is a probability.
pub(crate) fn check_probability(what: &'static str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(DataError::invalid(what, format!("probability must lie in [0, 1], got {p}")))
    }
}

/// Transforms applied one after the other.
#[derive(Default)]
pub struct Compose {
    steps: Vec<Box<dyn Transform>>,
}

impl Compose {
    /// An empty pipeline (the identity).
    pub fn new() -> Self {
        Compose::default()
    }

    /// This pipeline followed by `t`.
    pub fn then(mut self, t: impl Transform + 'static) -> Self {
        self.steps.push(Box::new(t));
        self
    }

    /// Appends a boxed transform.
    pub fn push(&mut self, t: Box<dyn Transform>) {
        self.steps.push(t);
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the pipeline has no step.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl Transform for Compose {
    fn apply(&self, mut img: Image, rng: &mut Generator) -> Result<Image> {
        for t in &self.steps {
            img = t.apply(img, rng)?;
        }
        Ok(img)
    }
}

/// Applies the inner transform with probability `p`, otherwise passes the image through
/// (torchvision's `RandomApply` around one transform).
pub struct RandomApply {
    inner: Box<dyn Transform>,
    p: f64,
}

impl RandomApply {
    /// `inner` applied with probability `p` in [0, 1].
    pub fn new(inner: impl Transform + 'static, p: f64) -> Result<Self> {
        check_probability("RandomApply", p)?;
        Ok(RandomApply { inner: Box::new(inner), p })
    }
}

impl Transform for RandomApply {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        let u = rng.next_f64();
        if u < self.p {
            self.inner.apply(img, rng)
        } else {
            Ok(img)
        }
    }
}

impl<T: Transform + ?Sized> Transform for std::sync::Arc<T> {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        (**self).apply(img, rng)
    }
}

impl<T: Transform + ?Sized> Transform for Box<T> {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        (**self).apply(img, rng)
    }
}
