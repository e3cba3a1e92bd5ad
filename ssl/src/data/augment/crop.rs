//! Cropping and bilinear resampling: torchvision's `RandomResizedCrop` (its sampling
//! algorithm: ten tries at a random area and log-uniform aspect ratio, then a central crop
//! clamped to the ratio range) and a deterministic `CenterCrop`.

use tessera_engine::Generator;

use super::{uniform, Transform};
use crate::data::error::{DataError, Result};
use crate::data::image::{Image, Region};

/// Bilinear sampling positions along one axis: for each output coordinate, the two source
/// indices (absolute) and the weight of the second. Half-pixel centres, as
/// `align_corners=False`, so an output the size of the region reproduces it exactly.
fn axis_taps(offset: usize, len: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = len as f64 / out as f64;
    (0..out)
        .map(|o| {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(len - 1);
            let i1 = (i0 + 1).min(len - 1);
            (offset + i0, offset + i1, (src - i0 as f64).clamp(0.0, 1.0) as f32)
        })
        .collect()
}

/// The `region` of `img` resampled to `out_h`×`out_w` with bilinear interpolation. Output
/// values are convex combinations of inputs, so [0, 1] images stay in [0, 1].
pub fn resized_crop(img: &Image, region: Region, out_h: usize, out_w: usize) -> Result<Image> {
    let [c, h, w] = img.shape();
    if region.height == 0 || region.width == 0 || region.top + region.height > h || region.left + region.width > w {
        return Err(DataError::invalid("resized_crop", format!("region {region:?} does not fit a {h}x{w} image")));
    }
    if out_h == 0 || out_w == 0 {
        return Err(DataError::invalid("resized_crop", format!("output size must be positive, got {out_h}x{out_w}")));
    }
    let ys = axis_taps(region.top, region.height, out_h);
    let xs = axis_taps(region.left, region.width, out_w);
    let src = img.data();
    let mut out = Image::zeros(c, out_h, out_w);
    let dst = out.data_mut();
    // Separable: each source row of the region is interpolated horizontally once, then
    // output rows blend two of those (a contiguous, vectorizable loop).
    let mut rows = vec![0.0f32; region.height * out_w];
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for (ry, row) in rows.chunks_exact_mut(out_w).enumerate() {
            let line = &plane[(region.top + ry) * w..(region.top + ry + 1) * w];
            for (o, &(x0, x1, lx)) in row.iter_mut().zip(&xs) {
                *o = line[x0] + lx * (line[x1] - line[x0]);
            }
        }
        for (oy, &(y0, y1, ly)) in ys.iter().enumerate() {
            let (r0, r1) = (&rows[(y0 - region.top) * out_w..][..out_w], &rows[(y1 - region.top) * out_w..][..out_w]);
            let out_row = &mut dst[(ch * out_h + oy) * out_w..][..out_w];
            for ((o, &a), &b) in out_row.iter_mut().zip(r0).zip(r1) {
                *o = a + ly * (b - a);
            }
        }
    }
    Ok(out)
}

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
