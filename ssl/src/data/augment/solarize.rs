//! Solarization (BYOL's augmentation): values at or above a threshold are inverted.

use tessera_engine::Generator;

use super::Transform;
use crate::data::error::{DataError, Result};
use crate::data::image::Image;

/// Replaces every value `x ≥ threshold` by `1 − x`; deterministic (wrap it in
/// `RandomApply` for a probability). Keeps [0, 1] images in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Solarize {
    threshold: f32,
}

impl Solarize {
    /// Solarize at `threshold` in [0, 1] (BYOL uses 0.5).
    pub fn new(threshold: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(DataError::invalid("Solarize", format!("threshold must lie in [0, 1], got {threshold}")));
        }
        Ok(Solarize { threshold })
    }
}

impl Transform for Solarize {
    fn apply(&self, mut img: Image, _rng: &mut Generator) -> Result<Image> {
        let t = self.threshold;
        img.data_mut().iter_mut().filter(|v| **v >= t).for_each(|v| *v = 1.0 - *v);
        Ok(img)
    }
}
