//! Losses: cross-entropy with integer or soft targets, and (masked) mean squared and absolute
//! errors. Each reduces to a 0-d mean.

use crate::autocast;
use crate::{Error, Result, Var};
use tessera_engine::{DType, Tensor};

/// Cross-entropy of `logits [N, C]` against a target distribution `q [N, C]` (rows summing
/// to `Σq`): `mean_i Σ_c -q·log_softmax`. Gradient: `(softmax · Σ_c q - q) / N`.
fn soft_ce(name: &'static str, logits: &Var, q: Tensor) -> Result<Var> {
    let x = logits.value();
    let n = x.shape()[0] as f64;
    let logp = x.log_softmax(-1)?;
    let loss = q.mul(&logp)?.sum_all()?.mul_scalar(-1.0 / n)?;
    Ok(Var::from_op(name, loss, &[logits], move |g, _| {
        let rowsum = q.sum(&[-1], true)?;
        // Scaled by the incoming 0-d gradient on its own device: no host round trip.
        let grad = logp.exp()?.mul(&rowsum)?.sub(&q)?.mul(g)?.mul_scalar(1.0 / n)?;
        Ok(vec![Some(grad)])
    }))
}

fn check_logits(op: &'static str, logits: &Tensor) -> Result<(usize, usize)> {
    if logits.rank() != 2 || logits.shape()[0] == 0 {
        return Err(tessera_engine::Error::invalid(op, format!("needs logits of shape [N, C] with N > 0, got {:?}", logits.shape())).into());
    }
    Ok((logits.shape()[0], logits.shape()[1]))
}

/// Mean cross-entropy of `logits [N, C]` against integer `targets [N]` (i64 in `0..C`), with
/// optional label smoothing `ε` (targets become `(1-ε)·onehot + ε/C`), as PyTorch defines it.
pub fn cross_entropy(logits: &Var, targets: &Tensor, label_smoothing: f64) -> Result<Var> {
    if let Some([Some(l)]) = autocast::widened([Some(logits)])? {
        return cross_entropy(&l, targets, label_smoothing);
    }
    let x = logits.value();
    let (n, c) = check_logits("cross_entropy", &x)?;
    if targets.dtype() != DType::I64 || targets.shape() != [n] {
        return Err(tessera_engine::Error::shapes_hint(
            "cross_entropy",
            x.shape(),
            targets.shape(),
            format!("targets must be i64 of shape [{n}], got {:?}", targets.dtype()),
        )
        .into());
    }
    if !(0.0..1.0).contains(&label_smoothing) {
        return Err(Error::Engine(tessera_engine::Error::invalid(
            "cross_entropy",
            format!("label_smoothing must lie in [0, 1), got {label_smoothing}"),
        )));
    }
    let labels = targets.to_vec::<i64>()?;
    let mut q = vec![label_smoothing / c as f64; n * c];
    for (i, &y) in labels.iter().enumerate() {
        if y < 0 || y as usize >= c {
            return Err(tessera_engine::Error::invalid("cross_entropy", format!("target {y} at position {i} is outside 0..{c}")).into());
        }
        q[i * c + y as usize] += 1.0 - label_smoothing;
    }
    let q = Tensor::from_vec(q, &[n, c])?.to_dtype(x.dtype())?.to_device(x.device())?;
    soft_ce("cross_entropy", logits, q)
}

/// Mean cross-entropy of `logits [N, C]` against soft targets `[N, C]` (probabilities).
pub fn cross_entropy_soft(logits: &Var, targets: &Tensor) -> Result<Var> {
    if let Some([Some(l)]) = autocast::widened([Some(logits)])? {
        return cross_entropy_soft(&l, targets);
    }
    let x = logits.value();
    check_logits("cross_entropy_soft", &x)?;
    if targets.shape() != x.shape() {
        return Err(
            tessera_engine::Error::shapes_hint("cross_entropy_soft", x.shape(), targets.shape(), "targets must match the logits").into()
        );
    }
    soft_ce("cross_entropy_soft", logits, targets.to_dtype(x.dtype())?)
}

/// `Σ f(pred - target)·m / Σ m`, with `m` the mask broadcast to pred's shape (all ones when
/// absent, giving the plain mean). `df` is f's derivative.
fn masked_mean_error(
    name: &'static str,
    pred: &Var,
    target: &Var,
    mask: Option<&Tensor>,
    f: fn(&Tensor) -> tessera_engine::Result<Tensor>,
    df: fn(&Tensor) -> tessera_engine::Result<Tensor>,
) -> Result<Var> {
    if let Some([Some(p), Some(t)]) = autocast::widened([Some(pred), Some(target)])? {
        return masked_mean_error(name, &p, &t, mask, f, df);
    }
    let (p, t) = (pred.value(), target.value());
    if p.shape() != t.shape() {
        return Err(tessera_engine::Error::shapes_hint(name, p.shape(), t.shape(), "prediction and target must have the same shape").into());
    }
    let e = p.sub(&t)?;
    let m = match mask {
        Some(m) => m
            .to_dtype(p.dtype())?
            .expand(p.shape())
            .map_err(|_| tessera_engine::Error::shapes_hint(name, p.shape(), m.shape(), "the mask must broadcast to the prediction"))?,
        None => Tensor::full_on(&[], 1.0, p.dtype(), p.device())?.expand(p.shape())?,
    };
    let denom = m.sum_all()?.item()?;
    if denom <= 0.0 {
        return Err(tessera_engine::Error::invalid(name, "the mask selects no element").into());
    }
    let loss = f(&e)?.mul(&m)?.sum_all()?.div_scalar(denom)?;
    Ok(Var::from_op(name, loss, &[pred, target], move |g, needs| {
        let gp = df(&e)?.mul(&m)?.mul(g)?.mul_scalar(1.0 / denom)?;
        Ok(vec![needs[0].then(|| gp.clone()), needs[1].then(|| gp.neg()).transpose()?])
    }))
}

/// Mean squared error, over the elements a mask selects when given (MAE's loss over masked
/// patches: pass the `[N, L, 1]` patch mask for `[N, L, P]` predictions).
pub fn mse_loss(pred: &Var, target: &Var, mask: Option<&Tensor>) -> Result<Var> {
    masked_mean_error("mse_loss", pred, target, mask, |e| e.square(), |e| e.mul_scalar(2.0))
}

/// Mean absolute error, over the elements a mask selects when given (SimMIM's loss).
/// The subgradient at 0 is 0.
pub fn l1_loss(pred: &Var, target: &Var, mask: Option<&Tensor>) -> Result<Var> {
    masked_mean_error("l1_loss", pred, target, mask, |e| e.abs(), |e| e.sign())
}
