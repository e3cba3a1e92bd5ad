//! The SimCLR augmentation pipeline (Chen et al. 2020, appendix A; lightly's
//! `SimCLRTransform`): random resized crop → horizontal flip → colour jitter (applied with a
//! probability) → random grayscale → optional Gaussian blur → optional solarization →
//! optional normalization.

use super::{
    ColorJitter, Compose, GaussianBlur, Normalize, RandomApply, RandomGrayscale, RandomHorizontalFlip, RandomResizedCrop, Solarize,
};
use crate::data::error::Result;

/// Parameters of [`simclr`]. Start from a preset ([`SimclrConfig::fashion_mnist`],
/// [`SimclrConfig::cifar`], [`SimclrConfig::imagenet`]) and adjust fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SimclrConfig {
    /// Output side (square crops).
    pub size: usize,
    /// Area fraction range of the random crop.
    pub scale: (f64, f64),
    /// Aspect ratio range of the random crop.
    pub ratio: (f64, f64),
    /// Probability of a horizontal flip.
    pub flip_p: f64,
    /// Colour jitter strengths: brightness, contrast, saturation, hue.
    pub jitter: [f64; 4],
    /// Probability of applying the colour jitter.
    pub jitter_p: f64,
    /// Probability of converting to grayscale (a no-op on 1-channel data).
    pub grayscale_p: f64,
    /// Whether to include the Gaussian blur.
    pub blur: bool,
    /// Probability of the blur when enabled.
    pub blur_p: f64,
    /// Blur sigma range; the kernel is 10% of `size`, made odd.
    pub blur_sigma: (f64, f64),
    /// Probability of solarization at 0.5 (0 disables it; BYOL uses 0.2 on its second view).
    pub solarize_p: f64,
    /// Per-channel mean and std applied last, if any.
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
}

impl SimclrConfig {
    /// Defaults for 28×28 Fashion-MNIST: crop scale (0.2, 1.0), flip 0.5, brightness and
    /// contrast jitter 0.4 with p 0.8 (saturation and hue off: the data is grayscale), no
    /// blur, no normalization.
    pub fn fashion_mnist() -> Self {
        SimclrConfig {
            size: 28,
            scale: (0.2, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip_p: 0.5,
            jitter: [0.4, 0.4, 0.0, 0.0],
            jitter_p: 0.8,
            grayscale_p: 0.0,
            blur: false,
            blur_p: 0.5,
            blur_sigma: (0.1, 2.0),
            solarize_p: 0.0,
            normalize: None,
        }
    }

    /// SimCLR's CIFAR-10 recipe at `size` (32 for CIFAR): scale (0.08, 1.0), jitter strength
    /// 0.5 with p 0.8, grayscale 0.2, no blur.
    pub fn cifar(size: usize) -> Self {
        SimclrConfig { size, scale: (0.08, 1.0), grayscale_p: 0.2, ..SimclrConfig::fashion_mnist() }.with_jitter_strength(0.5)
    }

    /// SimCLR's ImageNet recipe at `size`: scale (0.08, 1.0), jitter strength 1.0 with p 0.8,
    /// grayscale 0.2, blur with p 0.5.
    pub fn imagenet(size: usize) -> Self {
        SimclrConfig { blur: true, ..SimclrConfig::cifar(size) }.with_jitter_strength(1.0)
    }

    /// Sets the jitter to SimCLR's strength `s`: brightness, contrast, saturation 0.8·s and
    /// hue 0.2·s.
    pub fn with_jitter_strength(mut self, s: f64) -> Self {
        self.jitter = [0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s];
        self
    }
}

/// Builds the SimCLR pipeline: output images are C×`size`×`size` with the input's channel
/// count, values in [0, 1] unless `normalize` is set. Errors name an invalid parameter.
pub fn simclr(cfg: &SimclrConfig) -> Result<Compose> {
    let [b, c, s, h] = cfg.jitter;
    let mut p = Compose::new()
        .then(RandomResizedCrop::new((cfg.size, cfg.size), cfg.scale, cfg.ratio)?)
        .then(RandomHorizontalFlip::new(cfg.flip_p)?)
        .then(RandomApply::new(ColorJitter::new(b, c, s, h)?, cfg.jitter_p)?)
        .then(RandomGrayscale::new(cfg.grayscale_p)?);
    if cfg.blur {
        p = p.then(RandomApply::new(GaussianBlur::new((cfg.size / 10) | 1, cfg.blur_sigma)?, cfg.blur_p)?);
    }
    if cfg.solarize_p > 0.0 {
        p = p.then(RandomApply::new(Solarize::new(0.5)?, cfg.solarize_p)?);
    }
    if let Some((mean, std)) = &cfg.normalize {
        p = p.then(Normalize::new(mean.clone(), std.clone())?);
    }
    Ok(p)
}
