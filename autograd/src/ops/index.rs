//! Indexing ops: the gradient of a gather is a scatter-add of the gradient, and vice versa.

use crate::{Result, Var};
use tessera_engine::Tensor;

impl Var {
    /// Entries of `axis` picked by i64 `index [K]`; the gradient adds back into the picked rows.
    pub fn index_select(&self, axis: isize, index: &Tensor) -> Result<Var> {
        let x = self.value();
        let y = x.index_select(axis, index)?;
        let (index, size) = (index.clone(), x.dim(axis)?);
        Ok(Var::from_op("index_select", y, &[self], move |g, _| Ok(vec![Some(g.index_select_backward(axis, &index, size)?)])))
    }

    /// `out[i][j] = self[index[i][j]][j]` along `axis` (PyTorch's gather).
    pub fn gather(&self, axis: isize, index: &Tensor) -> Result<Var> {
        let x = self.value();
        let y = x.gather(axis, index)?;
        let index = index.clone();
        Ok(Var::from_op("gather", y, &[self], move |g, _| Ok(vec![Some(x.zeros_like()?.scatter_add(axis, &index, g)?)])))
    }

    /// `self` with `src` added at the positions `index` names along `axis`.
    pub fn scatter_add(&self, axis: isize, index: &Tensor, src: &Var) -> Result<Var> {
        let y = self.value().scatter_add(axis, index, &src.value())?;
        let index = index.clone();
        Ok(Var::from_op("scatter_add", y, &[self, src], move |g, needs| {
            Ok(vec![needs[0].then(|| g.clone()), needs[1].then(|| g.gather(axis, &index)).transpose()?])
        }))
    }

    /// `value` where the u8 `mask` (broadcast) is non-zero; no gradient flows there.
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Var> {
        let y = self.value().masked_fill(mask, value)?;
        let mask = mask.clone();
        Ok(Var::from_op("masked_fill", y, &[self], move |g, _| Ok(vec![Some(g.masked_fill(&mask, 0.0)?)])))
    }
}
