//! Encoders by name: what `--encoder` accepts, built for a given image shape. Methods get
//! their backbones from here (and MoCo its momentum copy), so every method offers the same
//! list.

use super::module::{Entry, Module};
use super::resnet::{ResNet, ResNetConfig, Stem};
use super::vit::{Pool, VisionTransformer, VitConfig};
use tessera_engine::Generator;

/// Names `--encoder` accepts.
pub const ENCODERS: &[&str] = &["resnet-narrow", "resnet18", "resnet34", "resnet50", "vit-tiny", "vit-small"];

/// How to build a named encoder for images of `channels × side × side`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderSpec {
    pub name: String,
    pub channels: usize,
    pub side: usize,
    /// ViT patch size; 0 picks it from the image side ([`auto_patch`]).
    pub patch_size: usize,
    /// ViT pooling: the class token or the mean of the patch tokens.
    pub pool: Pool,
}

/// The patch size a ViT uses when none is configured: 4 up to 32×32 images (49 patches on
/// Fashion-MNIST, 64 on CIFAR), 8 up to 64×64, 16 beyond (ImageNet's ViT-*/16).
pub fn auto_patch(side: usize) -> usize {
    match side {
        0..=32 => 4,
        33..=64 => 8,
        _ => 16,
    }
}

/// Whether `name` is a Vision Transformer (they take `patch_size` and `pool`).
pub fn is_vit(name: &str) -> bool {
    name.starts_with("vit-")
}

/// Checks an `--encoder` name; the error lists the available ones.
pub fn check_encoder_name(name: &str) -> Result<(), String> {
    if ENCODERS.contains(&name) {
        Ok(())
    } else {
        Err(format!("unknown encoder '{name}' (available: {})", ENCODERS.join(", ")))
    }
}

/// Parses `--pool`: `cls` (the class token) or `mean` (the mean of the patch tokens).
pub fn parse_pool(s: &str) -> Result<Pool, String> {
    match s {
        "cls" | "token" => Ok(Pool::Token),
        "mean" | "avg" => Ok(Pool::Mean),
        other => Err(format!("unknown pool '{other}' (expected cls or mean)")),
    }
}

impl EncoderSpec {
    /// Checks the name and, for a ViT, that the patch divides the image; one readable line.
    pub fn validate(&self) -> Result<(), String> {
        check_encoder_name(&self.name)?;
        if is_vit(&self.name) {
            let p = self.patch();
            if p == 0 || !self.side.is_multiple_of(p) {
                return Err(format!("ViT patch size {p} does not divide the image side {} (set patch_size to a divisor)", self.side));
            }
        }
        Ok(())
    }

    /// The patch size in effect.
    pub fn patch(&self) -> usize {
        if self.patch_size == 0 {
            auto_patch(self.side)
        } else {
            self.patch_size
        }
    }

    /// The Vision Transformer this spec names (`None` for a ResNet), for methods that need
    /// the ViT itself (MAE and SimMIM feed it patches and masks). Call [`validate`](Self::validate) first.
    pub fn vit_config(&self) -> Option<VitConfig> {
        if !is_vit(&self.name) {
            return None;
        }
        let base =
            if self.name == "vit-tiny" { VitConfig::tiny(self.side, self.patch()) } else { VitConfig::small(self.side, self.patch()) };
        Some(VitConfig { pool: self.pool, ..base.with_in_channels(self.channels) })
    }

    /// Builds the encoder (seeded by `gen`, f32, on the host); returns it with the width of
    /// its features.
    pub fn build(&self, gen: &mut Generator) -> Result<(Box<dyn Module>, usize), String> {
        self.validate()?;
        let e = |e: tessera_autograd::Error| e.to_string();
        if let Some(cfg) = self.vit_config() {
            let vit = VisionTransformer::new(&cfg, gen).map_err(e)?;
            let dim = vit.feature_dim();
            return Ok((Box::new(vit), dim));
        }
        let net = self.build_resnet(self.channels, gen)?;
        let dim = net.feature_dim();
        Ok((Box::new(net), dim))
    }

    /// Builds a ResNet encoder by name for `channels` input channels (methods that read its
    /// feature map, or feed it another view of the images than the dataset's channels); an
    /// error for a ViT name.
    pub fn build_resnet(&self, channels: usize, gen: &mut Generator) -> Result<ResNet, String> {
        self.validate()?;
        if is_vit(&self.name) {
            return Err(format!(
                "encoder '{}' is not a ResNet (this method needs one: resnet-narrow, resnet18, resnet34 or resnet50)",
                self.name
            ));
        }
        let stem = if self.side <= 64 { Stem::Cifar } else { Stem::ImageNet };
        let cfg = match self.name.as_str() {
            "resnet-narrow" => ResNetConfig::narrow(),
            "resnet18" => ResNetConfig::resnet18(),
            "resnet34" => ResNetConfig::resnet34(),
            _ => ResNetConfig::resnet50(),
        }
        .with_in_channels(channels)
        .with_stem(stem)
        .with_classes(None);
        ResNet::new(&cfg, gen).map_err(|e| e.to_string())
    }
}

/// Freezes the parameters whose names start with `prefix` (MoCo v3's fixed random patch
/// projection: `patch_embed.`); returns how many were frozen.
pub fn freeze_prefix(module: &dyn Module, prefix: &str) -> usize {
    let mut n = 0;
    module.visit("", &mut |name, e| {
        if let (Entry::Param(p), true) = (e, name.starts_with(prefix)) {
            p.set_frozen(true);
            n += 1;
        }
    });
    n
}
