//! Colorful image colorization (Zhang, Isola, Efros 2016): the encoder sees only the
//! lightness L of CIE Lab; a per-pixel classifier predicts each pixel's ab colour as a
//! distribution over the ab bins the training data occupies, trained with soft-encoded
//! targets and class rebalancing; predictions are decoded by the annealed mean.
//!
//! ```text
//! L, ab = lab(x)                                  # the encoder's input is L only
//! Z = soft_encode(downsample(ab))                 # 5 nearest bins, Gaussian σ = 5
//! Ẑ = softmax(head(f_map(L)))                     # per-pixel distribution over Q bins
//! loss = mean_pixels w[argmax Z] · CE(Ẑ, Z)       # w: rebalancing weights (λ = 0.5)
//! ab_pred = annealed_mean(Ẑ, T = 0.38)            # for the pictures
//! ```
//!
//! The bins, the smoothed prior and the weights are computed from the training data when the
//! method is built and kept as buffers (`ab_bins`, `ab_prior`, `ab_weights`), with the
//! normalization the encoder undoes to find L (`encoder.input_norm`): the checkpoint holds
//! them bit for bit. The evaluated encoder takes the dataset's RGB images like every other
//! method's and looks only at their L channel.

use std::rc::Rc;
use std::sync::Arc;

use super::options::{parse_options, positive, resolve_options, unit_interval, MethodOptions, OptionsContext};
use super::pretext::{mean_where, pretext_view};
use super::{
    colorization_loss, Backbone, BuildContext, DataRecipe, Family, ImageGrid, Method, MethodInfo, Preset, StepContext, StepOutput,
    TrainBatch, ViewAugment,
};
use crate::data::tasks::lab::rgb_to_lab_pixel;
use crate::data::tasks::{denormalize, lab_to_rgb, rgb_to_lab, AbQuantizer, ColorizationTask, ColourPrior};
use crate::data::Image;
use crate::nn::{join, Buffer, Conv2d, Conv2dConfig, Entry, Module, ResNet};
use serde::{Deserialize, Serialize};
use tessera_autograd::{no_grad, Result, Var};
use tessera_engine::{DType, Device, Error, Generator, Tensor};

/// Colorization's registry entry.
pub const INFO: MethodInfo = MethodInfo {
    name: "colorization",
    family: Family::Pretext,
    paper: "Zhang, Isola, Efros 2016, Colorful Image Colorization",
    default_encoder: "resnet-narrow",
    presets: &[Preset {
        // `default` maps to the synthetic colour set (the preset's dataset); asking for the
        // embedded Fashion-MNIST by name (`--dataset default`) or another greyscale set stops
        // at build time with the colour message.
        datasets: &["default", "synthetic", "cifar10", "folder", "fashion-mnist", "mnist"],
        file: "colorization-synthetic.toml",
        toml: include_str!("../../../configs/colorization-synthetic.toml"),
    }],
    resolve: |t, c| resolve_options::<ColorizationOptions>("colorization", t, c),
    build,
};

/// The `[colorization]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColorizationOptions {
    /// σ (ab units) of the Gaussian that smooths the empirical bin distribution (5).
    pub prior_sigma: f64,
    /// Weight λ of the uniform distribution mixed into the prior before inverting it (0.5).
    pub lambda: f64,
    /// Temperature T of the annealed mean that decodes predictions (0.38).
    pub temperature: f64,
    /// Each cell of the encoder's last feature map predicts `upscale × upscale` pixels of the
    /// target grid (2: an 8×8 grid on 32×32 images, a quarter of the side as in the paper).
    pub upscale: usize,
    /// The images before conversion: `plain` or `light` (random resized crop and flip).
    pub augment: String,
}

impl Default for ColorizationOptions {
    fn default() -> Self {
        ColorizationOptions { prior_sigma: 5.0, lambda: 0.5, temperature: 0.38, upscale: 2, augment: "plain".into() }
    }
}

impl MethodOptions for ColorizationOptions {
    fn validate(&self, _: &OptionsContext) -> std::result::Result<(), String> {
        positive("prior_sigma", self.prior_sigma)?;
        unit_interval("lambda", self.lambda)?;
        if self.lambda == 0.0 {
            return Err("lambda must be above 0 (at 0 a bin the data never shows would get an infinite weight)".into());
        }
        positive("temperature", self.temperature)?;
        if !(1..=8).contains(&self.upscale) {
            return Err(format!("upscale must be in 1..=8 (got {})", self.upscale));
        }
        pretext_view(&self.augment).map(|_| ())
    }
}

