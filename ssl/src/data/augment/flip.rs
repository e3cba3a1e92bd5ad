//! Mirror flips.

use tessera_engine::Generator;

use super::{check_probability, Transform};
use crate::data::error::Result;
use crate::data::image::Image;

/// The image mirrored left-right (an involution: applying it twice gives the input back).
pub fn hflip(img: &Image) -> Image {
    let w = img.width();
    let mut out = img.clone();
    for (dst, src) in out.data_mut().chunks_exact_mut(w).zip(img.data().chunks_exact(w)) {
        for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
            *d = *s;
        }
    }
    out
}

/// The image mirrored top-bottom.
pub fn vflip(img: &Image) -> Image {
    let (h, w) = (img.height(), img.width());
    let mut out = img.clone();
    for ch in 0..img.channels() {
        for y in 0..h {
            let src = &img.data()[(ch * h + h - 1 - y) * w..(ch * h + h - y) * w];
            out.data_mut()[(ch * h + y) * w..(ch * h + y + 1) * w].copy_from_slice(src);
        }
    }
    out
}

/// Mirrors the image left-right with probability `p`.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomHorizontalFlip {
    p: f64,
}

impl RandomHorizontalFlip {
    /// Flip with probability `p` in [0, 1].
    pub fn new(p: f64) -> Result<Self> {
        check_probability("RandomHorizontalFlip", p)?;
        Ok(RandomHorizontalFlip { p })
    }
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        Ok(if rng.next_f64() < self.p { hflip(&img) } else { img })
    }
}
