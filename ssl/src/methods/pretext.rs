//! What the pretext methods (rotation, jigsaw, colorization) share: a classification
//! pretext task scored by cross-entropy, its accuracy for the epoch log, and the choice of
//! view their `augment` key makes.

use super::ViewAugment;
use tessera_autograd::{fused, Result, Var};
use tessera_engine::{DType, Error, Tensor};

/// The integer targets a batch task put in `TrainBatch::targets`; the error names the method.
pub fn class_targets<'a>(method: &'static str, targets: Option<&'a Tensor>) -> Result<&'a Tensor> {
    match targets {
        Some(t) if t.dtype() == DType::I64 && t.rank() == 1 => Ok(t),
        Some(t) => {
            Err(Error::invalid(method, format!("needs i64 targets [N] from its batch task, got {:?} {:?}", t.dtype(), t.shape())).into())
        }
        None => Err(Error::invalid(method, "the batch has no targets: build it with the method's data recipe").into()),
    }
}

/// A classification pretext step: the mean cross-entropy of `logits [N, C]` against
/// `targets [N]` and, per row, whether the arg-max was right (1.0 or 0.0).
pub fn classify(logits: &Var, targets: &Tensor) -> Result<(Var, Vec<f64>)> {
    let loss = fused::cross_entropy(logits, targets, 0.0)?;
    let predicted = logits.value().argmax(-1, false)?.to_vec::<i64>()?;
    let truth = targets.to_vec::<i64>()?;
    Ok((loss, predicted.iter().zip(&truth).map(|(p, t)| if p == t { 1.0 } else { 0.0 }).collect()))
}

/// The mean of `hits` over the rows whose index `i` satisfies `keep(i)` (0 when none does).
pub fn mean_where(hits: &[f64], keep: impl Fn(usize) -> bool) -> f64 {
    let (sum, n) = hits.iter().enumerate().filter(|(i, _)| keep(*i)).fold((0.0, 0usize), |(s, n), (_, h)| (s + h, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// `plain` or `light`, as the pretext methods' `augment` key takes it.
pub fn pretext_view(augment: &str) -> std::result::Result<ViewAugment, String> {
    match augment {
        "plain" => Ok(ViewAugment::Plain),
        "light" => Ok(ViewAugment::Light),
        other => Err(format!("augment must be plain or light (got '{other}')")),
    }
}
