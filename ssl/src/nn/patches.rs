//! Images as sequences of patches and back, in MAE's reference order: patch rows, patch
//! columns, then pixel rows, pixel columns, channels (`nchpwq → nhwpqc`). Masked image
//! modelling predicts, scores and draws pixels in this layout.

use tessera_autograd::{Result, Var};
use tessera_engine::{DType, Tensor};

fn invalid(op: &'static str, msg: String) -> tessera_autograd::Error {
    tessera_engine::Error::invalid(op, msg).into()
}

/// `[N, C, H, W]` → `[N, L, p·p·C]` with `L = (H/p)·(W/p)`; `p` must divide H and W.
pub fn patchify(images: &Var, p: usize) -> Result<Var> {
    let s = images.shape();
    if s.len() != 4 || p == 0 || !s[2].is_multiple_of(p) || !s[3].is_multiple_of(p) {
        return Err(invalid("patchify", format!("expects [N, C, H, W] with H and W multiples of the patch {p}, got {s:?}")));
    }
    let (n, c, h, w) = (s[0], s[1], s[2] / p, s[3] / p);
    images.reshape_to(&[n, c, h, p, w, p])?.permute(&[0, 2, 4, 3, 5, 1])?.reshape_to(&[n, h * w, p * p * c])
}

/// The inverse of [`patchify`]: `[N, L, p·p·C]` → `[N, C, H, W]` for an `H × W` image.
pub fn unpatchify(patches: &Var, p: usize, channels: usize, (height, width): (usize, usize)) -> Result<Var> {
    let s = patches.shape();
    let (h, w) = (height / p.max(1), width / p.max(1));
    let ok = s.len() == 3 && p > 0 && h * p == height && w * p == width && s[1] == h * w && s[2] == p * p * channels;
    if !ok {
        let want = format!("[N, {}, {}]", h * w, p * p * channels);
        return Err(invalid("unpatchify", format!("expects {want} for {channels}×{height}×{width} images with patch {p}, got {s:?}")));
    }
    let n = s[0];
    patches.reshape_to(&[n, h, w, p, p, channels])?.permute(&[0, 5, 1, 3, 2, 4])?.reshape_to(&[n, channels, height, width])
}

/// A patch mask `[N, L]` (any dtype, nonzero = masked) on an `h × w` patch grid as a pixel
/// mask `[N, 1, h·p, w·p]` in f32 (1.0 where masked).
pub fn patch_mask_to_pixels(mask: &Tensor, (h, w): (usize, usize), p: usize) -> tessera_engine::Result<Tensor> {
    let s = mask.shape();
    if s.len() != 2 || s[1] != h * w {
        return Err(tessera_engine::Error::invalid("patch_mask_to_pixels", format!("expects [N, {}], got {s:?}", h * w)));
    }
    let n = s[0];
    mask.to_dtype(DType::F32)?
        .reshape(&[n as isize, 1, h as isize, 1, w as isize, 1])?
        .broadcast_to(&[n, 1, h, p, w, p])?
        .contiguous()?
        .reshape(&[n as isize, 1, (h * p) as isize, (w * p) as isize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patchify_follows_the_reference_order_and_round_trips() {
        // 1 image, 2 channels, 4×4, patch 2: pixel value encodes (c, y, x).
        let data: Vec<f32> = (0..2 * 4 * 4).map(|i| i as f32).collect();
        let x = Var::constant(Tensor::from_vec(data.clone(), &[1, 2, 4, 4]).unwrap());
        let p = patchify(&x, 2).unwrap();
        assert_eq!(p.shape(), [1, 4, 8]);
        let v = p.value().to_vec::<f32>().unwrap();
        // Patch 1 (row 0, column 1), pixel (row 1, col 0), channel 1: x = 2, y = 1, c = 1.
        let (patch, py, px, c) = (1, 1, 0, 1);
        assert_eq!(v[patch * 8 + (py * 2 + px) * 2 + c], data[(c * 4 + py) * 4 + 2 + px]);
        let back = unpatchify(&p, 2, 2, (4, 4)).unwrap();
        assert_eq!(back.value().to_vec::<f32>().unwrap(), data);
        let err = unpatchify(&p, 2, 3, (4, 4)).unwrap_err().to_string();
        assert!(err.contains("[1, 4, 8]"), "{err}");
    }

    #[test]
    fn pixel_mask_covers_each_masked_patch() {
        let m = Tensor::from_vec(vec![1u8, 0, 0, 1], &[1, 4]).unwrap();
        let px = patch_mask_to_pixels(&m, (2, 2), 2).unwrap().to_vec::<f32>().unwrap();
        #[rustfmt::skip]
        let want = [1., 1., 0., 0.,  1., 1., 0., 0.,  0., 0., 1., 1.,  0., 0., 1., 1.];
        assert_eq!(px, want);
    }
}
