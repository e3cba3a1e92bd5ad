//! Turns a resolved [`Config`] into the run's pieces: datasets, encoder, method (from the
//! registry), loader (from the method's data recipe).

use super::config::Config;
use crate::data::{self, DataLoader, DataRecipe, Dataset, ImageLimits, LoaderConfig, SimclrConfig, Split};
use crate::methods::{self, BuildContext, Method};
use crate::nn::Module;
use std::path::Path;
use std::sync::Arc;
use tessera_engine::{Device, Generator};

/// Loads one split of the dataset a config names (`default`, `fashion-mnist:DIR`, `mnist:DIR`,
/// `cifar10:DIR`, `folder:DIR` with `DIR/train` and `DIR/test`, `pairs:DIR` with image–caption
/// pairs in `DIR/train` and `DIR/test`, `synthetic`: the synthetic colour set). `limits`
/// bound each image file of `folder:` and `pairs:` (see [`Config::data`]).
pub fn load_dataset(spec: &str, split: Split, limits: ImageLimits) -> crate::Result<Dataset> {
    let (kind, dir) = spec.split_once(':').map_or((spec, None), |(k, d)| (k, Some(d)));
    let need_dir = || dir.filter(|d| !d.is_empty()).ok_or_else(|| format!("dataset '{spec}' needs a folder: {kind}:DIR"));
    let ds = match kind {
        "default" if dir.is_none() => data::fashion_mnist_subset(split),
        "synthetic" if dir.is_none() => data::synthetic_split(split),
        "fashion-mnist" => data::load_fashion_mnist(need_dir()?, split),
        "mnist" => data::load_mnist(need_dir()?, split),
        "cifar10" => data::load_cifar10(need_dir()?, split),
        "folder" => {
            let sub = if split == Split::Train { "train" } else { "test" };
            data::load_image_folder(Path::new(need_dir()?).join(sub), data::FolderOptions { limits, ..Default::default() })
        }
        "pairs" => data::load_pairs_within(Path::new(need_dir()?).join(if split == Split::Train { "train" } else { "test" }), limits),
        _ => {
            return Err(format!(
                "unknown dataset '{spec}' (expected default, synthetic, fashion-mnist:DIR, mnist:DIR, cifar10:DIR, folder:DIR or pairs:DIR)"
            )
            .into())
        }
    };
    ds.map_err(crate::Error::msg)
}

/// Builds an encoder by name for images with `channels` channels of `side × side`, with
/// its architecture's default init (timm's, torchvision's); returns it with its feature
/// width. (A run's random-weight baseline is its method's own untrained encoder instead.)
pub fn build_encoder(cfg: &Config, channels: usize, side: usize, gen: &mut Generator) -> crate::Result<(Box<dyn Module>, usize)> {
    Ok(cfg.encoder_spec(channels, side)?.build(gen)?)
}

/// The method a config names, from the registry, built from the config's seed (the same
/// seed gives the same weights). `cfg` must be resolved ([`Config::resolve`]); `train` is
/// the training data, for methods built from its statistics; `run` the run folder being
/// resumed or evaluated (methods reload their own files from it).
pub fn build_method(cfg: &Config, channels: usize, side: usize, train: &Dataset, run: Option<&Path>) -> crate::Result<Box<dyn Method>> {
    let info = methods::find(&cfg.method)?;
    let spec = cfg.encoder_spec(channels, side)?;
    Ok((info.build)(&BuildContext {
        options: &cfg.method_options,
        encoder: &spec,
        seed: cfg.seed,
        batch_size: cfg.batch_size,
        train: Some(train),
        run,
    })?)
}

/// The loader a method's recipe asks for, with the config's augmentation settings.
pub fn build_loader(cfg: &Config, train: Arc<Dataset>, norm: (f32, f32), recipe: &DataRecipe) -> crate::Result<DataLoader> {
    let [c, h, _] = train.image_shape();
    let aug = augment_config(cfg, c, h, norm);
    let lc = LoaderConfig { batch_size: cfg.batch_size, shuffle: true, drop_last: true, seed: cfg.seed, ..LoaderConfig::default() };
    recipe.loader(train, &aug, lc).map_err(crate::Error::msg)
}

/// The contrastive augmentation a config asks for, on `c`-channel `h × h` images normalized
/// by `norm` (the training loader's, and the diagnostics' positive pairs).
pub fn augment_config(cfg: &Config, c: usize, h: usize, norm: (f32, f32)) -> SimclrConfig {
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
    aug
}

/// The configured device, checked before any work starts: `cuda` needs a driver and a GPU.
pub(crate) fn device_of(cfg: &Config) -> crate::Result<Device> {
    match cfg.device.as_str() {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "cuda:0" if !tessera_engine::cuda::is_available() => {
            Err("device cuda: no CUDA driver or GPU was found on this machine; use --device cpu".into())
        }
        d @ ("cuda" | "cuda:0") => d.parse().map_err(crate::Error::msg),
        other => Err(format!("unknown device '{other}' (expected cpu or cuda)").into()),
    }
}

/// The first `n` images (all when `n` is 0).
fn limit(ds: Dataset, n: usize) -> Dataset {
    if n == 0 || n >= ds.len() {
        ds
    } else {
        ds.take(n)
    }
}

/// The train and test splits of the config's dataset, each cut to its configured size.
pub fn load_splits(cfg: &Config) -> crate::Result<(Dataset, Dataset)> {
    let load = |split, n| Ok::<_, crate::Error>(limit(load_dataset(&cfg.dataset, split, cfg.data.image_limits())?, n));
    Ok((load(Split::Train, cfg.train_images)?, load(Split::Test, cfg.test_images)?))
}
