//! The resolved configuration of a run: a committed TOML preset per method and dataset
//! (`configs/`), an optional user file, then command-line flags, in that order of priority.
//! Unknown keys are errors, so a typo never silently falls back to a default.
//!
//! The method's own settings sit in a section named after it (`[simclr]`, `[moco-v2]`): the
//! method's registry entry fills in its defaults and checks it ([`Config::resolve`]), and
//! the run's `config.toml` saves it resolved.

use crate::methods::{self, OptionsContext};
use crate::nn::{check_encoder_name, parse_pool, EncoderSpec};
use serde::{Deserialize, Serialize};

/// Everything that determines a pretraining run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub method: String,
    pub encoder: String,
    pub dataset: String,
    /// Use only the first N training images (0: all of them).
    #[serde(default)]
    pub train_images: usize,
    /// Use only the first N test images (0: all of them).
    #[serde(default)]
    pub test_images: usize,
    pub epochs: usize,
    /// Stop after this many optimizer steps in all (resumes included); the schedule still
    /// spans `epochs`.
    pub max_steps: Option<usize>,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// `adamw`, `lars` or `sgd`.
    pub optimizer: String,
    pub warmup_epochs: f64,
    /// ViT patch size; 0 picks it from the image side (4 up to 32×32).
    #[serde(default)]
    pub patch_size: usize,
    /// What a ViT's features are: `cls` (the class token) or `mean` (the patch tokens' mean).
    #[serde(default = "default_pool")]
    pub pool: String,
    pub seed: u64,
    /// Worker threads; 0 uses every core.
    pub threads: usize,
    pub device: String,
    /// `f32`, or mixed precision as PyTorch Lightning names it: `bf16-mixed` / `f16-mixed`
    /// run the training step's matmuls and convolutions under autocast to that dtype, with
    /// f32 parameters, optimizer and evaluation.
    #[serde(default = "default_precision")]
    pub precision: String,
    pub augment: AugmentConfig,
    pub eval: EvalConfig,
    /// The method's section, resolved by [`Config::resolve`]; saved as `[<method>]`.
    #[serde(skip)]
    pub method_options: toml::Table,
}

fn default_precision() -> String {
    "f32".into()
}

fn default_pool() -> String {
    "cls".into()
}

/// The SimCLR view pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    pub crop_scale_min: f64,
    pub flip_p: f64,
    pub jitter_strength: f64,
    pub jitter_p: f64,
    pub grayscale_p: f64,
    pub blur: bool,
}

/// Evaluation protocols run at the end (and the online probe during training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub knn_k: usize,
    pub knn_temperature: f64,
    pub linear_epochs: usize,
    pub linear_lr: f64,
    /// Train an online linear probe on detached features during pretraining.
    pub online_probe: bool,
    /// Also evaluate the random-weight encoder and raw pixels.
    pub baselines: bool,
}

/// The committed preset for a method and dataset, embedded in the binary.
pub fn preset(method: &str, dataset: &str) -> Result<&'static str, String> {
    Ok(methods::find(method)?.preset(dataset)?.toml)
}

