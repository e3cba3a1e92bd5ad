//! f32 ↔ bf16 conversion of whole buffers in loops that vectorize. Autocast casts every
//! matmul operand to bf16 and most results back, and on the CPU each half op widens its
//! operands (`ops::widen`), so these casts are a large share of a bf16-mixed step; the
//! generic `to_dtype` goes element by element through f64.
//!
//! The results are bit for bit `half::bf16::from_f32` / `to_f32` (round to nearest even,
//! NaNs kept NaN with the quiet bit set), which `tests/engine_half.rs` checks.

use super::vmath::{dispatch, VmathIsa};
use half::bf16;

/// `x` rounded to the nearest bf16, ties to even, without a data-dependent branch.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> bf16 {
    let b = x.to_bits();
    // Adding 0x7fff plus the kept part's lowest bit carries into the kept part exactly when
    // the dropped half is above one half, or equal to it with an odd kept part.
    let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    let quiet_nan = ((b >> 16) | 0x40) as u16;
    bf16::from_bits(if (b & 0x7fff_ffff) > 0x7f80_0000 { quiet_nan } else { rounded })
}

/// `x` widened to f32 (exact; a signalling NaN comes out quiet, as `half` widens it).
#[inline(always)]
pub fn bf16_to_f32(x: bf16) -> f32 {
    let b = x.to_bits();
    let wide = (b as u32) << 16;
    f32::from_bits(if (b & 0x7fff) > 0x7f80 { wide | 0x0040_0000 } else { wide })
}

/// Every element of `src` rounded to bf16 into `out` (equal lengths). The loop is compiled
/// again for AVX-512 / AVX2 and picked at run time (`vmath::dispatch!`): autocast casts
/// every matmul operand and most results, and the baseline build's 4-lane SSE2 loop was a
/// third of a bf16-mixed ViT step once the products ran on AMX.
pub fn narrow_slice(src: &[f32], out: &mut [std::mem::MaybeUninit<bf16>]) {
    #[inline(always)]
    fn each(src: &[f32], out: &mut [std::mem::MaybeUninit<bf16>]) {
        for (o, &x) in out.iter_mut().zip(src) {
            o.write(f32_to_bf16(x));
        }
    }
    dispatch!(VmathIsa::selected(), || each(src, out))
}

/// Every element of `src` widened to f32 into `out` (equal lengths), dispatched as
/// [`narrow_slice`].
pub fn widen_slice(src: &[bf16], out: &mut [std::mem::MaybeUninit<f32>]) {
    #[inline(always)]
    fn each(src: &[bf16], out: &mut [std::mem::MaybeUninit<f32>]) {
        for (o, &x) in out.iter_mut().zip(src) {
            o.write(bf16_to_f32(x));
        }
    }
    dispatch!(VmathIsa::selected(), || each(src, out))
}
