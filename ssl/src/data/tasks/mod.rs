//! Transforms that build the targets of pretext and masked-modelling methods: rotation
//! prediction, jigsaw puzzles, colorization (CIE Lab with quantized ab targets) and MAE /
//! SimMIM patch masks.

pub mod jigsaw;
pub mod lab;
pub mod masking;
pub mod rotation;

pub use jigsaw::{Jigsaw, JigsawSample, PermutationSet};
pub use lab::{lab_to_rgb, rgb_to_lab, AbQuantizer, SoftTargets};
pub use masking::{mae_mask, mae_mask_batch, MaeBatchMask, MaeMask, MaeMasking, SimMimMasker, SimMimMasking};
pub use rotation::{rot90, rotation_batch};
