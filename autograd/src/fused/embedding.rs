//! Embedding lookup: rows of a `[V, D]` table picked by i64 indices of any shape.

use crate::{Result, Var};
use tessera_engine::{DType, Tensor};

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
    // Rows gathered and scattered back by the engine's index ops, so the lookup runs on
    // whichever device the table lives on.
    let flat = indices.reshape_to(&[idx.len()])?;
    let y = w.index_select(0, &flat)?.reshape_to(&out_shape)?;
    Ok(Var::from_op("embedding", y, &[weight], move |g, _| {
        Ok(vec![Some(g.reshape_to(&[flat.numel(), d])?.index_select_backward(0, &flat, v)?)])
    }))
}
