//! Inverted dropout: kept values are scaled by `1 / (1 - p)`; the mask is saved for backward.

use crate::{Result, Var};
use tessera_engine::{Generator, Tensor};

/// Zeroes each element with probability `p` (a no-op when `p == 0`).
pub fn dropout(x: &Var, p: f64, gen: &mut Generator) -> Result<Var> {
    if !(0.0..1.0).contains(&p) {
        return Err(tessera_engine::Error::invalid("dropout", format!("p must lie in [0, 1), got {p}")).into());
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    let xv = x.value();
    // The mask is drawn on the host (the same stream on every device), then moved.
    let scale: Tensor = gen.bernoulli(xv.shape(), 1.0 - p)?.to_device(xv.device())?.to_dtype(xv.dtype())?.mul_scalar(1.0 / (1.0 - p))?;
    let y = xv.mul(&scale)?;
    Ok(Var::from_op("dropout", y, &[x], move |g, _| Ok(vec![Some(g.mul(&scale)?)])))
}