/// Datasets with colour images, for the message a greyscale dataset gets.
const COLOUR_DATASETS: &str = "synthetic (the default), cifar10:DIR or folder:DIR";

fn build(ctx: &BuildContext) -> std::result::Result<Box<dyn Method>, String> {
    let o: ColorizationOptions = parse_options("colorization", ctx.options)?;
    if ctx.encoder.channels != 3 {
        return Err(format!(
            "colorization needs colour images, and this dataset has {} channel(s); use a dataset with colour: {COLOUR_DATASETS}",
            ctx.encoder.channels
        ));
    }
    let train = ctx.train.ok_or("colorization computes its ab bins and weights from the training data, and none was given")?;
    let prior = ColourPrior::from_dataset(train, o.prior_sigma, o.lambda).map_err(|e| e.to_string())?;
    let mut gen = Generator::new(ctx.seed);
    let encoder = Rc::new(LumaEncoder::new(ctx.encoder.build_resnet(1, &mut gen)?, train.pixel_stats()).map_err(|e| e.to_string())?);
    Colorization::new(encoder, &prior, &o, ctx.encoder.side, &mut gen).map(|m| Box::new(m) as Box<dyn Method>).map_err(|e| e.to_string())
}

/// A ResNet over the lightness of RGB images: its input is normalized sRGB `[N, 3, H, W]`
/// (as the loader and evaluation make it), from which it computes `(L − 50) / 50` on the host
/// (the input needs no gradient) and runs the network on that one channel.
pub struct LumaEncoder {
    net: ResNet,
    /// (mean, std) the RGB input was normalized with, f32 `[2]`.
    input_norm: Buffer,
}

impl LumaEncoder {
    pub fn new(net: ResNet, norm: (f32, f32)) -> Result<LumaEncoder> {
        Ok(LumaEncoder { net, input_norm: Buffer::new(Tensor::from_vec(vec![norm.0, norm.1], &[2])?) })
    }

    /// The (mean, std) the encoder undoes.
    pub fn norm(&self) -> Result<(f32, f32)> {
        let v = self.input_norm.get().to_vec::<f32>()?;
        Ok((v[0], v[1]))
    }

    /// `(L − 50) / 50` `[N, 1, H, W]` of normalized sRGB `x [N, 3, H, W]`, on x's device.
    pub fn lightness(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape().to_vec();
        if s.len() != 4 || s[1] != 3 {
            return Err(Error::invalid("LumaEncoder", format!("needs RGB images [N, 3, H, W], got {s:?}")).into());
        }
        let norm = self.norm()?;
        let (n, hw) = (s[0], s[2] * s[3]);
        let px = x.to_device(Device::Cpu)?.to_dtype(DType::F32)?.contiguous()?.to_vec::<f32>()?;
        let mut out = Vec::with_capacity(n * hw);
        for img in px.chunks_exact(3 * hw) {
            out.extend((0..hw).map(|p| {
                let rgb = [img[p], img[hw + p], img[2 * hw + p]].map(|v| (v * norm.1 + norm.0).clamp(0.0, 1.0) as f64);
                ((rgb_to_lab_pixel(rgb)[0] - 50.0) / 50.0) as f32
            }));
        }
        Ok(Tensor::from_vec(out, &[n, 1, s[2], s[3]])?.to_dtype(x.dtype())?.to_device(x.device())?)
    }

    /// The last feature map `[N, D, h, w]` of the images' lightness.
    pub fn forward_map(&self, x: &Var) -> Result<Var> {
        self.net.forward_map(&Var::constant(self.lightness(&x.value())?))
    }
}

impl Module for LumaEncoder {
    /// Pooled features `[N, D]` of normalized RGB images.
    fn forward(&self, x: &Var) -> Result<Var> {
        self.net.forward_features(&Var::constant(self.lightness(&x.value())?))
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.net.visit(prefix, f);
        f(&join(prefix, "input_norm"), Entry::Buffer(&self.input_norm));
    }
}

/// The backbone's handle on the encoder the method also calls for feature maps: `Backbone`
/// owns a `dyn Module`, and the per-pixel head needs the typed encoder.
struct SharedEncoder(Rc<LumaEncoder>);

impl Module for SharedEncoder {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.0.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.0.visit(prefix, f)
    }
}

