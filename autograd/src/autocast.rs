//! Mixed precision, as `torch.autocast(device, dtype=torch.bfloat16)` does it: while an
//! [`autocast`] guard is alive on a thread, the ops that gain most from 16-bit tensor cores
//! (matmul, convolutions, scaled dot-product attention) cast their f32 operands to the
//! autocast dtype and return results of that dtype, while the ops that need f32's range or
//! precision (softmax, log_softmax, sums and means, layer and batch norm, the losses) cast
//! 16-bit inputs up to f32. Binary ops whose float operands differ meet at the wider dtype.
//! Every cast is a recorded [`Var::to_dtype`], so f32 parameters get f32 gradients and the
//! backward needs no autocast of its own: call `backward` after the guard is gone, as in
//! PyTorch.
//!
//! Outside a guard nothing changes: the engine's ops take one dtype and mixed operands are an
//! error, which keeps accidental mixing visible.

use crate::{Error, Result, Var};
use std::cell::Cell;
use tessera_engine::DType;

thread_local! {
    static AUTOCAST: Cell<Option<DType>> = const { Cell::new(None) };
}

/// The dtype matmuls and convolutions run in on this thread, if autocast is on.
pub fn autocast_dtype() -> Option<DType> {
    AUTOCAST.with(|a| a.get())
}

/// While alive, autocast to its dtype is on for this thread; dropping it restores the
/// previous state, so guards nest (and `autocast` inside `autocast` switches the dtype).
#[must_use = "autocast is on only while the guard is alive"]
pub struct AutocastGuard {
    previous: Option<DType>,
}

/// Turns autocast on for this thread until the returned guard is dropped. `dtype` is the
/// lower precision, bf16 or f16.
pub fn autocast(dtype: DType) -> Result<AutocastGuard> {
    if !dtype.is_half() {
        return Err(Error::Engine(tessera_engine::Error::invalid(
            "autocast",
            format!("autocast lowers f32 to bf16 or f16, not to {}", dtype.name()),
        )));
    }
    Ok(AutocastGuard { previous: AUTOCAST.with(|a| a.replace(Some(dtype))) })
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        AUTOCAST.with(|a| a.set(self.previous));
    }
}

/// Operands of a lower-precision op: `Some` (each f32 one cast to the autocast dtype) when
/// autocast is on and something was cast, so the caller reruns itself on them; `None`
/// otherwise (then nothing was cast, and the caller goes on).
pub(crate) fn lowered<const N: usize>(vars: [Option<&Var>; N]) -> Result<Option<[Option<Var>; N]>> {
    let Some(low) = autocast_dtype() else { return Ok(None) };
    recast(vars, |d| (d == DType::F32).then_some(low))
}

/// Operands of an f32 op: `Some` (each bf16 / f16 one cast to f32) when autocast is on and
/// something was cast; `None` otherwise.
pub(crate) fn widened<const N: usize>(vars: [Option<&Var>; N]) -> Result<Option<[Option<Var>; N]>> {
    if autocast_dtype().is_none() {
        return Ok(None);
    }
    recast(vars, |d| d.is_half().then_some(DType::F32))
}

/// The operands of a binary op at their common float dtype, when autocast is on and they
/// differ: f64 over f32 over the halves, and bf16 with f16 meet at f32.
pub(crate) fn promoted(a: &Var, b: &Var) -> Result<Option<(Var, Var)>> {
    Ok(promoted_all(&[a, b])?.map(|v| {
        let [a, b]: [Var; 2] = v.try_into().unwrap_or_else(|_| unreachable!("two operands give two results"));
        (a, b)
    }))
}

/// [`promoted`] for any number of operands (PyTorch's autocast "promote" ops, `cat` and
/// `stack`): all of them at their common float dtype when autocast is on and their float
/// dtypes differ; `None` otherwise.
pub(crate) fn promoted_all(vars: &[&Var]) -> Result<Option<Vec<Var>>> {
    let dtypes: Vec<DType> = vars.iter().map(|v| v.value().dtype()).collect();
    let mixed = dtypes.iter().any(|&d| d != dtypes[0]);
    if autocast_dtype().is_none() || !mixed || !dtypes.iter().all(|d| d.is_float()) {
        return Ok(None);
    }
    let common = if dtypes.contains(&DType::F64) { DType::F64 } else { DType::F32 };
    vars.iter().map(|v| v.to_dtype(common)).collect::<Result<Vec<_>>>().map(Some)
}

/// Each var whose dtype `target` maps to a new dtype, cast to it; `None` when none was.
fn recast<const N: usize>(vars: [Option<&Var>; N], target: impl Fn(DType) -> Option<DType>) -> Result<Option<[Option<Var>; N]>> {
    let mut changed = false;
    let mut out = Vec::with_capacity(N);
    for v in vars {
        out.push(match v {
            Some(v) => match target(v.value().dtype()) {
                Some(d) => {
                    changed = true;
                    Some(v.to_dtype(d)?)
                }
                None => Some(v.clone()),
            },
            None => None,
        });
    }
    if !changed {
        return Ok(None);
    }
    Ok(Some(out.try_into().unwrap_or_else(|_| unreachable!("N operands give N results"))))
}
