//! CLIP (Radford et al. 2021, Figure 3): an image tower and a text tower, each with a linear
//! projection to a joint space, trained so that matching image–caption pairs of a batch
//! score higher than every mismatched pair.
//!
//! ```text
//! I_e = normalize(f_img(x) · W_i)          # [N, E]
//! T_e = normalize(f_txt(tokens) · W_t)     # [N, E], features at the end-of-text token
//! logits = exp(s) · I_e · T_eᵀ             # s learnable, initialised to ln(1/0.07)
//! loss = (CE(logits, arange) + CE(logitsᵀ, arange)) / 2
//! after the step: s ← min(s, ln 100)
//! ```
//!
//! Captions come from the dataset (`pairs:DIR`) or are generated from class names (see
//! `data::captions`: those carry the labels). The tokenizer's vocabulary is trained on the
//! caption corpus unless a `tokenizer.json` is given, and saved in the run folder.

use std::path::Path;
use std::sync::Arc;

use super::options::{nonzero, parse_options, positive, resolve_options, MethodOptions, OptionsContext};
use super::{
    clip_logits, clip_loss, Backbone, BuildContext, DataRecipe, Family, Method, MethodInfo, Preset, StepContext, StepOutput, TrainBatch,
    ViewAugment,
};
use crate::data::{CaptionSource, CaptionTask, ClipTokenizer};
use crate::eval::DualEncoder;
use crate::nn::init::{xavier_matrices, FusedQkv};
use crate::nn::{is_vit, join, Entry, Module, Param, TextConfig, TextTransformer};
use serde::{Deserialize, Serialize};
use tessera_autograd::{no_grad, Result, Var};
use tessera_engine::{DType, Device, Error, Generator, Tensor};

/// The file a run folder keeps the vocabulary in.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// CLIP's registry entry.
pub const INFO: MethodInfo = MethodInfo {
    name: "clip",
    family: Family::Contrastive,
    paper: "Radford et al. 2021, Learning Transferable Visual Models From Natural Language Supervision",
    default_encoder: "vit-tiny",
    presets: &[Preset {
        datasets: &["default", "fashion-mnist", "mnist", "cifar10", "folder", "pairs"],
        file: "clip-fashion-mnist.toml",
        toml: include_str!("../../../configs/clip-fashion-mnist.toml"),
    }],
    resolve: |t, c| resolve_options::<ClipOptions>("clip", t, c),
    build,
};

/// The `[clip]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipOptions {
    /// Width of the joint image–text space.
    pub embed_dim: usize,
    pub text_width: usize,
    pub text_heads: usize,
    pub text_layers: usize,
    /// Tokens per caption (start and end tokens included); longer captions are truncated.
    pub context_length: usize,
    /// Size of a vocabulary trained on the captions (ignored with `tokenizer`).
    pub vocab_size: usize,
    /// A `tokenizer.json` to use instead of training one ("" trains one).
    pub tokenizer: String,
    /// exp(s) at initialisation (CLIP: 1/0.07).
    pub init_logit_scale: f64,
    /// The clamp on exp(s) after every step (CLIP: 100).
    pub max_logit_scale: f64,
    /// Learn s (CLIP) or keep it at its initial value (a fixed temperature).
    pub learn_logit_scale: bool,
    /// The image view: `light` (random resized crop and flip, CLIP's), `plain` or `contrastive`.
    pub image_augment: String,
}

impl Default for ClipOptions {
    fn default() -> Self {
        ClipOptions {
            embed_dim: 128,
            text_width: 128,
            text_heads: 4,
            text_layers: 2,
            context_length: 24,
            vocab_size: 1024,
            tokenizer: String::new(),
            init_logit_scale: 1.0 / 0.07,
            max_logit_scale: 100.0,
            learn_logit_scale: true,
            image_augment: "light".into(),
        }
    }
}

fn view_augment(name: &str) -> std::result::Result<ViewAugment, String> {
    match name {
        "light" => Ok(ViewAugment::Light),
        "plain" => Ok(ViewAugment::Plain),
        "contrastive" => Ok(ViewAugment::Contrastive),
        other => Err(format!("image_augment must be light, plain or contrastive (got '{other}')")),
    }
}

impl MethodOptions for ClipOptions {
    fn validate(&self, _: &OptionsContext) -> std::result::Result<(), String> {
        nonzero("embed_dim", self.embed_dim)?;
        nonzero("text_layers", self.text_layers)?;
        nonzero("text_heads", self.text_heads)?;
        if !self.text_width.is_multiple_of(self.text_heads) || self.text_width == 0 {
            return Err(format!("text_width {} must be a positive multiple of text_heads {}", self.text_width, self.text_heads));
        }
        if self.context_length < 3 {
            return Err(format!("context_length must be at least 3 (start, one token, end), got {}", self.context_length));
        }
        if self.vocab_size < 258 {
            return Err(format!("vocab_size must be at least 258 (256 bytes and 2 special tokens), got {}", self.vocab_size));
        }
        positive("init_logit_scale", self.init_logit_scale)?;
        positive("max_logit_scale", self.max_logit_scale)?;
        if self.init_logit_scale > self.max_logit_scale {
            return Err(format!("init_logit_scale {} exceeds max_logit_scale {}", self.init_logit_scale, self.max_logit_scale));
        }
        view_augment(&self.image_augment).map(|_| ())
    }
}

