//! Embedding tables (`nn.Embedding`).

use super::module::{join, Entry, Module, Param};
use tessera_autograd::{fused, Result, Var};
use tessera_engine::{DType, Generator, Tensor};

/// A `weight [V, D]` table looked up by i64 indices of any shape: output `indices.shape + [D]`.
pub struct Embedding {
    pub weight: Param,
}

impl Embedding {
    /// PyTorch's init: standard normal, f32.
    pub fn new(num_embeddings: usize, dim: usize, gen: &mut Generator) -> Result<Embedding> {
        Ok(Embedding { weight: Param::new(gen.normal(&[num_embeddings, dim], 0.0, 1.0, DType::F32)?)? })
    }

    /// Rows of the table for i64 `indices`.
    pub fn lookup(&self, indices: &Tensor) -> Result<Var> {
        fused::embedding(indices, &self.weight.get())
    }
}

impl Module for Embedding {
    /// The input's value must be an i64 index tensor (a constant).
    fn forward(&self, x: &Var) -> Result<Var> {
        self.lookup(&x.value())
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(&join(prefix, "weight"), Entry::Param(&self.weight));
    }
}
