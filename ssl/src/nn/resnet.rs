//! ResNets with torchvision's structure and parameter names (`conv1`, `bn1`,
//! `layer{1-4}.{j}.conv{k}`, `layer2.0.downsample.{0,1}`, `fc`), generalized to any input
//! channel count, stage widths and depths, and a CIFAR stem.

use super::batchnorm::BatchNorm;
use super::conv::{Conv2d, Conv2dConfig};
use super::linear::Linear;
use super::module::{join, Encoder, Entry, Module};
use tessera_autograd::{Result, Var};
use tessera_engine::Generator;

/// The residual block type: two 3×3 convs (ResNet-18/34) or 1×1–3×3–1×1 with a 4× wider
/// output (ResNet-50; the stride sits on the 3×3 conv as in torchvision, "v1.5").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Basic,
    Bottleneck,
}

impl BlockKind {
    /// Output channels per unit of stage width.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// The first layers before the residual stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stem {
    /// 7×7 conv, stride 2, padding 3, then 3×3 max-pool with stride 2 (ImageNet).
    ImageNet,
    /// 3×3 conv, stride 1, padding 1, no max-pool (CIFAR-sized and 28×28 inputs).
    Cifar,
}

/// Everything that shapes a [`ResNet`].
#[derive(Debug, Clone, PartialEq)]
pub struct ResNetConfig {
    pub block: BlockKind,
    /// Blocks per stage (`[2, 2, 2, 2]` for ResNet-18).
    pub depths: Vec<usize>,
    /// Width of each stage (`[64, 128, 256, 512]`); stage `i > 0` starts with stride 2.
    pub widths: Vec<usize>,
    /// Output channels of the stem conv.
    pub stem_width: usize,
    pub stem: Stem,
    pub in_channels: usize,
    /// `Some(n)`: a classifier `fc: Linear(feature_dim, n)`; `None`: `fc` is the identity and
    /// the network returns its pooled features (the SSL encoder).
    pub num_classes: Option<usize>,
    /// Zero the last BN's gamma in each block (torchvision's `zero_init_residual`).
    pub zero_init_residual: bool,
}

impl ResNetConfig {
    fn standard(block: BlockKind, depths: [usize; 4]) -> Self {
        ResNetConfig {
            block,
            depths: depths.to_vec(),
            widths: vec![64, 128, 256, 512],
            stem_width: 64,
            stem: Stem::ImageNet,
            in_channels: 3,
            num_classes: Some(1000),
            zero_init_residual: false,
        }
    }

    /// torchvision's `resnet18()`.
    pub fn resnet18() -> Self {
        Self::standard(BlockKind::Basic, [2, 2, 2, 2])
    }

    /// torchvision's `resnet34()`.
    pub fn resnet34() -> Self {
        Self::standard(BlockKind::Basic, [3, 4, 6, 3])
    }

    /// torchvision's `resnet50()`.
    pub fn resnet50() -> Self {
        Self::standard(BlockKind::Bottleneck, [3, 4, 6, 3])
    }

    /// The main job's encoder: a 16-channel 3×3 stem, no max-pool, one BasicBlock per stage
    /// with widths 16/32/64/128, 128-d pooled features, for 1×28×28 images.
    pub fn narrow() -> Self {
        ResNetConfig {
            block: BlockKind::Basic,
            depths: vec![1, 1, 1, 1],
            widths: vec![16, 32, 64, 128],
            stem_width: 16,
            stem: Stem::Cifar,
            in_channels: 1,
            num_classes: None,
            zero_init_residual: false,
        }
    }

    pub fn with_in_channels(mut self, c: usize) -> Self {
        self.in_channels = c;
        self
    }

    pub fn with_stem(mut self, stem: Stem) -> Self {
        self.stem = stem;
        self
    }

    pub fn with_classes(mut self, n: Option<usize>) -> Self {
        self.num_classes = n;
        self
    }

    /// Dimension of the pooled features.
    pub fn feature_dim(&self) -> usize {
        self.widths.last().copied().unwrap_or(self.stem_width) * self.block.expansion()
    }
}

/// One residual block: `relu(bn_k(conv_k(...relu(bn1(conv1(x)))...)) + shortcut(x))`, the
/// shortcut being `downsample = [1×1 conv, BN]` when the shape changes.
struct Block {
    convs: Vec<(Conv2d, BatchNorm)>,
    downsample: Option<(Conv2d, BatchNorm)>,
}

impl Block {
    fn new(kind: BlockKind, in_ch: usize, width: usize, stride: usize, zero_init: bool, gen: &mut Generator) -> Result<Block> {
        let out_ch = width * kind.expansion();
        let specs: Vec<(usize, usize, usize, usize)> = match kind {
            // (in, out, kernel, stride)
            BlockKind::Basic => vec![(in_ch, width, 3, stride), (width, width, 3, 1)],
            BlockKind::Bottleneck => vec![(in_ch, width, 1, 1), (width, width, 3, stride), (width, out_ch, 1, 1)],
        };
        let mut convs = Vec::with_capacity(specs.len());
        for (ci, co, k, s) in specs {
            let cfg = Conv2dConfig::new(ci, co, k).stride(s).padding(k / 2).bias(false);
            convs.push((Conv2d::new_kaiming_fan_out(cfg, gen)?, BatchNorm::new_2d(co)?));
        }
        if zero_init {
            if let Some(w) = convs.last().and_then(|(_, bn)| bn.weight.as_ref()) {
                w.var().set_value(w.value().zeros_like()?)?;
            }
        }
        let downsample = if stride != 1 || in_ch != out_ch {
            let cfg = Conv2dConfig::new(in_ch, out_ch, 1).stride(stride).bias(false);
            Some((Conv2d::new_kaiming_fan_out(cfg, gen)?, BatchNorm::new_2d(out_ch)?))
        } else {
            None
        };
        Ok(Block { convs, downsample })
    }
}

