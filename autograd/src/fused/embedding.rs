//! Embedding lookup: rows of a `[V, D]` table picked by i64 indices of any shape.

use crate::{Result, Var};
use tessera_engine::{with_float, DType, Element, Tensor};

/// `weight[indices]`: output shape `indices.shape() + [D]`. The gradient adds each output
/// row back into its table row.
pub fn embedding(indices: &Tensor, weight: &Var) -> Result<Var> {
    let w = weight.value();
    if w.rank() != 2 {
        return Err(tessera_engine::Error::invalid("embedding", format!("the table must have shape [V, D], got {:?}", w.shape())).into());
    }
    if indices.dtype() != DType::I64 {
        return Err(tessera_engine::Error::UnsupportedDType { op: "embedding", dtype: indices.dtype(), expected: "i64" }.into());
    }
    let (v, d) = (w.shape()[0], w.shape()[1]);
    let idx = indices.to_vec::<i64>()?;
    if let Some((i, bad)) = idx.iter().enumerate().find(|(_, &i)| i < 0 || i as usize >= v) {
        return Err(
            tessera_engine::Error::invalid("embedding", format!("index {bad} at position {i} is outside the table's {v} rows")).into()
        );
    }
    let mut out_shape = indices.shape().to_vec();
    out_shape.push(d);
    let y = with_float!(w.dtype(), "embedding", |T| {
        let table = w.to_vec::<T>()?;
        let mut out = Vec::with_capacity(idx.len() * d);
        for &i in &idx {
            out.extend_from_slice(&table[i as usize * d..(i as usize + 1) * d]);
        }
        Tensor::from_vec(out, &out_shape)
    })?;
    Ok(Var::from_op("embedding", y, &[weight], move |g, _| {
        let gw = with_float!(g.dtype(), "embedding", |T| {
            let gv = g.to_vec::<T>()?;
            let mut acc = vec![T::from_f64(0.0); v * d];
            for (r, &i) in idx.iter().enumerate() {
                for j in 0..d {
                    acc[i as usize * d + j] = acc[i as usize * d + j] + gv[r * d + j];
                }
            }
            Tensor::from_vec(acc, &[v, d])
        })?;
        Ok(vec![Some(gw)])
    }))
}