/// The tokenizer of a run: the run folder's when it has one (resume, evaluation), else the
/// configured file, else one trained on the captions.
fn tokenizer(o: &ClipOptions, run: Option<&Path>, source: &CaptionSource) -> std::result::Result<ClipTokenizer, String> {
    let saved = run.map(|r| r.join(TOKENIZER_FILE)).filter(|p| p.is_file());
    let t = match (saved, o.tokenizer.as_str()) {
        (Some(p), _) => ClipTokenizer::from_file(&p, o.context_length),
        (None, "") => ClipTokenizer::train(&source.corpus(), o.vocab_size, o.context_length),
        (None, file) => ClipTokenizer::from_file(Path::new(file), o.context_length),
    };
    t.map_err(|e| e.to_string())
}

fn build(ctx: &BuildContext) -> std::result::Result<Box<dyn Method>, String> {
    let o: ClipOptions = parse_options("clip", ctx.options)?;
    let train = ctx.train.ok_or("clip needs the training data: its captions (or class names) and the tokenizer come from it")?;
    let source = CaptionSource::for_dataset(train);
    let tokenizer = tokenizer(&o, ctx.run, &source)?;
    Ok(Box::new(Clip::new(ctx, &o, tokenizer, source).map_err(|e| e.to_string())?))
}

/// The CLIP model: both towers, their projections and the log logit scale.
pub struct Clip {
    backbone: Backbone,
    /// `[D, E]`: image features to the joint space (open_clip's `visual.proj`).
    visual_proj: Param,
    text: TextTransformer,
    /// s, shape `[]`: the logits are scaled by exp(s).
    logit_scale: Param,
    max_log_scale: f64,
    tokenizer: Arc<ClipTokenizer>,
    source: CaptionSource,
    augment: ViewAugment,
}

impl Clip {
    /// Both towers from the seed; the text tower sized to the tokenizer's vocabulary.
    pub fn new(ctx: &BuildContext, o: &ClipOptions, tokenizer: ClipTokenizer, source: CaptionSource) -> std::result::Result<Clip, String> {
        let e = |e: tessera_autograd::Error| e.to_string();
        let mut gen = Generator::new(ctx.seed);
        let backbone = Backbone::build(ctx.encoder, &mut gen)?;
        if is_vit(&ctx.encoder.name) {
            // open_clip's visual transformer starts from PyTorch's layer defaults (Xavier q/k/v,
            // ±1/√fan_in elsewhere), 2–2.5× timm's std 0.02 on ViT-Tiny: with timm's, the
            // class token leaves the blocks nearly the same for every image, and the image
            // tower gives the contrastive loss almost nothing to pull apart at the start.
            xavier_matrices(&*backbone.net, FusedQkv::OneMatrix, &mut gen).map_err(|e| e.to_string())?;
        }
        let std = (backbone.dim as f64).powf(-0.5);
        let visual_proj =
            Param::new(gen.normal(&[backbone.dim, o.embed_dim], 0.0, std, DType::F32).map_err(|e| e.to_string())?).map_err(e)?;
        let text_cfg = TextConfig {
            vocab_size: tokenizer.vocab_size(),
            context_length: o.context_length,
            width: o.text_width,
            heads: o.text_heads,
            layers: o.text_layers,
            embed_dim: o.embed_dim,
            eot_id: tokenizer.eot_id(),
        };
        let text = TextTransformer::new(&text_cfg, &mut gen).map_err(e)?;
        let logit_scale = Param::new(Tensor::scalar(o.init_logit_scale.ln() as f32)).map_err(e)?;
        logit_scale.set_frozen(!o.learn_logit_scale);
        Ok(Clip {
            backbone,
            visual_proj,
            text,
            logit_scale,
            max_log_scale: o.max_logit_scale.ln(),
            tokenizer: Arc::new(tokenizer),
            source,
            augment: view_augment(&o.image_augment)?,
        })
    }

    /// The tokenizer (captions and prompts go through it).
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    /// exp(s), the current logit scale.
    pub fn logit_scale(&self) -> Result<f64> {
        Ok(self.logit_scale.value().item()?.exp())
    }

    fn image_embedding(&self, x: &Var) -> Result<(Var, Var)> {
        let h = self.backbone.net.forward(x)?;
        let z = h.matmul(&self.visual_proj.get())?;
        Ok((h, z))
    }
}