impl Module for Block {
    fn forward(&self, x: &Var) -> Result<Var> {
        let mut h = x.clone();
        let last = self.convs.len() - 1;
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            let pre = conv.forward(&h)?;
            // Every conv but the last is followed by BN + ReLU (one fused op).
            h = if i != last { bn.forward_relu(&pre)? } else { bn.forward(&pre)? };
        }
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward(&conv.forward(x)?)?,
            None => x.clone(),
        };
        h.add(&shortcut)?.relu()
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            conv.visit(&join(prefix, &format!("conv{}", i + 1)), f);
            bn.visit(&join(prefix, &format!("bn{}", i + 1)), f);
        }
        if let Some((conv, bn)) = &self.downsample {
            conv.visit(&join(prefix, "downsample.0"), f);
            bn.visit(&join(prefix, "downsample.1"), f);
        }
    }
}

/// A ResNet: input `[N, in_channels, H, W]`, output `[N, num_classes]` logits or, with
/// `num_classes = None`, `[N, feature_dim]` pooled features.
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    max_pool: bool,
    stages: Vec<Vec<Block>>,
    fc: Option<Linear>,
    config: ResNetConfig,
}

impl ResNet {
    /// A ResNet with torchvision's init: convs `kaiming_normal(fan_out, relu)`, BN ones and
    /// zeros, `fc` PyTorch's Linear default; seeded by `gen`.
    pub fn new(config: &ResNetConfig, gen: &mut Generator) -> Result<ResNet> {
        let bad = config.depths.len() != config.widths.len()
            || config.depths.is_empty()
            || config.widths.contains(&0)
            || config.in_channels == 0
            || config.stem_width == 0;
        if bad {
            let msg = format!("needs one positive width per stage and positive channel counts, got {config:?}");
            return Err(tessera_engine::Error::invalid("ResNet", msg).into());
        }
        let (k, s) = match config.stem {
            Stem::ImageNet => (7, 2),
            Stem::Cifar => (3, 1),
        };
        let stem_cfg = Conv2dConfig::new(config.in_channels, config.stem_width, k).stride(s).padding(k / 2).bias(false);
        let conv1 = Conv2d::new_kaiming_fan_out(stem_cfg, gen)?;
        let bn1 = BatchNorm::new_2d(config.stem_width)?;
        let mut in_ch = config.stem_width;
        let mut stages = Vec::with_capacity(config.depths.len());
        for (i, (&depth, &width)) in config.depths.iter().zip(&config.widths).enumerate() {
            let mut blocks = Vec::with_capacity(depth);
            for j in 0..depth {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                blocks.push(Block::new(config.block, in_ch, width, stride, config.zero_init_residual, gen)?);
                in_ch = width * config.block.expansion();
            }
            stages.push(blocks);
        }
        let fc = config.num_classes.map(|n| Linear::new(in_ch, n, true, gen)).transpose()?;
        Ok(ResNet { conv1, bn1, max_pool: config.stem == Stem::ImageNet, stages, fc, config: config.clone() })
    }

    /// Dimension of the pooled features (the encoder's output when `num_classes` is `None`).
    pub fn feature_dim(&self) -> usize {
        self.config.feature_dim()
    }

    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// The pooled features `[N, feature_dim]`, skipping `fc`.
    pub fn forward_features(&self, x: &Var) -> Result<Var> {
        let h = self.forward_map(x)?;
        let n = h.shape()[0];
        h.mean(&[2, 3], false)?.reshape_to(&[n, self.feature_dim()])
    }

    /// The last stage's feature map `[N, feature_dim, H/s, W/s]` before pooling (s = 8 with
    /// the CIFAR stem and four stages, 32 with the ImageNet stem): what dense heads read
    /// (colorization's per-pixel classifier).
    pub fn forward_map(&self, x: &Var) -> Result<Var> {
        let mut h = self.bn1.forward_relu(&self.conv1.forward(x)?)?;
        if self.max_pool {
            h = h.max_pool2d((3, 3), (2, 2), (1, 1))?;
        }
        for block in self.stages.iter().flatten() {
            h = block.forward(&h)?;
        }
        Ok(h)
    }
}

impl Module for ResNet {
    fn forward(&self, x: &Var) -> Result<Var> {
        let h = self.forward_features(x)?;
        match &self.fc {
            Some(fc) => fc.forward(&h),
            None => Ok(h),
        }
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.conv1.visit(&join(prefix, "conv1"), f);
        self.bn1.visit(&join(prefix, "bn1"), f);
        for (i, blocks) in self.stages.iter().enumerate() {
            for (j, block) in blocks.iter().enumerate() {
                block.visit(&join(prefix, &format!("layer{}.{j}", i + 1)), f);
            }
        }
        if let Some(fc) = &self.fc {
            fc.visit(&join(prefix, "fc"), f);
        }
    }
}

/// The pooled features, or the logits' width when the ResNet has a classifier.
impl Encoder for ResNet {
    fn output_dim(&self) -> usize {
        self.config.num_classes.unwrap_or_else(|| self.config.feature_dim())
    }
}
