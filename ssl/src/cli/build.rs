//! Turns a resolved [`Config`] into the run's pieces: datasets, encoder, method, loader.

use super::config::Config;
use crate::data::{self, DataLoader, Dataset, LoaderConfig, SimclrConfig, Split};
use crate::methods::{Method, SimClr};
use crate::nn::Module;
use crate::nn::{ResNet, ResNetConfig, Stem};
use std::path::Path;
use std::sync::Arc;
use tessera_engine::Generator;

/// Loads one split of the dataset a config names (`default`, `fashion-mnist:DIR`, `mnist:DIR`,
/// `cifar10:DIR`, `folder:DIR` with `DIR/train` and `DIR/test`).
pub fn load_dataset(spec: &str, split: Split) -> Result<Dataset, String> {
    let (kind, dir) = spec.split_once(':').map_or((spec, None), |(k, d)| (k, Some(d)));
    let need_dir = || dir.filter(|d| !d.is_empty()).ok_or_else(|| format!("dataset '{spec}' needs a folder: {kind}:DIR"));
    let ds = match kind {
        "default" if dir.is_none() => data::fashion_mnist_subset(split),
        "fashion-mnist" => data::load_fashion_mnist(need_dir()?, split),
        "mnist" => data::load_mnist(need_dir()?, split),
        "cifar10" => data::load_cifar10(need_dir()?, split),
        "folder" => {
            let sub = if split == Split::Train { "train" } else { "test" };
            data::load_image_folder(Path::new(need_dir()?).join(sub), data::FolderOptions::default())
        }
        _ => return Err(format!("unknown dataset '{spec}' (expected default, fashion-mnist:DIR, mnist:DIR, cifar10:DIR or folder:DIR)")),
    };
    ds.map_err(|e| e.to_string())
}

/// Names of the encoders `--encoder` accepts.
pub const ENCODERS: &[&str] = &["resnet-narrow", "resnet18", "resnet34", "resnet50"];

/// Builds an encoder for images with `channels` channels; returns it with its feature width.
pub fn build_encoder(name: &str, channels: usize, side: usize, gen: &mut Generator) -> Result<(Box<dyn Module>, usize), String> {
    let stem = if side <= 64 { Stem::Cifar } else { Stem::ImageNet };
    let cfg = match name {
        "resnet-narrow" => ResNetConfig::narrow(),
        "resnet18" => ResNetConfig::resnet18(),
        "resnet34" => ResNetConfig::resnet34(),
        "resnet50" => ResNetConfig::resnet50(),
        _ => return Err(format!("unknown encoder '{name}' (available: {})", ENCODERS.join(", "))),
    }
    .with_in_channels(channels)
    .with_stem(stem)
    .with_classes(None);
    let net = ResNet::new(&cfg, gen).map_err(|e| e.to_string())?;
    let dim = net.feature_dim();
    Ok((Box::new(net), dim))
}

/// The method a config names, built from a seed (the same seed gives the same weights).
pub fn build_method(cfg: &Config, channels: usize, side: usize) -> Result<Box<dyn Method>, String> {
    let mut gen = Generator::new(cfg.seed);
    let (encoder, dim) = build_encoder(&cfg.encoder, channels, side, &mut gen)?;
    match cfg.method.as_str() {
        "simclr" => {
            Ok(Box::new(SimClr::new(encoder, dim, cfg.proj_hidden, cfg.proj_out, cfg.temperature, &mut gen).map_err(|e| e.to_string())?))
        }
        other => Err(format!("unknown method '{other}' (available: simclr)")),
    }
}

/// Mean and standard deviation of every pixel of a dataset, in [0, 1] units.
pub fn pixel_stats(ds: &Dataset) -> (f32, f32) {
    let (mut s, mut ss, mut n) = (0f64, 0f64, 0f64);
    for i in 0..ds.len() {
        for &p in ds.pixels(i) {
            let v = p as f64 / 255.0;
            s += v;
            ss += v * v;
            n += 1.0;
        }
    }
    let mean = s / n.max(1.0);
    (mean as f32, ((ss / n.max(1.0) - mean * mean).max(1e-12)).sqrt() as f32)
}

/// The SimCLR view loader for a config.
pub fn build_loader(cfg: &Config, train: Arc<Dataset>, norm: (f32, f32), views: usize) -> Result<DataLoader, String> {
    let [c, h, _] = train.image_shape();
    let mut aug = SimclrConfig { size: h, ..SimclrConfig::fashion_mnist() }.with_jitter_strength(cfg.augment.jitter_strength / 0.8);
    if c == 1 {
        aug.jitter = [cfg.augment.jitter_strength, cfg.augment.jitter_strength, 0.0, 0.0];
    }
    aug.scale = (cfg.augment.crop_scale_min, 1.0);
    aug.flip_p = cfg.augment.flip_p;
    aug.jitter_p = cfg.augment.jitter_p;
    aug.grayscale_p = cfg.augment.grayscale_p;
    aug.blur = cfg.augment.blur;
    aug.normalize = Some((vec![norm.0; c], vec![norm.1; c]));
    let pipeline = data::simclr(&aug).map_err(|e| e.to_string())?;
    let lc = LoaderConfig { batch_size: cfg.batch_size, shuffle: true, drop_last: true, seed: cfg.seed, ..LoaderConfig::default() };
    DataLoader::with_views(train, Arc::new(pipeline), views, lc).map_err(|e| e.to_string())
}