/// The colorization model: the L encoder, the per-pixel classifier and the colour prior.
pub struct Colorization {
    encoder: Rc<LumaEncoder>,
    pub backbone: Backbone,
    /// 1×1 convolution from the feature map to `Q · upscale²` logits per cell.
    pub head: Conv2d,
    /// Bin centres f32 `[Q, 2]`, the smoothed prior `[Q]` and the rebalancing weights `[Q]`.
    pub bins: Buffer,
    pub prior: Buffer,
    pub weights: Buffer,
    upscale: usize,
    temperature: f64,
    /// Side of the predicted ab grid.
    target_side: usize,
    view: ViewAugment,
}

impl Colorization {
    /// The model for `side × side` images over the bins of `prior`.
    pub fn new(
        encoder: Rc<LumaEncoder>,
        prior: &ColourPrior,
        o: &ColorizationOptions,
        side: usize,
        gen: &mut Generator,
    ) -> Result<Colorization> {
        let q = prior.centers.len();
        let dim = encoder.net.feature_dim();
        let head = Conv2d::new(Conv2dConfig::new(dim, q * o.upscale * o.upscale, 1), gen)?;
        // The map's side follows from the stem and strides: measure it once.
        let map_side = {
            let _g = no_grad();
            encoder.set_training(false);
            let m = encoder.forward_map(&Var::constant(Tensor::zeros(&[1, 3, side, side], DType::F32)?));
            encoder.set_training(true);
            m?.shape()[2]
        };
        let centers: Vec<f32> = prior.centers.iter().flatten().copied().collect();
        Ok(Colorization {
            backbone: Backbone { net: Box::new(SharedEncoder(encoder.clone())), dim },
            encoder,
            head,
            bins: Buffer::new(Tensor::from_vec(centers, &[q, 2])?),
            prior: Buffer::new(Tensor::from_vec(prior.prior.clone(), &[q])?),
            weights: Buffer::new(Tensor::from_vec(prior.weights.clone(), &[q])?),
            upscale: o.upscale,
            temperature: o.temperature,
            target_side: map_side * o.upscale,
            view: pretext_view(&o.augment).map_err(|e| Error::invalid("colorization", e))?,
        })
    }

    /// The bins in the buffer as a quantizer.
    pub fn quantizer(&self) -> Result<AbQuantizer> {
        let v = self.bins.get().to_vec::<f32>()?;
        AbQuantizer::from_centers(v.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
            .map_err(|e| Error::invalid("colorization", e.to_string()).into())
    }

    /// Side of the predicted ab grid.
    pub fn target_side(&self) -> usize {
        self.target_side
    }

    /// Per-pixel logits `[N, Q, s, s]` from the feature map `[N, D, m, m]` (s = m · upscale):
    /// the head's `Q · r²` channels of a cell are its r×r pixels' logits (pixel shuffle).
    fn logits(&self, map: &Var) -> Result<Var> {
        let y = self.head.forward(map)?;
        let (n, r, m) = (map.shape()[0], self.upscale, map.shape()[2]);
        let q = y.shape()[1] / (r * r);
        y.reshape_to(&[n, q, r, r, m, m])?.permute(&[0, 1, 4, 2, 5, 3])?.reshape_to(&[n, q, m * r, m * r])
    }
}

impl Method for Colorization {
    fn name(&self) -> &'static str {
        "colorization"
    }

    fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    fn data_recipe(&self) -> DataRecipe {
        let recipe = DataRecipe::views(vec![self.view]);
        match (self.quantizer(), self.encoder.norm()) {
            (Ok(quantizer), Ok(norm)) => recipe.with_task(Arc::new(ColorizationTask { quantizer, norm, side: self.target_side })),
            // Unreachable with buffers built by `new`; training then reports the missing targets.
            _ => recipe,
        }
    }

