//! im2col / col2im for one image: the slice-level kernels behind `unfold`, `fold` and the
//! GEMM-based convolutions.
//!
//! An image is `channels × h × w` contiguous; its column matrix is
//! `(channels·kh·kw) × (oh·ow)` contiguous, row `(c·kh + i)·kw + j` holding the input value
//! under kernel tap `(i, j)` of channel `c` for every output position (0 in the padding).
//! For every tap the range of output positions that land inside the image is computed up
//! front, so the inner loops have no bounds tests and, at stride 1, are plain `memcpy`s /
//! vectorized adds.

pub use crate::kinds::ConvGeom;
use std::ops::AddAssign;

/// Output positions `o` in `[lo, hi)` (with `hi ≤ out_len`) for which the input position
/// `o·s + koff - p` lies in `[0, n)`.
#[inline]
pub fn valid_range(n: usize, out_len: usize, s: usize, koff: usize, p: usize) -> (usize, usize) {
    let lo = if p > koff { (p - koff).div_ceil(s) } else { 0 };
    let hi = if n + p > koff { ((n + p - koff - 1) / s + 1).min(out_len) } else { 0 };
    (lo.min(hi), hi)
}

/// Fills `cols` (`g.col_rows() × g.col_len()`) from one image `src` (`g.image_len()`).
pub fn im2col<T: Copy + Default>(src: &[T], g: &ConvGeom, cols: &mut [T]) {
    let (l, plane) = (g.col_len(), g.h * g.w);
    debug_assert!(src.len() >= g.image_len() && cols.len() >= g.col_rows() * l);
    if l == 0 {
        return;
    }
    let zero = T::default();
    for c in 0..g.channels {
        let img = &src[c * plane..(c + 1) * plane];
        for i in 0..g.kh {
            let (y0, y1) = valid_range(g.h, g.oh, g.sh, i * g.dh, g.ph);
            for j in 0..g.kw {
                let (x0, x1) = valid_range(g.w, g.ow, g.sw, j * g.dw, g.pw);
                let r = (c * g.kh + i) * g.kw + j;
                let row = &mut cols[r * l..(r + 1) * l];
                row[..y0 * g.ow].fill(zero);
                row[y1 * g.ow..].fill(zero);
                for oy in y0..y1 {
                    let out = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    out[..x0].fill(zero);
                    out[x1..].fill(zero);
                    if x0 == x1 {
                        continue;
                    }
                    let iy = oy * g.sh + i * g.dh - g.ph;
                    let ix0 = x0 * g.sw + j * g.dw - g.pw;
                    let line = &img[iy * g.w..(iy + 1) * g.w];
                    let out = &mut out[x0..x1];
                    if g.sw == 1 {
                        out.copy_from_slice(&line[ix0..ix0 + out.len()]);
                    } else {
                        for (t, o) in out.iter_mut().enumerate() {
                            *o = line[ix0 + t * g.sw];
                        }
                    }
                }
            }
        }
    }
}

/// Adds the column matrix `cols` back into the image `dst` (overlapping windows sum): the
/// adjoint of [`im2col`]. `dst` is accumulated into, not overwritten.
pub fn col2im<T: Copy + AddAssign>(cols: &[T], g: &ConvGeom, dst: &mut [T]) {
    let (l, plane) = (g.col_len(), g.h * g.w);
    debug_assert!(dst.len() >= g.image_len() && cols.len() >= g.col_rows() * l);
    if l == 0 {
        return;
    }
    for c in 0..g.channels {
        let img = &mut dst[c * plane..(c + 1) * plane];
        for i in 0..g.kh {
            let (y0, y1) = valid_range(g.h, g.oh, g.sh, i * g.dh, g.ph);
            for j in 0..g.kw {
                let (x0, x1) = valid_range(g.w, g.ow, g.sw, j * g.dw, g.pw);
                if x0 == x1 {
                    continue;
                }
                let r = (c * g.kh + i) * g.kw + j;
                let row = &cols[r * l..(r + 1) * l];
                for oy in y0..y1 {
                    let iy = oy * g.sh + i * g.dh - g.ph;
                    let ix0 = x0 * g.sw + j * g.dw - g.pw;
                    let line = &mut img[iy * g.w..(iy + 1) * g.w];
                    let src = &row[oy * g.ow + x0..oy * g.ow + x1];
                    if g.sw == 1 {
                        for (o, &v) in line[ix0..ix0 + src.len()].iter_mut().zip(src) {
                            *o += v;
                        }
                    } else {
                        for (t, &v) in src.iter().enumerate() {
                            line[ix0 + t * g.sw] += v;
                        }
                    }
                }
            }
        }
    }
}