impl Config {
    /// Parses a TOML configuration; errors name the bad key or value. The method's section is
    /// kept as written until [`Config::resolve`].
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e: toml::de::Error| format!("{origin}: {}", e.message()))?;
        Config::from_table(table, origin)
    }

    fn from_table(mut table: toml::Table, origin: &str) -> Result<Config, String> {
        let method = table.get("method").and_then(|m| m.as_str()).unwrap_or("").to_string();
        let mut options = toml::Table::new();
        for name in methods::names() {
            match table.remove(name) {
                Some(toml::Value::Table(t)) if name == method => options = t,
                Some(_) if name == method => return Err(format!("{origin}: [{name}] must be a table")),
                Some(_) => return Err(format!("{origin}: section [{name}] belongs to method {name}, but this run's method is '{method}'")),
                None => {}
            }
        }
        let mut cfg: Config = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| format!("{origin}: {}", e.message()))?;
        cfg.method_options = options;
        Ok(cfg)
    }

    /// The whole configuration as TOML, the method's section included (the run's `config.toml`).
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(&self.to_table()?).map_err(|e| e.to_string())
    }

    fn to_table(&self) -> Result<toml::Table, String> {
        let mut t = toml::Table::try_from(self).map_err(|e| e.to_string())?;
        t.insert(self.method.clone(), toml::Value::Table(self.method_options.clone()));
        Ok(t)
    }

    /// Merges the keys of a partial TOML document (a user's `--config` file) over this one.
    pub fn merged_with(&self, overrides: &str, origin: &str) -> Result<Config, String> {
        let mut base = toml::Value::Table(self.to_table()?);
        let over: toml::Value = toml::from_str(overrides).map_err(|e| format!("{origin}: {}", e.message()))?;
        merge(&mut base, over);
        match base {
            toml::Value::Table(t) => Config::from_table(t, origin),
            _ => unreachable!("merging tables gives a table"),
        }
    }

    /// The encoder this configuration builds, for images of `channels × side × side`.
    pub fn encoder_spec(&self, channels: usize, side: usize) -> Result<EncoderSpec, String> {
        Ok(EncoderSpec { name: self.encoder.clone(), channels, side, patch_size: self.patch_size, pool: parse_pool(&self.pool)? })
    }

    /// Fills in the method's section with its defaults and checks everything: call after the
    /// last change, before any work starts.
    pub fn resolve(&mut self) -> Result<(), String> {
        self.validate()?;
        let info = methods::find(&self.method)?;
        let ctx = OptionsContext { encoder: &self.encoder, batch_size: self.batch_size };
        self.method_options = (info.resolve)(&self.method_options, &ctx)?;
        Ok(())
    }

    /// The autocast dtype `precision` asks for (None: plain f32).
    pub fn autocast(&self) -> Result<Option<tessera_engine::DType>, String> {
        match self.precision.as_str() {
            "f32" | "32" => Ok(None),
            "bf16-mixed" => Ok(Some(tessera_engine::DType::BF16)),
            "f16-mixed" => Ok(Some(tessera_engine::DType::F16)),
            other => Err(format!("unknown precision '{other}' (expected f32, bf16-mixed or f16-mixed)")),
        }
    }

    /// Checks value ranges before any work starts.
    pub fn validate(&self) -> Result<(), String> {
        let fail = |m: String| Err(m);
        if self.epochs == 0 {
            return fail("epochs must be at least 1".into());
        }
        if self.batch_size < 2 {
            return fail(format!("batch_size must be at least 2 (got {})", self.batch_size));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return fail(format!("lr must be positive (got {})", self.lr));
        }
        methods::find(&self.method)?;
        check_encoder_name(&self.encoder)?;
        parse_pool(&self.pool)?;
        self.autocast()?;
        if !["adamw", "lars", "sgd"].contains(&self.optimizer.as_str()) {
            return fail(format!("unknown optimizer '{}' (expected adamw, lars or sgd)", self.optimizer));
        }
        if !(0.0 < self.augment.crop_scale_min && self.augment.crop_scale_min <= 1.0) {
            return fail(format!("augment.crop_scale_min must lie in (0, 1] (got {})", self.augment.crop_scale_min));
        }
        for (name, p) in [
            ("augment.flip_p", self.augment.flip_p),
            ("augment.jitter_p", self.augment.jitter_p),
            ("augment.grayscale_p", self.augment.grayscale_p),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return fail(format!("{name} must lie in [0, 1] (got {p})"));
            }
        }
        if self.eval.knn_k == 0 {
            return fail("eval.knn_k must be at least 1".into());
        }
        if self.max_steps == Some(0) {
            return fail("max_steps must be at least 1".into());
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_table() && v.is_table() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}
