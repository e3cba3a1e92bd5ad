//! The losses of masked image modelling: MAE's per-patch mean squared error on the masked
//! patches (optionally against per-patch normalized pixels) and SimMIM's L1 on the masked
//! pixels, each as its reference code computes it.

use crate::nn::patchify;
use tessera_autograd::{Result, Var};
use tessera_engine::{DType, Tensor};

/// The eps under MAE's per-patch standard deviation (`norm_pix_loss`).
pub const MAE_NORM_EPS: f64 = 1e-6;

fn shapes(op: &'static str, a: &[usize], b: &[usize], hint: String) -> tessera_autograd::Error {
    tessera_engine::Error::shapes_hint(op, a, b, hint).into()
}

/// MAE's regression targets `[N, L, p·p·C]`: the patches of `images`, each normalized by
/// its own mean and unbiased variance (`(x − μ) / √(σ² + 1e-6)`) when `norm_pix`.
pub fn mae_targets(images: &Var, patch: usize, norm_pix: bool) -> Result<Var> {
    let target = patchify(images, patch)?;
    if !norm_pix {
        return Ok(target);
    }
    let mean = target.mean(&[-1], true)?;
    // PyTorch's `var` default is unbiased (divides by n − 1): the reference relies on it.
    let var = target.var(&[-1], true, true)?;
    target.sub(&mean)?.div(&var.add_scalar(MAE_NORM_EPS)?.sqrt()?)
}

/// MAE's loss (He et al. 2022): the mean squared error between `pred` `[N, L, p·p·C]` and
/// the patches of `images` `[N, C, H, W]` (see [`mae_targets`]; patch order and pixel order
/// as [`patchify`]), averaged over each patch's values, then over the masked patches only:
/// `Σ_patches mse · mask / Σ mask`. `mask` `[N, L]` is 1 where a patch was masked (any
/// dtype). With `norm_pix` the target is each patch normalized by its own mean and
/// unbiased variance (eps 1e-6), as the released models were trained.
pub fn mae_loss(images: &Var, pred: &Var, mask: &Tensor, patch: usize, norm_pix: bool) -> Result<Var> {
    let target = mae_targets(images, patch, norm_pix)?;
    if pred.shape() != target.shape() {
        return Err(shapes("mae_loss", &pred.shape(), &target.shape(), "pred must be [N, L, p·p·C] like the images' patches".into()));
    }
    let s = target.shape();
    if mask.shape() != [s[0], s[1]] {
        return Err(shapes("mae_loss", mask.shape(), &s[..2], format!("mask must be [N, L] = [{}, {}]", s[0], s[1])));
    }
    let m = Var::constant(mask.to_dtype(pred.value().dtype())?);
    let per_patch = pred.sub(&target)?.square()?.mean(&[-1], false)?;
    per_patch.mul(&m)?.sum_all()?.div(&m.sum_all()?)
}

/// SimMIM's loss (Xie et al. 2022): the L1 distance between `images` and `recon`
/// `[N, C, H, W]` over the masked pixels, summed and divided by (masked pixels + 1e-5) and
/// by the channel count, as the reference code does. `pixel_mask` `[N, 1, H, W]` (or
/// `[N, H, W]`) is 1 where a pixel was masked, shared by the channels.
pub fn simmim_loss(images: &Var, recon: &Var, pixel_mask: &Tensor) -> Result<Var> {
    let s = images.shape();
    if recon.shape() != s || s.len() != 4 {
        return Err(shapes("simmim_loss", &recon.shape(), &s, "recon must be [N, C, H, W] like the images".into()));
    }
    let want = [s[0], 1, s[2], s[3]];
    let m = match pixel_mask.shape() {
        m if m == want => pixel_mask.to_dtype(DType::F32)?,
        m if m == [s[0], s[2], s[3]] => pixel_mask.to_dtype(DType::F32)?.reshape(&[s[0] as isize, 1, s[2] as isize, s[3] as isize])?,
        m => return Err(shapes("simmim_loss", m, &want, "pixel_mask must be [N, 1, H, W] or [N, H, W]".into())),
    };
    let m = Var::constant(m.to_dtype(recon.value().dtype())?);
    let l1 = images.sub(recon)?.abs()?.mul(&m)?.sum_all()?;
    l1.div(&m.sum_all()?.add_scalar(1e-5)?)?.mul_scalar(1.0 / s[1] as f64)
}
