//! Transforms that build the targets of pretext and masked-modelling methods: rotation
//! prediction, jigsaw puzzles, colorization (CIE Lab with quantized ab targets) and MAE /
//! SimMIM patch masks.

pub mod colorization;
pub mod colour_prior;
pub mod jigsaw;
pub mod lab;
pub mod masking;
pub mod rotation;

pub use colorization::{denormalize, downsample, ColorizationTask};
pub use colour_prior::{ab_histogram, rebalancing_weights, smooth, ColourPrior};
pub use jigsaw::{normalize_tile, Jigsaw, JigsawSample, JigsawTask, PermutationSet};
pub use lab::{lab_to_rgb, rgb_to_lab, AbQuantizer, SoftTargets};
pub use masking::{mae_mask, mae_mask_batch, MaeBatchMask, MaeMask, MaeMasking, SimMimMasker, SimMimMasking};
pub use rotation::{rot90, rotation_batch, RotationTask};

use crate::data::error::{DataError, Result};
use crate::data::recipe::TrainBatch;

/// The first view of a batch as host f32 values with its `[B, C, H, W]` shape: what the
/// pretext batch tasks cut, rotate or convert.
pub fn first_view(batch: &TrainBatch, what: &'static str) -> Result<(Vec<f32>, [usize; 4])> {
    let v = batch.views.first().ok_or_else(|| DataError::invalid(what, "the batch has no view"))?;
    match *v.shape() {
        [b, c, h, w] => Ok((v.to_vec::<f32>()?, [b, c, h, w])),
        ref s => Err(DataError::invalid(what, format!("needs a [B, C, H, W] view, got {s:?}"))),
    }
}
