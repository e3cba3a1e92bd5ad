//! Exponential moving averages for momentum encoders (MoCo's key encoder, BYOL's target).

use crate::nn::module::{Entry, Module};
use tessera_autograd::{no_grad, Result, Var};

/// `target ← m·target + (1 - m)·online`, pairwise, without recording a graph. The lists
/// must match in length and in each pair's shape and dtype.
pub fn ema_update(target: &[Var], online: &[Var], m: f64) -> Result<()> {
    if target.len() != online.len() {
        let msg = format!("the target has {} parameters, the online network {}", target.len(), online.len());
        return Err(tessera_engine::Error::invalid("ema_update", msg).into());
    }
    let _guard = no_grad();
    for (t, o) in target.iter().zip(online) {
        let (tv, ov) = (t.value(), o.value());
        if tv.shape() != ov.shape() {
            return Err(tessera_engine::Error::shapes_hint(
                "ema_update",
                tv.shape(),
                ov.shape(),
                "paired parameters must have the same shape",
            )
            .into());
        }
        t.set_value(tv.mul_scalar(m)?.add(&ov.mul_scalar(1.0 - m)?)?)?;
    }
    Ok(())
}

/// [`ema_update`] over two modules of the same architecture, pairing parameters by name
/// (an error names the first name that differs). Buffers are left alone: a momentum
/// encoder's BatchNorm keeps its own running statistics, as in MoCo.
pub fn ema_update_modules(target: &dyn Module, online: &dyn Module, m: f64) -> Result<()> {
    let (t, o) = (target.named_parameters(), online.named_parameters());
    if let Some(((a, _), (b, _))) = t.iter().zip(&o).find(|((a, _), (b, _))| a != b) {
        return Err(tessera_engine::Error::invalid("ema_update", format!("parameter names differ: {a:?} vs {b:?}")).into());
    }
    let tv: Vec<Var> = t.into_iter().map(|(_, v)| v).collect();
    let ov: Vec<Var> = o.into_iter().map(|(_, v)| v).collect();
    ema_update(&tv, &ov, m)
}

/// Copies every parameter and buffer of `src` into `dst` by name (a momentum encoder starts
/// as a copy of the online one). Both must have the same names, shapes and dtypes.
pub fn copy_state(dst: &dyn Module, src: &dyn Module) -> Result<()> {
    let values: std::collections::HashMap<String, tessera_engine::Tensor> = src.state_dict().into_iter().collect();
    let mut result = Ok(());
    dst.visit("", &mut |name, e| {
        if result.is_err() {
            return;
        }
        let Some(v) = values.get(name) else {
            if !matches!(e, Entry::Mode(_)) {
                result = Err(tessera_engine::Error::invalid("copy_state", format!("{name:?} is missing from the source")).into());
            }
            return;
        };
        result = match e {
            Entry::Param(p) => p.var().set_value(v.clone()),
            Entry::Buffer(b) => b.set(v.clone()),
            Entry::Mode(_) => Ok(()),
        };
    });
    result
}
