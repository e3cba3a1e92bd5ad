//! Matrix products: dA = dC·Bᵀ, dB = Aᵀ·dC, summed over broadcast batch dims.

use crate::autocast;
use crate::{Result, Var};

impl Var {
    /// `self @ rhs` with the engine's NumPy semantics (1-D operands, broadcast batches).
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        if let Some([Some(a), Some(b)]) = autocast::lowered([Some(self), Some(rhs)])? {
            return a.matmul(&b);
        }
        let (a, b) = (self.value(), rhs.value());
        let out = a.matmul(&b)?;
        Ok(Var::from_op("matmul", out, &[self, rhs], move |g, needs| {
            // Promote 1-D operands to matrices, as the forward did, so one rule serves all.
            let a2 = if a.rank() == 1 { a.unsqueeze(0)? } else { a.clone() };
            let b2 = if b.rank() == 1 { b.unsqueeze(1)? } else { b.clone() };
            let mut gshape: Vec<usize> = g.shape().to_vec();
            if a.rank() == 1 {
                gshape.insert(gshape.len() - usize::from(b.rank() != 1), 1);
            }
            if b.rank() == 1 {
                gshape.push(1);
            }
            let g2 = g.reshape_to(&gshape)?;
            let ga = needs[0].then(|| g2.matmul(&b2.t()?)?.sum_to_shape(a2.shape())?.reshape_to(a.shape())).transpose()?;
            let gb = needs[1].then(|| a2.t()?.matmul(&g2)?.sum_to_shape(b2.shape())?.reshape_to(b.shape())).transpose()?;
            Ok(vec![ga, gb])
        }))
    }
}
