//! SimCLR (Chen et al., 2020), Algorithm 1: two augmented views of each image, a shared
//! encoder f, a projection head g, and the NT-Xent loss on z = g(f(x)). The representation
//! used downstream is h = f(x), before the head.

use super::{nt_xent, Method, StepOutput};
use crate::nn::{join, Entry, Module, ProjectionHead};
use tessera_autograd::{Result, Var};
use tessera_engine::{Generator, Tensor};

/// The SimCLR model: encoder, projection head and temperature.
pub struct SimClr {
    pub encoder: Box<dyn Module>,
    pub feature_dim: usize,
    pub projector: ProjectionHead,
    pub temperature: f64,
}

impl SimClr {
    /// `feature_dim` is the encoder's output width; the head is Linear-BN-ReLU-Linear
    /// (`feature_dim → hidden → out`).
    pub fn new(
        encoder: Box<dyn Module>,
        feature_dim: usize,
        hidden: usize,
        out: usize,
        temperature: f64,
        gen: &mut Generator,
    ) -> Result<SimClr> {
        Ok(SimClr { encoder, feature_dim, projector: ProjectionHead::new(feature_dim, hidden, out, 2, false, gen)?, temperature })
    }
}

impl Method for SimClr {
    fn name(&self) -> &'static str {
        "simclr"
    }

    fn num_views(&self) -> usize {
        2
    }

    fn encoder(&self) -> &dyn Module {
        self.encoder.as_ref()
    }

    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn training_step(&self, views: &[Tensor]) -> Result<StepOutput> {
        let n = views[0].shape()[0];
        // Both views go through the encoder as one batch of 2N, so batch norm sees both, as in
        // the paper's single-device setting; rows i and i + N are the positive pair.
        let x = Var::constant(Tensor::cat(&[&views[0], &views[1]], 0)?);
        let h = self.encoder.forward(&x)?;
        let z = self.projector.forward(&h)?;
        let loss = nt_xent(&z, self.temperature)?;
        Ok(StepOutput { loss, features: h.value().narrow(0, 0, n)? })
    }
}

impl Module for SimClr {
    /// The representation h = f(x).
    fn forward(&self, x: &Var) -> Result<Var> {
        self.encoder.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.encoder.visit(&join(prefix, "encoder"), f);
        self.projector.visit(&join(prefix, "projector"), f);
    }
}
