//! The four rotations of RotNet (Gidaris et al. 2018): 0°, 90°, 180°, 270°.

use tessera_engine::{Generator, Tensor};

use super::first_view;
use crate::data::error::{DataError, Result};
use crate::data::image::Image;
use crate::data::recipe::{BatchTask, TrainBatch};

/// `img` rotated by `k` quarter turns counter-clockwise (`k` taken mod 4), like
/// `torch.rot90(img, k, dims=(1, 2))` on C×H×W: the output is C×W×H for odd `k`.
pub fn rot90(img: &Image, k: usize) -> Image {
    let [c, h, w] = img.shape();
    let k = k % 4;
    let (oh, ow) = if k % 2 == 1 { (w, h) } else { (h, w) };
    let mut out = Image::zeros(c, oh, ow);
    let src = img.data();
    let dst = out.data_mut();
    for ch in 0..c {
        let (s, d) = (&src[ch * h * w..(ch + 1) * h * w], &mut dst[ch * h * w..(ch + 1) * h * w]);
        for i in 0..oh {
            for j in 0..ow {
                let (y, x) = match k {
                    0 => (i, j),
                    1 => (j, w - 1 - i),
                    2 => (h - 1 - i, w - 1 - j),
                    _ => (h - 1 - j, i),
                };
                d[i * ow + j] = s[y * w + x];
            }
        }
    }
    out
}

/// The RotNet batch of a `[B, C, S, S]` view buffer: every image in its four rotations,
/// giving `[4B, C, S, S]` (image-major: rotations 0..4 of image 0, then of image 1, ...) and
/// the labels `k` (i64). Images must be square so all rotations share a shape.
pub fn rotation_batch(data: &[f32], shape: [usize; 4]) -> Result<(Vec<f32>, Vec<i64>)> {
    let [b, c, h, w] = shape;
    if c == 0 || h == 0 {
        return Err(DataError::invalid("rotation_batch", format!("image dimensions must be positive, got {shape:?}")));
    }
    if h != w {
        return Err(DataError::invalid("rotation_batch", format!("images must be square, got {h}x{w}")));
    }
    if data.len() != b * c * h * w {
        return Err(DataError::invalid("rotation_batch", format!("{} values for shape {shape:?}", data.len())));
    }
    let n = c * h * w;
    let mut out = Vec::with_capacity(4 * data.len());
    let mut labels = Vec::with_capacity(4 * b);
    for chunk in data.chunks_exact(n) {
        let img = Image::new(c, h, w, chunk.to_vec())?;
        for k in 0..4 {
            out.extend_from_slice(rot90(&img, k).data());
            labels.push(k as i64);
        }
    }
    Ok((out, labels))
}

/// RotNet's batch task: the first view `[B, C, S, S]` becomes `[4B, C, S, S]` (every image in
/// its four rotations, image-major) with the rotation labels `[4B]` (i64) as targets. It
/// draws nothing at random.
#[derive(Debug, Clone, Copy, Default)]
pub struct RotationTask;

impl BatchTask for RotationTask {
    fn apply(&self, mut batch: TrainBatch, _rng: &Generator) -> Result<TrainBatch> {
        let (data, shape) = first_view(&batch, "RotationTask")?;
        let (rotated, labels) = rotation_batch(&data, shape)?;
        let [b, c, h, w] = shape;
        batch.views = vec![Tensor::from_vec(rotated, &[4 * b, c, h, w])?];
        batch.targets = Some(Tensor::from_vec(labels, &[4 * b])?);
        Ok(batch)
    }
}
