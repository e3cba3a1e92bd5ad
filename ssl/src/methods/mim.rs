//! What MAE and SimMIM share: the Vision Transformer they feed patches and masks, the
//! bookkeeping from a patch mask to the encoder's kept indices, and the reconstruction
//! picture (original, masked input, reconstruction, reconstruction with the visible patches
//! pasted back).

use std::rc::Rc;

use super::Backbone;
use crate::data::ImageGrid;
use crate::nn::{patch_mask_to_pixels, EncoderSpec, VisionTransformer, VitConfig};
use tessera_autograd::Result;
use tessera_engine::{DType, Device, Generator, Tensor};

/// The grey that marks masked patches in the picture (the embedded data's background is
/// black, so black would hide the mask).
const MASK_GREY: f64 = 0.5;

/// Seed of the masks drawn for pictures: the same patches are hidden every epoch, so
/// pictures of successive epochs compare.
pub const PICTURE_MASK_SEED: u64 = 0x5EE;

/// The ViT `spec` names, its config changed by `adjust` (a method's positions, layer scale),
/// as the method's backbone; the error says that `method` needs a ViT when `spec` names a
/// ResNet.
pub fn vit_backbone(
    spec: &EncoderSpec,
    adjust: impl FnOnce(VitConfig) -> VitConfig,
    method: &str,
    gen: &mut Generator,
) -> std::result::Result<(Rc<VisionTransformer>, Backbone), String> {
    spec.validate()?;
    let cfg = spec.vit_config().ok_or_else(|| needs_vit(method, &spec.name))?;
    let vit = Rc::new(VisionTransformer::new(&adjust(cfg), gen).map_err(|e| e.to_string())?);
    let dim = vit.feature_dim();
    Ok((vit.clone(), Backbone { net: Box::new(vit), dim }))
}

/// The one-line refusal of a CNN encoder.
pub fn needs_vit(method: &str, encoder: &str) -> String {
    format!("{method} needs a Vision Transformer encoder (vit-tiny or vit-small), got {encoder}")
}

/// Refuses a mask ratio outside (0, 1).
pub fn check_mask_ratio(ratio: f64) -> std::result::Result<(), String> {
    if ratio > 0.0 && ratio < 1.0 {
        Ok(())
    } else {
        Err(format!("mask_ratio must lie strictly between 0 and 1 (got {ratio})"))
    }
}

/// From a patch mask u8 `[B, L]` (1 = masked; the same count in every row): the kept patch
/// indices `[B, K]` in ascending order, and `ids_restore` `[B, L]`, where each patch sits in
/// the sequence "kept patches, then masked patches" (both i64, on the mask's device).
pub fn kept_and_restore(mask: &Tensor) -> Result<(Tensor, Tensor)> {
    let s = mask.shape().to_vec();
    if s.len() != 2 {
        return Err(tessera_engine::Error::invalid("kept_and_restore", format!("the mask must be [B, L], got {s:?}")).into());
    }
    let (b, l) = (s[0], s[1]);
    let m = mask.to_device(Device::Cpu)?.to_dtype(DType::U8)?.to_vec::<u8>()?;
    let kept_count = m[..l.min(m.len())].iter().filter(|&&v| v == 0).count();
    let (mut keep, mut restore) = (Vec::with_capacity(b * kept_count), vec![0i64; b * l]);
    for (row, r) in m.chunks_exact(l.max(1)).zip(restore.chunks_exact_mut(l.max(1))) {
        let kept: Vec<usize> = (0..l).filter(|&i| row[i] == 0).collect();
        if kept.len() != kept_count {
            let msg = format!("every row must mask as many patches; row 0 keeps {kept_count}, another {}", kept.len());
            return Err(tessera_engine::Error::invalid("kept_and_restore", msg).into());
        }
        let order = kept.iter().copied().chain((0..l).filter(|&i| row[i] != 0));
        for (pos, patch) in order.enumerate() {
            r[patch] = pos as i64;
        }
        keep.extend(kept.iter().map(|&i| i as i64));
    }
    let device = mask.device();
    Ok((Tensor::from_vec(keep, &[b, kept_count])?.to_device(device)?, Tensor::from_vec(restore, &[b, l])?.to_device(device)?))
}

/// Raw pixels in [0, 1] → the model's input, normalized by `(mean, std)`.
pub fn normalize(raw: &Tensor, (mean, std): (f32, f32)) -> tessera_engine::Result<Tensor> {
    raw.add_scalar(-mean as f64)?.mul_scalar(1.0 / std as f64)
}

/// The reconstruction picture of `raw` images (in [0, 1]) for a patch `mask` u8 `[B, L]` on
/// a square patch grid and `recon` in the model's normalized space `[B, C, H, W]`.
pub fn reconstruction_grid(raw: &Tensor, norm: (f32, f32), mask: &Tensor, patch: usize, recon: &Tensor) -> Result<ImageGrid> {
    let raw = raw.to_device(Device::Cpu)?;
    let [h, w] = [raw.shape()[2], raw.shape()[3]];
    let m = patch_mask_to_pixels(&mask.to_device(Device::Cpu)?, (h / patch, w / patch), patch)?;
    let visible = m.mul_scalar(-1.0)?.add_scalar(1.0)?;
    let recon =
        recon.to_device(Device::Cpu)?.to_dtype(DType::F32)?.mul_scalar(norm.1 as f64)?.add_scalar(norm.0 as f64)?.clamp(0.0, 1.0)?;
    let masked_input = raw.mul(&visible)?.add(&m.mul_scalar(MASK_GREY)?)?;
    let pasted = raw.mul(&visible)?.add(&recon.mul(&m)?)?;
    Ok(ImageGrid::new("reconstructions")
        .column("original", &raw)?
        .column("masked input", &masked_input)?
        .column("reconstruction", &recon)?
        .column("reconstruction + visible", &pasted)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_indices_and_restore_invert_each_other() {
        let mask = Tensor::from_vec(vec![1u8, 0, 1, 0, 0, 1, 1, 0], &[2, 4]).unwrap();
        let (keep, restore) = kept_and_restore(&mask).unwrap();
        assert_eq!(keep.to_vec::<i64>().unwrap(), [1, 3, 0, 3]);
        // Row 0: order kept [1, 3] then masked [0, 2] → restore[1] = 0, [3] = 1, [0] = 2, [2] = 3.
        assert_eq!(restore.to_vec::<i64>().unwrap(), [2, 0, 3, 1, 0, 2, 3, 1]);
        let uneven = Tensor::from_vec(vec![1u8, 0, 0, 0, 0, 1, 1, 0], &[2, 4]).unwrap();
        assert!(kept_and_restore(&uneven).unwrap_err().to_string().contains("as many"));
    }
}
