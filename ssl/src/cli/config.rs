//! The resolved configuration of a run: a committed TOML preset per method and dataset
//! (`configs/`), an optional user file, then command-line flags, in that order of priority.
//! Unknown keys are errors, so a typo never silently falls back to a default.
//!
//! The method's own settings sit in a section named after it (`[simclr]`, `[moco-v2]`): the
//! method's registry entry fills in its defaults and checks it ([`Config::resolve`]), and
//! the run's `config.toml` saves it resolved.

use crate::data::ImageLimits;
use crate::methods::{self, OptionsContext};
use crate::nn::{check_encoder_name, parse_pool, EncoderSpec};
use serde::{Deserialize, Serialize};

/// The most worker threads a run may ask for: far more than any machine's cores, far fewer
/// than would exhaust the process's threads or memory (each has its own stack).
pub const MAX_THREADS: usize = 1024;
/// The most epochs of pretraining or of the linear probe: step counts stay far from
/// overflowing however small the batches.
pub const MAX_EPOCHS: usize = 1_000_000;
/// The largest batch: MoCo's queue holds several batches of keys.
pub const MAX_BATCH_SIZE: usize = 1 << 20;
/// The largest integer in a method's section (widths, queue lengths, counts); MoCo's
/// ImageNet queue of 65,536 keys fits with room to spare.
pub const MAX_METHOD_SIZE: usize = 1 << 20;
/// The most pixels `data.max_image_pixels` may allow: 65536 × 65536, past any PNG or JPEG
/// a dataset holds.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 32;
/// The most bytes `data.max_image_bytes` may allow: that many pixels of 16-bit RGBA.
pub const MAX_IMAGE_BYTES: u64 = MAX_IMAGE_PIXELS * 8;
/// The colour-jitter strength at which the hue shift (a quarter of it) reaches its
/// maximum, half a turn.
const MAX_JITTER_STRENGTH: f64 = 2.0;

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
    /// AdamW's (β₁, β₂): PyTorch's (0.9, 0.999) by default; CLIP and MAE train with β₂ 0.98 /
    /// 0.95, which lets the second moment follow a fast-moving loss in a short run.
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
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
    /// Limits on the dataset's files (absent from older runs' files: the defaults).
    #[serde(default)]
    pub data: DataConfig,
    /// What the run measures beside the per-epoch diagnostics (absent from older runs'
    /// files: the defaults).
    #[serde(default)]
    pub diagnostics: DiagnosticsConfig,
    /// The method's section, resolved by [`Config::resolve`]; saved as `[<method>]`.
    #[serde(skip)]
    pub method_options: toml::Table,
}

fn default_precision() -> String {
    "f32".into()
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
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

/// Limits on what one file of the dataset may declare: for `folder:DIR` and `pairs:DIR`,
/// each image's header is checked against them before it is decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The most pixels (width × height) one image file may declare.
    pub max_image_pixels: u64,
    /// The most bytes one image may take decoded, in its file's own pixel format (a 16-bit
    /// RGBA pixel is 8 bytes).
    pub max_image_bytes: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        let l = ImageLimits::DEFAULT;
        DataConfig { max_image_pixels: l.max_pixels, max_image_bytes: l.max_decoded_bytes }
    }
}

impl DataConfig {
    /// The image budget these keys set.
    pub fn image_limits(&self) -> ImageLimits {
        ImageLimits { max_pixels: self.max_image_pixels, max_decoded_bytes: self.max_image_bytes }
    }
}

/// The `[diagnostics]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosticsConfig {
    /// Log every parameter's gradient norm, weight norm and update-to-weight ratio on the
    /// first optimizer step and every this many after it (0: never). Each measurement reads
    /// the weights twice on the host: at 50, well under 1% of a step's time.
    pub layer_norms_every: usize,
}

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        DiagnosticsConfig { layer_norms_every: 50 }
    }
}

/// The committed preset for a method and dataset, embedded in the binary.
pub fn preset(method: &str, dataset: &str) -> crate::Result<&'static str> {
    Ok(methods::find(method)?.preset(dataset)?.toml)
}

impl Config {
    /// Parses a TOML configuration; errors name the bad key or value. The method's section is
    /// kept as written until [`Config::resolve`].
    pub fn from_toml(text: &str, origin: &str) -> crate::Result<Config> {
        let table: toml::Table = toml::from_str(text).map_err(|e| format!("{origin}: {}", toml_error(&e, text)))?;
        Config::from_table(table, origin)
    }