    fn training_step(&self, batch: &TrainBatch, _: &StepContext) -> Result<StepOutput> {
        let x = batch.views.first().ok_or_else(|| Error::invalid("colorization", "the batch has no view"))?;
        let targets = batch
            .targets
            .as_ref()
            .ok_or_else(|| Error::invalid("colorization", "the batch has no ab targets: build it with the method's data recipe"))?;
        let map = self.encoder.forward_map(&Var::constant(x.clone()))?;
        let logits = self.logits(&map)?;
        let [n, q, s, _] = [logits.shape()[0], logits.shape()[1], logits.shape()[2], logits.shape()[3]];
        if targets.shape() != [n, s, s, q] {
            return Err(Error::shapes_hint(
                "colorization",
                &[n, s, s, q],
                targets.shape(),
                "per-pixel logits [N, s, s, Q] against the targets",
            )
            .into());
        }
        let rows = logits.permute(&[0, 2, 3, 1])?.reshape_to(&[n * s * s, q])?;
        let z = targets.reshape(&[(n * s * s) as isize, q as isize])?;
        // Each pixel weighs as its nearest bin, the arg-max of its soft encoding.
        let nearest = z.argmax(-1, false)?;
        let w = self.weights.get().to_device(z.device())?.index_select(0, &nearest)?;
        let loss = colorization_loss(&rows, &z, &w)?;
        let predicted = rows.value().argmax(-1, false)?.to_vec::<i64>()?;
        let hits: Vec<f64> = predicted.iter().zip(nearest.to_vec::<i64>()?).map(|(p, t)| if *p == t { 1.0 } else { 0.0 }).collect();
        let n_dim = map.shape()[1];
        let features = map.value().mean(&[2, 3], false)?.reshape(&[n as isize, n_dim as isize])?;
        Ok(StepOutput::new(loss, features).with_metric("pretext_acc", mean_where(&hits, |_| true)))
    }

    /// Rows of test images: the L channel the model sees, its colorization (annealed mean of
    /// the predicted distributions, upsampled to the image and joined with the true L) and the
    /// original.
    fn visualize(&self, images: &Tensor, norm: (f32, f32)) -> Result<Option<ImageGrid>> {
        let s = images.shape().to_vec();
        if s.len() != 4 || s[1] != 3 {
            return Err(Error::invalid("colorization", format!("pictures need RGB images [B, 3, H, W], got {s:?}")).into());
        }
        let (b, h, w) = (s[0], s[2], s[3]);
        let device = self.head.weight.value().device();
        let x = images.to_device(Device::Cpu)?.to_dtype(DType::F32)?.contiguous()?;
        let normalized = x.sub_scalar(norm.0 as f64)?.div_scalar(norm.1 as f64)?.to_device(device)?;
        let probs = self.logits(&self.encoder.forward_map(&Var::constant(normalized))?)?.value().softmax(1)?;
        let t = probs.shape()[2];
        let probs = probs.to_device(Device::Cpu)?.to_vec::<f32>()?;
        let quantizer = self.quantizer()?;
        let px = x.to_vec::<f32>()?;
        let (mut grey, mut colour) = (Vec::with_capacity(b * 3 * h * w), Vec::with_capacity(b * 3 * h * w));
        let per = probs.len() / b;
        let e = |e: crate::data::DataError| Error::invalid("colorization", e.to_string());
        for i in 0..b {
            let truth = denormalize(&px[i * 3 * h * w..(i + 1) * 3 * h * w], [3, h, w], (0.0, 1.0)).map_err(e)?;
            let lab = rgb_to_lab(&truth).map_err(e)?;
            let ab = quantizer.annealed_mean(&probs[i * per..(i + 1) * per], t, t, self.temperature as f32).map_err(e)?;
            let ab = Image::new(2, t, t, ab).and_then(|m| m.resize(h, w)).map_err(e)?;
            let mut joined = lab.plane(0).to_vec();
            joined.extend_from_slice(ab.data());
            colour.extend_from_slice(lab_to_rgb(&Image::new(3, h, w, joined).map_err(e)?).map_err(e)?.data());
            // Columns share one shape: the grey picture is drawn as three equal channels.
            (0..3).for_each(|_| grey.extend(lab.plane(0).iter().map(|l| l / 100.0)));
        }
        let grid = ImageGrid::new("colorization")
            .column("greyscale input (L)", &Tensor::from_vec(grey, &[b, 3, h, w])?)?
            .column(format!("colorized (annealed mean, T = {})", self.temperature), &Tensor::from_vec(colour, &[b, 3, h, w])?)?
            .column("ground truth", &x)?;
        Ok(Some(grid))
    }
}

impl Module for Colorization {
    /// The representation f(L(x)) of normalized RGB images.
    fn forward(&self, x: &Var) -> Result<Var> {
        self.encoder.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(prefix, f);
        self.head.visit(&join(prefix, "head"), f);
        f(&join(prefix, "ab_bins"), Entry::Buffer(&self.bins));
        f(&join(prefix, "ab_prior"), Entry::Buffer(&self.prior));
        f(&join(prefix, "ab_weights"), Entry::Buffer(&self.weights));
    }
}
