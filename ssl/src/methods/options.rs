//! Each method's own configuration section (`[simclr]`, `[moco-v2]`, ...): a typed struct
//! with the method's defaults, filled in and checked before any work starts, then saved
//! whole in the run's `config.toml`.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a section may depend on besides its own keys.
#[derive(Debug, Clone, Copy)]
pub struct OptionsContext<'a> {
    /// The `--encoder` name (MoCo v3's temperature differs for ResNets and ViTs).
    pub encoder: &'a str,
    /// Images per batch (MoCo v2's queue must hold a whole number of batches).
    pub batch_size: usize,
}

/// A method's section. Implementors derive `Serialize`, `Deserialize` (with
/// `#[serde(default, deny_unknown_fields)]`) and `Default` (the method's defaults).
pub trait MethodOptions: Serialize + DeserializeOwned + Default {
    /// Fills in defaults that depend on the context (leave the rest alone).
    fn complete(&mut self, _ctx: &OptionsContext) {}
    /// Checks values; the message names the key without the section (`temperature must …`).
    fn validate(&self, ctx: &OptionsContext) -> Result<(), String>;
}

/// Parses a resolved section into its typed options.
pub fn parse_options<T: MethodOptions>(section: &str, table: &toml::Table) -> Result<T, String> {
    toml::Value::Table(table.clone()).try_into().map_err(|e| format!("[{section}]: {}", crate::cli::config::toml_error(&e, "")))
}

/// Fills a section with its defaults, checks it and returns it resolved; errors read
/// `section.key …` so a user finds the line to change.
pub fn resolve_options<T: MethodOptions>(section: &str, table: &toml::Table, ctx: &OptionsContext) -> Result<toml::Table, String> {
    let mut opts: T = parse_options(section, table)?;
    opts.complete(ctx);
    opts.validate(ctx).map_err(|e| format!("{section}.{e}"))?;
    toml::Table::try_from(&opts).map_err(|e| format!("[{section}]: {e}"))
}

/// `name must be positive (got v)` unless `v > 0` and finite.
pub fn positive(name: &str, v: f64) -> Result<(), String> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(format!("{name} must be positive (got {v})"))
    }
}

/// `name must lie in [0, 1]` unless it does.
pub fn unit_interval(name: &str, v: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("{name} must lie in [0, 1] (got {v})"))
    }
}

/// `name must be at least 1` for a size of zero.
pub fn nonzero(name: &str, v: usize) -> Result<(), String> {
    if v == 0 {
        Err(format!("{name} must be at least 1"))
    } else {
        Ok(())
    }
}
