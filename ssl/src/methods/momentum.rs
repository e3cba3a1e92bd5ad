//! Momentum (EMA) encoders, shared by MoCo v2 and v3 (and any BYOL-style method): a frozen
//! copy of the online backbone and head, moved towards it after every optimizer step.

use crate::nn::optim::{copy_state, ema_update_modules};
use crate::nn::{join, Entry, Module};
use tessera_autograd::{no_grad, Result, Var};
use tessera_engine::Tensor;

/// MoCo v3's schedule: the momentum rises from `base` at step 0 to 1 at `total` along a
/// half cosine, `1 − (1 − base)·(1 + cos(π·step/total))/2`.
pub fn cosine_momentum(base: f64, step: u64, total: u64) -> f64 {
    let t = step.min(total) as f64 / total.max(1) as f64;
    1.0 - (1.0 - base) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
}

/// The key (momentum) network: a backbone and a head of the same architecture as the online
/// ones, frozen, so no optimizer updates them and no graph is recorded through them.
pub struct MomentumEncoder {
    pub backbone: Box<dyn Module>,
    pub head: Box<dyn Module>,
}

impl MomentumEncoder {
    /// Takes freshly built copies of the online networks' architecture and sets their weights
    /// and buffers to the online ones (MoCo starts the key encoder as a copy).
    pub fn new(backbone: Box<dyn Module>, head: Box<dyn Module>, online: (&dyn Module, &dyn Module)) -> Result<MomentumEncoder> {
        copy_state(backbone.as_ref(), online.0)?;
        copy_state(head.as_ref(), online.1)?;
        backbone.freeze();
        head.freeze();
        Ok(MomentumEncoder { backbone, head })
    }

    /// `key ← m·key + (1 − m)·online`, parameter by parameter (buffers keep their own
    /// running statistics, as in MoCo).
    pub fn update(&self, online: (&dyn Module, &dyn Module), m: f64) -> Result<()> {
        ema_update_modules(self.backbone.as_ref(), online.0, m)?;
        ema_update_modules(self.head.as_ref(), online.1, m)
    }

    /// `head(backbone(x))` without a graph: no gradient buffers are kept for the key path.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let _no_graph = no_grad();
        Ok(self.head.forward(&self.backbone.forward(&Var::constant(x.clone()))?)?.value())
    }

    /// Names follow the online networks' under `prefix`: `{prefix}.encoder.*`,
    /// `{prefix}.projector.*`.
    pub fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(&join(prefix, "encoder"), f);
        self.head.visit(&join(prefix, "projector"), f);
    }
}
