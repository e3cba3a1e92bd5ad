//! MLP projection and prediction heads (SimCLR, MoCo v2/v3, BYOL).

use super::batchnorm::{BatchNorm, NormDims};
use super::container::{Activation, Sequential};
use super::linear::Linear;
use super::module::{Entry, Module};
use tessera_autograd::{Result, Var};
use tessera_engine::Generator;

/// An MLP `[N, in] → [N, out]`: `layers - 1` blocks of Linear–BatchNorm1d–ReLU (the linear
/// without bias, as the BN's shift replaces it), then a final Linear, followed by a
/// non-affine BatchNorm1d when `bn_last` (MoCo v3). Names are `nn.Sequential`'s:
/// `0.weight`, `1.weight`, `1.running_mean`, ..., `3.weight`, `3.bias`.
///
/// SimCLR: `ProjectionHead::new(512, 2048, 128, 2, false, gen)` (Linear–BN–ReLU–Linear);
/// MoCo v3 projector: `(d, 4096, 256, 3, true)`, predictor: `(256, 4096, 256, 2, false)`.
pub struct ProjectionHead {
    net: Sequential,
}

impl ProjectionHead {
    /// `layers ≥ 1`; with `layers == 1` the head is a single Linear (plus BN when `bn_last`).
    pub fn new(
        in_dim: usize,
        hidden_dim: usize,
        out_dim: usize,
        layers: usize,
        bn_last: bool,
        gen: &mut Generator,
    ) -> Result<ProjectionHead> {
        if layers == 0 || in_dim == 0 || hidden_dim == 0 || out_dim == 0 {
            let msg = format!(
                "needs at least one layer and positive sizes, got in {in_dim}, hidden {hidden_dim}, out {out_dim}, layers {layers}"
            );
            return Err(tessera_engine::Error::invalid("ProjectionHead", msg).into());
        }
        let mut net = Sequential::new();
        let mut d = in_dim;
        for _ in 0..layers - 1 {
            net = net.push(Linear::new(d, hidden_dim, false, gen)?).push(BatchNorm::new_1d(hidden_dim)?).push(Activation::Relu);
            d = hidden_dim;
        }
        net = net.push(Linear::new(d, out_dim, !bn_last, gen)?);
        if bn_last {
            net = net.push(BatchNorm::with_options(out_dim, NormDims::D1, false, 1e-5, 0.1)?);
        }
        Ok(ProjectionHead { net })
    }
}

impl Module for ProjectionHead {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.net.forward(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.net.visit(prefix, f)
    }
}
