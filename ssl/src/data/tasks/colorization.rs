//! Colorization's batch task: the ab targets of each image, at the resolution of the
//! model's per-pixel classifier, soft-encoded over the bins of a [`ColourPrior`](super::ColourPrior).

use rayon::prelude::*;
use tessera_engine::{Generator, Tensor};

use super::first_view;
use super::lab::{rgb_to_lab, AbQuantizer};
use crate::data::error::{DataError, Result};
use crate::data::image::Image;
use crate::data::recipe::{BatchTask, TrainBatch};

/// Builds `targets` `[B, side, side, Q]` (f32, pixel-major, each pixel's soft encoding over
/// the Q bins summing to 1) from the first view (normalized sRGB `[B, 3, S, S]`), which
/// stays the batch's input: the model takes its L channel itself.
#[derive(Debug, Clone)]
pub struct ColorizationTask {
    /// The bins targets are encoded over.
    pub quantizer: AbQuantizer,
    /// (mean, std) the view was normalized with, undone to get sRGB back.
    pub norm: (f32, f32),
    /// Side of the target grid (the classifier's output side).
    pub side: usize,
}

/// `img` (one plane) brought to `side`×`side`: the mean of each block when the side divides
/// evenly (no aliasing), bilinear otherwise.
pub fn downsample(img: &Image, side: usize) -> Result<Image> {
    let [c, h, w] = img.shape();
    if side == 0 || h % side != 0 || w % side != 0 {
        return img.resize(side, side);
    }
    let (fy, fx) = (h / side, w / side);
    let mut out = vec![0.0f32; c * side * side];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                out[(ch * side + y / fy) * side + x / fx] += img.at(ch, y, x) / (fy * fx) as f32;
            }
        }
    }
    Image::new(c, side, side, out)
}

/// The sRGB image in [0, 1] of a normalized `[3, H, W]` slice.
pub fn denormalize(px: &[f32], shape: [usize; 3], norm: (f32, f32)) -> Result<Image> {
    let [c, h, w] = shape;
    Image::new(c, h, w, px.iter().map(|v| (v * norm.1 + norm.0).clamp(0.0, 1.0)).collect())
}

impl BatchTask for ColorizationTask {
    fn apply(&self, mut batch: TrainBatch, _rng: &Generator) -> Result<TrainBatch> {
        let (data, [b, c, h, w]) = first_view(&batch, "ColorizationTask")?;
        if c != 3 {
            return Err(DataError::invalid("ColorizationTask", format!("needs colour images (3 channels), got {c}")));
        }
        let q = self.quantizer.len();
        let per_image: Vec<Vec<f32>> = data
            .par_chunks_exact(c * h * w)
            .map(|px| {
                let lab = downsample(&rgb_to_lab(&denormalize(px, [c, h, w], self.norm)?)?, self.side)?;
                let soft = self.quantizer.soft_encode(&lab)?;
                let mut dense = vec![0.0f32; self.side * self.side * q];
                for p in 0..self.side * self.side {
                    for j in 0..soft.k {
                        dense[p * q + soft.bins[p * soft.k + j] as usize] += soft.weights[p * soft.k + j];
                    }
                }
                Ok(dense)
            })
            .collect::<Result<_>>()?;
        batch.targets = Some(Tensor::from_vec(per_image.concat(), &[b, self.side, self.side, q])?);
        Ok(batch)
    }
}
