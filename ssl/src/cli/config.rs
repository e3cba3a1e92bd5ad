//! The resolved configuration of a run: a committed TOML preset per method and dataset
//! (`configs/`), an optional user file, then command-line flags, in that order of priority.
//! Unknown keys are errors, so a typo never silently falls back to a default.

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
    pub temperature: f64,
    pub proj_hidden: usize,
    pub proj_out: usize,
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
}

fn default_precision() -> String {
    "f32".into()
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

/// The committed preset for a method and dataset family, embedded in the binary.
pub fn preset(method: &str, dataset: &str) -> Result<&'static str, String> {
    let family = dataset.split(':').next().unwrap_or(dataset);
    match (method, family) {
        ("simclr", "default" | "fashion-mnist" | "mnist") => Ok(include_str!("../../../configs/simclr-fashion-mnist.toml")),
        ("simclr", "cifar10" | "folder") => Ok(include_str!("../../../configs/simclr-cifar10.toml")),
        ("simclr", other) => {
            Err(format!("unknown dataset '{other}' (expected default, fashion-mnist:DIR, mnist:DIR, cifar10:DIR or folder:DIR)"))
        }
        (other, _) => Err(format!("unknown method '{other}' (available: simclr)")),
    }
}

impl Config {
    /// Parses a TOML configuration; errors name the bad key or value.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| format!("{origin}: {}", e.message()))
    }

    /// Merges the keys of a partial TOML document (a user's `--config` file) over this one.
    pub fn merged_with(&self, overrides: &str, origin: &str) -> Result<Config, String> {
        let mut base = toml::Value::try_from(self).map_err(|e| e.to_string())?;
        let over: toml::Value = toml::from_str(overrides).map_err(|e| format!("{origin}: {}", e.message()))?;
        merge(&mut base, over);
        let text = toml::to_string(&base).map_err(|e| e.to_string())?;
        Config::from_toml(&text, origin)
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
        if !(self.temperature > 0.0) {
            return fail(format!("temperature must be positive (got {})", self.temperature));
        }
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
