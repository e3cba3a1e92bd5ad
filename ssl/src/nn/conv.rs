//! 2-D convolution (`nn.Conv2d`).

use super::init;
use super::module::{join, Entry, Module, Param};
use tessera_autograd::{Result, Var};
use tessera_engine::{DType, Generator, Pair, Tensor};

/// Convolution of `x [N, Cin, H, W]` with `weight [Cout, Cin/groups, kh, kw]` and an optional
/// `bias [Cout]`; output `[N, Cout, H', W']` with PyTorch's size rule.
pub struct Conv2d {
    pub weight: Param,
    pub bias: Option<Param>,
    pub stride: Pair,
    pub padding: Pair,
    pub dilation: Pair,
    pub groups: usize,
}

/// Shape and hyperparameters of a [`Conv2d`] (square kernels; build others with
/// [`Conv2d::from_tensors`]).
#[derive(Debug, Clone, Copy)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
}

impl Conv2dConfig {
    /// A `k×k` convolution with stride 1, no padding and a bias (PyTorch's defaults).
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Conv2dConfig { in_channels, out_channels, kernel, stride: 1, padding: 0, bias: true }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = p;
        self
    }
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }
    fn weight_shape(&self) -> [usize; 4] {
        [self.out_channels, self.in_channels, self.kernel, self.kernel]
    }
}

impl Conv2d {
    /// PyTorch's default init (weight and bias uniform in `±1/√fan_in`), in f32.
    pub fn new(cfg: Conv2dConfig, gen: &mut Generator) -> Result<Conv2d> {
        let w = init::kaiming_uniform_default(gen, &cfg.weight_shape(), DType::F32)?;
        let fan_in = init::fans(&cfg.weight_shape()).0;
        let b = if cfg.bias { Some(init::default_bias(gen, fan_in, cfg.out_channels, DType::F32)?) } else { None };
        Conv2d::from_tensors(w, b, (cfg.stride, cfg.stride), (cfg.padding, cfg.padding), 1)
    }

    /// torchvision ResNet's init: `kaiming_normal_(fan_out, relu)`, no bias.
    pub fn new_kaiming_fan_out(cfg: Conv2dConfig, gen: &mut Generator) -> Result<Conv2d> {
        let w = init::kaiming_normal_fan_out(gen, &cfg.weight_shape(), DType::F32)?;
        let b = if cfg.bias { Some(Tensor::zeros(&[cfg.out_channels], DType::F32)?) } else { None };
        Conv2d::from_tensors(w, b, (cfg.stride, cfg.stride), (cfg.padding, cfg.padding), 1)
    }

    /// A layer holding these values; `weight [Cout, Cin/groups, kh, kw]`, `bias [Cout]`.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, stride: Pair, padding: Pair, groups: usize) -> Result<Conv2d> {
        if weight.rank() != 4 || groups == 0 || bias.as_ref().is_some_and(|b| b.shape() != [weight.shape()[0]]) {
            let b = bias.as_ref().map_or(vec![], |b| b.shape().to_vec());
            let hint = "weight must be [Cout, Cin/groups, kh, kw], bias [Cout], groups positive";
            return Err(tessera_engine::Error::shapes_hint("Conv2d", weight.shape(), &b, hint).into());
        }
        Ok(Conv2d { weight: Param::new(weight)?, bias: bias.map(Param::new).transpose()?, stride, padding, dilation: (1, 1), groups })
    }

    pub fn out_channels(&self) -> usize {
        self.weight.value().shape()[0]
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        let b = self.bias.as_ref().map(Param::get);
        x.conv2d(&self.weight.get(), b.as_ref(), self.stride, self.padding, self.dilation, self.groups)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(&join(prefix, "weight"), Entry::Param(&self.weight));
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), Entry::Param(b));
        }
    }
}