/// Rows whose largest logit is on the diagonal, and rows whose best text has the same tokens
/// as the row's own caption (a duplicate caption elsewhere in the batch counts as found).
fn in_batch_accuracy(logits: &Tensor, tokens: &Tensor) -> Result<(f64, f64)> {
    let n = logits.shape()[0];
    let l = logits.to_device(Device::Cpu)?.to_dtype(DType::F64)?.to_vec::<f64>()?;
    let t = tokens.to_device(Device::Cpu)?.to_vec::<i64>()?;
    let len = t.len() / n.max(1);
    let (mut exact, mut caption) = (0usize, 0usize);
    for (i, row) in l.chunks_exact(n).enumerate() {
        let best = row.iter().enumerate().fold(0, |b, (j, &v)| if v > row[b] { j } else { b });
        exact += (best == i) as usize;
        caption += (t[best * len..(best + 1) * len] == t[i * len..(i + 1) * len]) as usize;
    }
    Ok((exact as f64 / n as f64, caption as f64 / n as f64))
}

impl Method for Clip {
    fn name(&self) -> &'static str {
        "clip"
    }

    fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// The image's embedding in the joint space, h · visual.proj (before normalization).
    fn projector_embedding(&self, features: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(Var::constant(features.clone()).matmul(&self.visual_proj.get())?.value()))
    }

    /// One image view and one caption per image, tokenized on the data side.
    fn data_recipe(&self) -> DataRecipe {
        DataRecipe::views(vec![self.augment])
            .with_task(Arc::new(CaptionTask { source: self.source.clone(), tokenizer: self.tokenizer.clone() }))
    }

    fn training_step(&self, batch: &TrainBatch, _: &StepContext) -> Result<StepOutput> {
        let x = batch.views.first().ok_or_else(|| Error::invalid("clip", "the batch has no image view"))?;
        let tokens = batch
            .tokens
            .as_ref()
            .ok_or_else(|| Error::invalid("clip", "the batch has no caption tokens (the recipe's caption task did not run)"))?;
        let (h, image) = self.image_embedding(&Var::constant(x.clone()))?;
        let text = self.text.encode(tokens)?;
        let s = self.logit_scale.get();
        let loss = clip_loss(&image, &text, &s)?;
        let logits = {
            let _g = no_grad();
            clip_logits(&image, &text, &s)?.value()
        };
        let (acc, caption_acc) = in_batch_accuracy(&logits, tokens)?;
        Ok(StepOutput::new(loss, h.value())
            .with_metric("logit_scale", self.logit_scale()?)
            .with_metric("batch_acc", acc)
            .with_metric("batch_caption_acc", caption_acc))
    }

    /// CLIP's clamp: s ≤ ln(max_logit_scale) after every optimizer step.
    fn after_step(&self, _: &StepContext) -> Result<()> {
        let s = self.logit_scale.value();
        if s.item()? > self.max_log_scale {
            self.logit_scale.var().set_value(Tensor::full_on(&[], self.max_log_scale, s.dtype(), s.device())?)?;
        }
        Ok(())
    }

    fn dual_encoder(&self) -> Option<&dyn DualEncoder> {
        Some(self)
    }

    fn run_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let json = self.tokenizer.to_json().map_err(|e| Error::invalid("clip", e.to_string()))?;
        Ok(vec![(TOKENIZER_FILE, json.into_bytes())])
    }
}

impl DualEncoder for Clip {
    fn embed_images(&self, images: &Tensor) -> Result<Tensor> {
        let was = self.is_training();
        self.set_training(false);
        let _g = no_grad();
        let z = self.image_embedding(&Var::constant(images.to_device(self.visual_proj.value().device())?));
        self.set_training(was);
        Ok(super::l2_normalize_rows(&z?.1.value().to_device(Device::Cpu)?)?)
    }

    fn embed_texts(&self, texts: &[String]) -> Result<Tensor> {
        let was = self.is_training();
        self.set_training(false);
        let _g = no_grad();
        let tokens = self
            .tokenizer
            .encode_batch(texts)
            .map_err(|e| Error::invalid("clip", e.to_string()))?
            .to_device(self.visual_proj.value().device())?;
        let z = self.text.encode(&tokens);
        self.set_training(was);
        Ok(super::l2_normalize_rows(&z?.value().to_device(Device::Cpu)?)?)
    }
}

impl Module for Clip {
    /// The image tower's representation f(x) (before the projection).
    fn forward(&self, x: &Var) -> Result<Var> {
        self.backbone.net.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(prefix, f);
        f(&join(prefix, "visual.proj"), Entry::Param(&self.visual_proj));
        self.text.visit(prefix, f);
        f(&join(prefix, "logit_scale"), Entry::Param(&self.logit_scale));
    }
}