    /// Reads a TOML file (a run's `config.toml`); errors name the file.
    pub fn read_file(path: &std::path::Path) -> crate::Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// Reads and resolves a run's `config.toml` as it was saved; every error names the file.
    pub fn read_run_file(path: &std::path::Path) -> crate::Result<Config> {
        let mut cfg = Config::read_file(path)?;
        cfg.resolve().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    fn from_table(mut table: toml::Table, origin: &str) -> crate::Result<Config> {
        let method = table.get("method").and_then(|m| m.as_str()).unwrap_or("").to_string();
        let mut options = toml::Table::new();
        for name in methods::names() {
            match table.remove(name) {
                Some(toml::Value::Table(t)) if name == method => options = t,
                Some(_) if name == method => return Err(format!("{origin}: [{name}] must be a table").into()),
                Some(_) => {
                    return Err(format!("{origin}: section [{name}] belongs to method {name}, but this run's method is '{method}'").into())
                }
                None => {}
            }
        }
        let mut cfg: Config = toml::Value::Table(table).try_into().map_err(|e| format!("{origin}: {}", toml_error(&e, "")))?;
        cfg.method_options = options;
        Ok(cfg)
    }

    /// The whole configuration as TOML, the method's section included (the run's `config.toml`).
    pub fn to_toml(&self) -> crate::Result<String> {
        toml::to_string(&self.to_table()?).map_err(crate::Error::msg)
    }

    fn to_table(&self) -> crate::Result<toml::Table> {
        let mut t = toml::Table::try_from(self)?;
        t.insert(self.method.clone(), toml::Value::Table(self.method_options.clone()));
        Ok(t)
    }

    /// Merges the keys of a partial TOML document (a user's `--config` file) over this one.
    pub fn merged_with(&self, overrides: &str, origin: &str) -> crate::Result<Config> {
        let mut base = toml::Value::Table(self.to_table()?);
        let over: toml::Value = toml::from_str(overrides).map_err(|e| format!("{origin}: {}", toml_error(&e, overrides)))?;
        merge(&mut base, over);
        match base {
            toml::Value::Table(t) => Config::from_table(t, origin),
            _ => unreachable!("merging tables gives a table"),
        }
    }

    /// The encoder this configuration builds, for images of `channels × side × side`.
    pub fn encoder_spec(&self, channels: usize, side: usize) -> crate::Result<EncoderSpec> {
        Ok(EncoderSpec { name: self.encoder.clone(), channels, side, patch_size: self.patch_size, pool: parse_pool(&self.pool)? })
    }

    /// Fills in the method's section with its defaults and checks everything: call after the
    /// last change, before any work starts.
    pub fn resolve(&mut self) -> Result<(), KeyError> {
        self.validate()?;
        let info = methods::find(&self.method).map_err(|m| KeyError::new("method", m))?;
        let ctx = OptionsContext { encoder: &self.encoder, batch_size: self.batch_size };
        self.method_options = (info.resolve)(&self.method_options, &ctx).map_err(|m| KeyError::in_section(&self.method, m))?;
        check_method_sizes(&self.method, &self.method_options)
    }

    /// The autocast dtype `precision` asks for (None: plain f32).
    pub fn autocast(&self) -> crate::Result<Option<tessera_engine::DType>> {
        match self.precision.as_str() {
            "f32" | "32" => Ok(None),
            "bf16-mixed" => Ok(Some(tessera_engine::DType::BF16)),
            "f16-mixed" => Ok(Some(tessera_engine::DType::F16)),
            other => Err(format!("unknown precision '{other}' (expected f32, bf16-mixed or f16-mixed)").into()),
        }
    }

    /// Checks every key's range before any work starts (the method's section is checked by
    /// its registry entry in [`Config::resolve`]). Strings are checked by the code that
    /// interprets them; `dataset` when it is loaded.
    pub fn validate(&self) -> Result<(), KeyError> {
        let fail = |key: &str, msg: String| Err(KeyError::new(key, msg));
        methods::find(&self.method).map_err(|m| KeyError::new("method", m))?;
        check_encoder_name(&self.encoder).map_err(|m| KeyError::new("encoder", m))?;
        parse_pool(&self.pool).map_err(|m| KeyError::new("pool", m))?;
        self.autocast().map_err(|m| KeyError::new("precision", m))?;
        if !["adamw", "lars", "sgd"].contains(&self.optimizer.as_str()) {
            return fail("optimizer", format!("unknown optimizer '{}' (expected adamw, lars or sgd)", self.optimizer));
        }
        if !self.betas.iter().all(|b| (0.0..1.0).contains(b)) {
            return fail("betas", format!("betas must both lie in [0, 1) (got {:?})", self.betas));
        }
        for (key, v) in [("epochs", self.epochs), ("eval.linear_epochs", self.eval.linear_epochs)] {
            if v > MAX_EPOCHS {
                return fail(key, format!("{key} = {v} is more than {MAX_EPOCHS}"));
            }
        }
        if self.epochs == 0 {
            return fail("epochs", "epochs must be at least 1".into());
        }
        if self.max_steps == Some(0) {
            return fail("max_steps", "max_steps must be at least 1".into());
        }
        if !(2..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return fail("batch_size", format!("batch_size must lie in [2, {MAX_BATCH_SIZE}] (got {})", self.batch_size));
        }
        if self.threads > MAX_THREADS {
            return fail("threads", format!("threads = {} is more than {MAX_THREADS} worker threads (0 uses every core)", self.threads));
        }
        for (key, v) in [("lr", self.lr), ("eval.knn_temperature", self.eval.knn_temperature), ("eval.linear_lr", self.eval.linear_lr)] {
            if !(v > 0.0 && v.is_finite()) {
                return fail(key, format!("{key} must be positive (got {v})"));
            }
        }
        for (key, v, max) in [
            ("weight_decay", self.weight_decay, f64::MAX),
            ("warmup_epochs", self.warmup_epochs, f64::MAX),
            ("augment.jitter_strength", self.augment.jitter_strength, MAX_JITTER_STRENGTH),
            ("augment.flip_p", self.augment.flip_p, 1.0),
            ("augment.jitter_p", self.augment.jitter_p, 1.0),
            ("augment.grayscale_p", self.augment.grayscale_p, 1.0),
        ] {
            if !(0.0..=max).contains(&v) {
                let range = if max == f64::MAX { "be finite and at least 0".to_string() } else { format!("lie in [0, {max}]") };
                return fail(key, format!("{key} must {range} (got {v})"));
            }
        }
        if !(0.0 < self.augment.crop_scale_min && self.augment.crop_scale_min <= 1.0) {
            return fail(
                "augment.crop_scale_min",
                format!("augment.crop_scale_min must lie in (0, 1] (got {})", self.augment.crop_scale_min),
            );
        }
        if self.eval.knn_k == 0 {
            return fail("eval.knn_k", "eval.knn_k must be at least 1".into());
        }
        for (key, v, max) in [
            ("data.max_image_pixels", self.data.max_image_pixels, MAX_IMAGE_PIXELS),
            ("data.max_image_bytes", self.data.max_image_bytes, MAX_IMAGE_BYTES),
        ] {
            if !(1..=max).contains(&v) {
                return fail(key, format!("{key} must lie in [1, {max}] (got {v})"));
            }
        }
        Ok(())
    }
}

/// Every integer of a method's section is a width, a queue length or a count: one past
/// [`MAX_METHOD_SIZE`] would ask for gigabytes of weights (or overflow) when the method is
/// built, so it is refused here, whatever the method checks itself.
fn check_method_sizes(section: &str, options: &toml::Table) -> Result<(), KeyError> {
    for (key, v) in options {
        if let Some(n) = v.as_integer().filter(|&n| n > MAX_METHOD_SIZE as i64) {
            let key = format!("{section}.{key}");
            return Err(KeyError::new(&key, format!("{key} = {n} is more than {MAX_METHOD_SIZE}")));
        }
    }
    Ok(())
}

/// A value a configuration must not hold, with the dotted key that holds it (`threads`,
/// `augment.flip_p`, `moco-v2.momentum`), so the caller can name the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The dotted key.
    pub key: String,
    /// A sentence that names the key and the value.
    pub msg: String,
}

