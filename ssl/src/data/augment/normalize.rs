//! Per-channel standardization, the usual last step before a network.

use tessera_engine::Generator;

use super::Transform;
use crate::data::error::{DataError, Result};
use crate::data::image::Image;

/// `(x − mean[c]) / std[c]` per channel; one value broadcasts to every channel. The output
/// is no longer in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// Means and standard deviations, of equal length ≥ 1; every std must be positive.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(DataError::invalid(
                "Normalize",
                format!("needs as many means as stds (at least one), got {} and {}", mean.len(), std.len()),
            ));
        }
        if let Some(s) = std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            return Err(DataError::invalid("Normalize", format!("every std must be positive and finite, got {s}")));
        }
        Ok(Normalize { mean, std })
    }
}

impl Transform for Normalize {
    fn apply(&self, mut img: Image, _rng: &mut Generator) -> Result<Image> {
        let c = img.channels();
        if self.mean.len() != 1 && self.mean.len() != c {
            return Err(DataError::invalid("Normalize", format!("built for {} channels but the image has {c}", self.mean.len())));
        }
        let n = img.height() * img.width();
        for (ch, plane) in img.data_mut().chunks_exact_mut(n).enumerate() {
            let k = if self.mean.len() == 1 { 0 } else { ch };
            let (m, inv) = (self.mean[k], 1.0 / self.std[k]);
            plane.iter_mut().for_each(|v| *v = (*v - m) * inv);
        }
        Ok(img)
    }
}
