//! Colour jitter (torchvision's `ColorJitter`): brightness, contrast, saturation and hue
//! adjustments with random factors, applied in a random order. Saturation and hue act on
//! 3-channel (RGB) images only and are no-ops for any other channel count, so the same
//! pipeline runs on grayscale data.

use tessera_engine::Generator;

use super::grayscale::gray_plane;
use super::{uniform, Transform};
use crate::data::error::{DataError, Result};
use crate::data::image::Image;

/// Multiplies every value by `factor`, clamped to [0, 1].
pub fn adjust_brightness(img: &mut Image, factor: f32) {
    img.data_mut().iter_mut().for_each(|v| *v = (*v * factor).clamp(0.0, 1.0));
}

/// Blends with the mean gray level: `factor·x + (1 − factor)·mean`, clamped to [0, 1].
pub fn adjust_contrast(img: &mut Image, factor: f32) {
    let gray = gray_plane(img);
    let mean = gray.iter().map(|&v| v as f64).sum::<f64>() as f32 / gray.len() as f32;
    let offset = (1.0 - factor) * mean;
    img.data_mut().iter_mut().for_each(|v| *v = (factor * *v + offset).clamp(0.0, 1.0));
}

/// Blends each pixel with its gray value: `factor·x + (1 − factor)·gray`, clamped to
/// [0, 1]. RGB only; other channel counts are left unchanged.
pub fn adjust_saturation(img: &mut Image, factor: f32) {
    if img.channels() != 3 {
        return;
    }
    let gray = gray_plane(img);
    for plane in img.data_mut().chunks_exact_mut(gray.len()) {
        for (v, g) in plane.iter_mut().zip(&gray) {
            *v = (factor * *v + (1.0 - factor) * g).clamp(0.0, 1.0);
        }
    }
}

/// Rotates the hue by `shift` turns (in [-0.5, 0.5]) in HSV space. RGB only; other channel
/// counts are left unchanged.
pub fn adjust_hue(img: &mut Image, shift: f32) {
    if img.channels() != 3 {
        return;
    }
    let n = img.height() * img.width();
    let (r, gb) = img.data_mut().split_at_mut(n);
    let (g, b) = gb.split_at_mut(n);
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let (h, s, v) = rgb_to_hsv(*r, *g, *b);
        (*r, *g, *b) = hsv_to_rgb(wrap_unit(h + shift), s, v);
    }
}

/// `x` (finite, |x| < 2³¹) wrapped into [0, 1). The hue jitter runs this on every pixel:
/// `rem_euclid` is a libm `fmod` call and, on the x86-64 baseline, so is `floor`, while a
/// truncating cast is one instruction.
#[inline]
fn wrap_unit(x: f32) -> f32 {
    let y = x - (x as i32) as f32;
    let y = if y < 0.0 { y + 1.0 } else { y };
    // y + 1 can round up to exactly 1.0 for tiny negative y.
    if y >= 1.0 {
        0.0
    } else {
        y
    }
}

/// RGB in [0, 1] to (hue in [0, 1), saturation, value). Written with selects rather than
/// branches: the hue jitter runs it per pixel and the branches are unpredictable.
#[inline]
pub(crate) fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let inv = if delta > 0.0 { 1.0 / delta } else { 0.0 };
    let h = if max == r {
        (g - b) * inv
    } else if max == g {
        2.0 + (b - r) * inv
    } else {
        4.0 + (r - g) * inv
    };
    let h = if delta > 0.0 { wrap_unit(h / 6.0) } else { 0.0 };
    let s = if max > 0.0 { delta / max } else { 0.0 };
    (h, s, max)
}

/// (hue in [0, 1), saturation, value) to RGB, by the branch-free form
/// `c(n) = v − v·s·clamp(min(k, 4 − k), 0, 1)` with `k = (n + 6h) mod 6`, n = 5, 3, 1.
#[inline]
pub(crate) fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = wrap_unit(h) * 6.0;
    let channel = |n: f32| {
        let k = n + h6;
        let k = if k >= 6.0 { k - 6.0 } else { k };
        v - v * s * k.min(4.0 - k).clamp(0.0, 1.0)
    };
    (channel(5.0), channel(3.0), channel(1.0))
}

/// Random brightness, contrast, saturation and hue changes, applied in a random order
/// (a fresh permutation per image, as torchvision does). A strength `x` draws the factor
/// uniformly from [max(0, 1 − x), 1 + x]; the hue strength `h` ≤ 0.5 draws a shift from
/// [−h, h]. A zero strength disables that adjustment.
#[derive(Debug, Clone, PartialEq)]
pub struct ColorJitter {
    brightness: Option<(f64, f64)>,
    contrast: Option<(f64, f64)>,
    saturation: Option<(f64, f64)>,
    hue: Option<(f64, f64)>,
}

fn factor_range(what: &str, x: f64) -> Result<Option<(f64, f64)>> {
    if !(x >= 0.0 && x.is_finite()) {
        return Err(DataError::invalid("ColorJitter", format!("{what} strength must be finite and non-negative, got {x}")));
    }
    Ok((x > 0.0).then(|| ((1.0 - x).max(0.0), 1.0 + x)))
}

impl ColorJitter {
    /// Jitter with the given strengths (all ≥ 0, hue ≤ 0.5).
    pub fn new(brightness: f64, contrast: f64, saturation: f64, hue: f64) -> Result<Self> {
        if !(0.0..=0.5).contains(&hue) {
            return Err(DataError::invalid("ColorJitter", format!("hue strength must lie in [0, 0.5], got {hue}")));
        }
        Ok(ColorJitter {
            brightness: factor_range("brightness", brightness)?,
            contrast: factor_range("contrast", contrast)?,
            saturation: factor_range("saturation", saturation)?,
            hue: (hue > 0.0).then_some((-hue, hue)),
        })
    }

    /// SimCLR's jitter of strength `s`: brightness, contrast and saturation 0.8·s, hue 0.2·s.
    pub fn simclr(s: f64) -> Result<Self> {
        ColorJitter::new(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
    }
}

impl Transform for ColorJitter {
    fn apply(&self, mut img: Image, rng: &mut Generator) -> Result<Image> {
        // Order first, then the four factors, like torchvision's get_params.
        let order = rng.permutation(4);
        let mut draw = |r: Option<(f64, f64)>| r.map(|(lo, hi)| uniform(rng, lo, hi) as f32);
        let factors = [draw(self.brightness), draw(self.contrast), draw(self.saturation), draw(self.hue)];
        for k in order {
            match (k, factors[k]) {
                (0, Some(f)) => adjust_brightness(&mut img, f),
                (1, Some(f)) => adjust_contrast(&mut img, f),
                (2, Some(f)) => adjust_saturation(&mut img, f),
                (3, Some(f)) => adjust_hue(&mut img, f),
                _ => {}
            }
        }
        Ok(img)
    }
}
