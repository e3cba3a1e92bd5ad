//! Features for evaluation: a frozen encoder's outputs over a whole dataset (eval mode, no
//! graph), and raw pixels as the baseline every report shows.

use crate::data::Dataset;
use crate::nn::Module;
use tessera_autograd::{no_grad, Result, Var};
use tessera_engine::{Device, Tensor};

/// The dataset's images as `[N, C, H, W]` f32 in `[0, 1]`, normalized per channel by `norm`
/// (mean, std) when given, in batches of `batch`.
pub fn image_batches(ds: &Dataset, batch: usize, norm: Option<(f32, f32)>) -> impl Iterator<Item = tessera_engine::Result<Tensor>> + '_ {
    let [c, h, w] = ds.image_shape();
    (0..ds.len().div_ceil(batch.max(1))).map(move |b| {
        let lo = b * batch;
        let hi = (lo + batch).min(ds.len());
        let mut data = Vec::with_capacity((hi - lo) * c * h * w);
        for i in lo..hi {
            data.extend(ds.pixels(i).iter().map(|&p| {
                let v = p as f32 / 255.0;
                norm.map_or(v, |(m, s)| (v - m) / s)
            }));
        }
        Tensor::from_vec(data, &[hi - lo, c, h, w])
    })
}

/// Encoder features `[N, D]` of every image (the encoder is put in eval mode and restored).
pub fn encode_dataset(encoder: &dyn Module, ds: &Dataset, batch: usize, norm: Option<(f32, f32)>) -> Result<Tensor> {
    encode_batches(encoder, image_batches(ds, batch, norm))
}

/// Encoder features `[N, D]` of images already made into a tensor `[N, C, H, W]` (augmented
/// views), in batches of `batch`.
pub fn encode_images(encoder: &dyn Module, images: &Tensor, batch: usize) -> Result<Tensor> {
    let n = images.shape()[0];
    let batch = batch.max(1);
    encode_batches(encoder, (0..n.div_ceil(batch)).map(|b| images.narrow(0, b * batch, batch.min(n - b * batch))))
}

/// Runs the encoder over `batches` in eval mode without a graph (the mode is restored).
fn encode_batches(encoder: &dyn Module, batches: impl Iterator<Item = tessera_engine::Result<Tensor>>) -> Result<Tensor> {
    let was_training = encoder.is_training();
    encoder.set_training(false);
    let _g = no_grad();
    let mut parts = Vec::new();
    // Batches go to the encoder's device; features come back to the host, where the
    // evaluation protocols run.
    let device = encoder.device();
    for x in batches {
        parts.push(encoder.forward(&Var::constant(x?.to_device(device)?))?.value().to_device(Device::Cpu)?);
    }
    encoder.set_training(was_training);
    let refs: Vec<&Tensor> = parts.iter().collect();
    Ok(Tensor::cat(&refs, 0)?)
}

/// Raw pixels `[N, C·H·W]` in `[0, 1]`: the baseline.
pub fn pixel_features(ds: &Dataset) -> tessera_engine::Result<Tensor> {
    let [c, h, w] = ds.image_shape();
    let data: Vec<f32> = (0..ds.len()).flat_map(|i| ds.pixels(i).iter().map(|&p| p as f32 / 255.0)).collect();
    Tensor::from_vec(data, &[ds.len(), c * h * w])
}
