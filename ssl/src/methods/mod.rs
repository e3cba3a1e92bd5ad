//! Self-supervised methods, one file per method, each reading like its paper. The training
//! loop, augmentation, evaluation and logging are shared (`train`, `data`, `eval`).

mod nt_xent;
mod simclr;

pub use nt_xent::nt_xent;
pub use simclr::SimClr;

use crate::nn::Module;
use tessera_autograd::{Result, Var};
use tessera_engine::Tensor;

/// What one training step of a method produces.
pub struct StepOutput {
    /// The scalar loss to backpropagate.
    pub loss: Var,
    /// Encoder features of the first view `[B, D]`, detached: the online probe trains on them.
    pub features: Tensor,
}

/// A self-supervised method: a model (a [`Module`] whose parameters and buffers are all its
/// trainable state) that turns a batch of views into a loss.
pub trait Method: Module {
    fn name(&self) -> &'static str;
    /// Augmented views per image the method needs.
    fn num_views(&self) -> usize;
    /// The encoder whose features are evaluated.
    fn encoder(&self) -> &dyn Module;
    /// Width of the encoder's features.
    fn feature_dim(&self) -> usize;
    /// The loss on one batch; `views[v]` is `[B, C, H, W]`.
    fn training_step(&self, views: &[Tensor]) -> Result<StepOutput>;
    /// Called after each optimizer step (momentum encoders update here).
    fn after_step(&self, _step: u64, _total_steps: u64) -> Result<()> {
        Ok(())
    }
}