impl KeyError {
    /// An error about `key`.
    pub fn new(key: &str, msg: impl Into<String>) -> KeyError {
        KeyError { key: key.to_string(), msg: msg.into() }
    }

    /// An error from a method section's check, whose messages start with the dotted key
    /// (`moco-v2.momentum must …`) or the bracketed section (`[moco-v2]: …`).
    fn in_section(section: &str, msg: String) -> KeyError {
        let first = msg.split([' ', ':']).next().unwrap_or_default().trim_matches(['[', ']']);
        let key = if first.starts_with(section) { first.to_string() } else { section.to_string() };
        KeyError { key, msg }
    }
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<KeyError> for String {
    fn from(e: KeyError) -> String {
        e.msg
    }
}

/// Whether the TOML table holds the dotted `key` (`augment.flip_p` is `[augment] flip_p`).
pub fn table_has_key(table: &toml::Table, key: &str) -> bool {
    let mut parts = key.split('.');
    let Some(first) = parts.next() else { return false };
    let mut node = table.get(first);
    for part in parts {
        node = node.and_then(|v| v.as_table()).and_then(|t| t.get(part));
    }
    node.is_some()
}

/// A TOML error on one line, with what locates it: the line of a syntax error in `text`,
/// or the dotted key of a value of the wrong type (toml's `message()` leaves both out; its
/// `Display` has them on lines of their own).
pub(crate) fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = crate::one_line(e.message());
    if let Some(key) = e.to_string().lines().find_map(|l| l.strip_prefix("in `")?.strip_suffix('`')) {
        return format!("{key}: {message}");
    }
    match e.span() {
        Some(span) => {
            let line = text.as_bytes()[..span.start.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
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
