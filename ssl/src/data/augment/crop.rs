//! Random and central crops: torchvision's `RandomResizedCrop` (its sampling algorithm: ten
//! tries at a random area and log-uniform aspect ratio, then a central crop clamped to the
//! ratio range) and a deterministic `CenterCrop`. The resampling itself is the image's
//! ([`resized_crop`], in `data/resize.rs`).

use tessera_engine::Generator;

use super::{uniform, Transform};
use crate::data::error::{DataError, Result};
use crate::data::image::{Image, Region};
pub use crate::data::resize::resized_crop;

/// Crops a random region and resizes it to `size` (bilinear). The region's area is a
/// uniform fraction in `scale` of the image's area and its aspect ratio (width/height) is
/// log-uniform in `ratio`, as in torchvision (no antialiasing filter when shrinking).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomResizedCrop {
    size: (usize, usize),
    scale: (f64, f64),
    ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// Output `size` = (height, width); `scale` = area fraction range with
    /// 0 < min ≤ max ≤ 1; `ratio` = aspect ratio range with 0 < min ≤ max.
    pub fn new(size: (usize, usize), scale: (f64, f64), ratio: (f64, f64)) -> Result<Self> {
        if size.0 == 0 || size.1 == 0 {
            return Err(DataError::invalid("RandomResizedCrop", format!("size must be positive, got {size:?}")));
        }
        if !(scale.0 > 0.0 && scale.0 <= scale.1 && scale.1 <= 1.0) {
            return Err(DataError::invalid("RandomResizedCrop", format!("scale needs 0 < min <= max <= 1, got {scale:?}")));
        }
        if !(ratio.0 > 0.0 && ratio.0 <= ratio.1 && ratio.1.is_finite()) {
            return Err(DataError::invalid("RandomResizedCrop", format!("ratio needs 0 < min <= max, got {ratio:?}")));
        }
        Ok(RandomResizedCrop { size, scale, ratio })
    }

    /// A square `size`×`size` output with the standard aspect ratio range (3/4, 4/3).
    pub fn square(size: usize, scale: (f64, f64)) -> Result<Self> {
        RandomResizedCrop::new((size, size), scale, (3.0 / 4.0, 4.0 / 3.0))
    }

    /// Samples the crop region for an `h`×`w` image: up to ten tries at a random area and
    /// aspect ratio that fits, else the largest central crop whose ratio is in range.
    pub fn sample_region(&self, h: usize, w: usize, rng: &mut Generator) -> Region {
        let area = (h * w) as f64;
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * uniform(rng, self.scale.0, self.scale.1);
            let aspect = uniform(rng, log_lo, log_hi).exp();
            let cw = (target * aspect).sqrt().round() as usize;
            let ch = (target / aspect).sqrt().round() as usize;
            if cw > 0 && cw <= w && ch > 0 && ch <= h {
                let top = rng.next_below((h - ch + 1) as u64) as usize;
                let left = rng.next_below((w - cw + 1) as u64) as usize;
                return Region { top, left, height: ch, width: cw };
            }
        }
        let in_ratio = w as f64 / h as f64;
        let (ch, cw) = if in_ratio < self.ratio.0 {
            (((w as f64 / self.ratio.0).round() as usize).clamp(1, h), w)
        } else if in_ratio > self.ratio.1 {
            (h, ((h as f64 * self.ratio.1).round() as usize).clamp(1, w))
        } else {
            (h, w)
        };
        Region { top: (h - ch) / 2, left: (w - cw) / 2, height: ch, width: cw }
    }
}

impl Transform for RandomResizedCrop {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        let region = self.sample_region(img.height(), img.width(), rng);
        resized_crop(&img, region, self.size.0, self.size.1)
    }
}

/// Crops the central `size` = (height, width) region; deterministic. Errors if the image
/// is smaller than `size`.
#[derive(Debug, Clone, PartialEq)]
pub struct CenterCrop {
    size: (usize, usize),
}

impl CenterCrop {
    /// A central crop of `size` = (height, width), both positive.
    pub fn new(size: (usize, usize)) -> Result<Self> {
        if size.0 == 0 || size.1 == 0 {
            return Err(DataError::invalid("CenterCrop", format!("size must be positive, got {size:?}")));
        }
        Ok(CenterCrop { size })
    }
}

impl Transform for CenterCrop {
    fn apply(&self, img: Image, _rng: &mut Generator) -> Result<Image> {
        let (ch, cw) = self.size;
        if ch > img.height() || cw > img.width() {
            return Err(DataError::invalid("CenterCrop", format!("cannot crop {ch}x{cw} from a {}x{} image", img.height(), img.width())));
        }
        img.crop((img.height() - ch) / 2, (img.width() - cw) / 2, ch, cw)
    }
}
