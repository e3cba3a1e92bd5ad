//! Transposing a matrix into scattered rows: column `q` of a `rows × cols` source becomes a
//! run of `rows` consecutive elements wherever the caller says (`at(q)`). The direct
//! convolutions use it to lay small images out channels-last inside their zero padding (each
//! pixel's channels side by side, the pixels of a padded row `c` apart, the border skipped),
//! and the weight gradient to lay a block of output-gradient channels out as one run of lanes
//! per pixel, in the reduction's order.
//!
//! Element by element, every store of such a copy lands `rows` elements from the last one, and
//! the loop ran at about one element a cycle, bound by the stores (the two copies were 7.6% of
//! a RotNet step on the narrow ResNet). f32 on x86-64 with AVX goes in 8 × 8 blocks instead: eight rows of
//! eight loaded, transposed in registers (unpack, shuffle, then swap 128-bit halves: 24
//! shuffles for 64 elements), and stored as eight runs of eight. Only data moves, so every
//! path writes the same bits.

/// Writes `dst[at(q) + r] = src[r * stride + q]` for every `r < rows`, `q < cols`.
///
/// Panics if a read or write would fall outside `src` or `dst`.
pub(crate) fn transpose_scatter<T: Copy + 'static>(
    src: &[T],
    (rows, cols): (usize, usize),
    stride: usize,
    dst: &mut [T],
    at: impl Fn(usize) -> usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        (rows - 1) * stride + cols <= src.len(),
        "transpose_scatter: {rows} × {cols} rows of stride {stride} read past {} elements",
        src.len()
    );
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: T is f32 (same size and alignment), checked above.
        let (src, dst) = unsafe {
            (
                std::slice::from_raw_parts(src.as_ptr().cast::<f32>(), src.len()),
                std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<f32>(), dst.len()),
            )
        };
        // SAFETY: AVX was detected on this CPU.
        unsafe { avx::transpose_scatter_f32(src, (rows, cols), stride, dst, &at) };
        return;
    }
    scalar(src, (0, rows), (0, cols), stride, dst, &at);
}

/// The element-by-element copy of rows `r0..r1` and columns `q0..q1`.
fn scalar<T: Copy>(
    src: &[T],
    (r0, r1): (usize, usize),
    (q0, q1): (usize, usize),
    stride: usize,
    dst: &mut [T],
    at: &impl Fn(usize) -> usize,
) {
    for q in q0..q1 {
        let base = at(q);
        for (r, d) in dst[base + r0..base + r1].iter_mut().enumerate() {
            *d = src[(r0 + r) * stride + q];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// Side of the blocks transposed in registers: eight f32 lanes.
    const B: usize = 8;

    /// [`super::transpose_scatter`] for f32: whole 8 × 8 blocks in registers, the ragged
    /// edges (rows or columns past the last whole block) element by element.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn transpose_scatter_f32(
        src: &[f32],
        (rows, cols): (usize, usize),
        stride: usize,
        dst: &mut [f32],
        at: &impl Fn(usize) -> usize,
    ) {
        let (whole_rows, whole_cols) = (rows / B * B, cols / B * B);
        let mut offs = [0usize; B];
        for q0 in (0..whole_cols).step_by(B) {
            for (i, o) in offs.iter_mut().enumerate() {
                *o = at(q0 + i);
                assert!(*o + rows <= dst.len(), "transpose_scatter: column {} goes past {} elements", q0 + i, dst.len());
            }
            for r0 in (0..whole_rows).step_by(B) {
                // SAFETY: rows r0..r0+8 at columns q0..q0+8 lie in `src` (the caller checked
                // the last row's end, and r0 + 8 <= rows, q0 + 8 <= cols); each column's
                // run, offs[i] + r0 .. + 8 <= offs[i] + rows, lies in `dst` (checked above).
                block(src.as_ptr().add(r0 * stride + q0), stride, dst.as_mut_ptr().add(r0), &offs);
            }
        }
        super::scalar(src, (whole_rows, rows), (0, whole_cols), stride, dst, at);
        super::scalar(src, (0, rows), (whole_cols, cols), stride, dst, at);
    }

    /// Transposes the 8 × 8 block at `src` (rows `stride` apart) into `dst + offs[i]`, i the
    /// column.
    #[inline]
    #[target_feature(enable = "avx")]
    unsafe fn block(src: *const f32, stride: usize, dst: *mut f32, offs: &[usize; B]) {
        let r: [__m256; B] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * stride)));
        // Pairs of rows interleaved: (a0 b0 a1 b1 | a4 b4 a5 b5) and (a2 b2 a3 b3 | a6 b6 a7 b7).
        let lo: [__m256; 4] = std::array::from_fn(|i| _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]));
        let hi: [__m256; 4] = std::array::from_fn(|i| _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]));
        // Quads of rows: column j of four rows in each 128-bit half (j, j + 4).
        let q = |a: __m256, b: __m256, upper: bool| {
            if upper {
                _mm256_shuffle_ps::<0xEE>(a, b)
            } else {
                _mm256_shuffle_ps::<0x44>(a, b)
            }
        };
        let quads = [
            [q(lo[0], lo[1], false), q(lo[0], lo[1], true), q(hi[0], hi[1], false), q(hi[0], hi[1], true)],
            [q(lo[2], lo[3], false), q(lo[2], lo[3], true), q(hi[2], hi[3], false), q(hi[2], hi[3], true)],
        ];
        for j in 0..4 {
            // Column j from the low halves, column j + 4 from the high halves.
            _mm256_storeu_ps(dst.add(offs[j]), _mm256_permute2f128_ps::<0x20>(quads[0][j], quads[1][j]));
            _mm256_storeu_ps(dst.add(offs[j + 4]), _mm256_permute2f128_ps::<0x31>(quads[0][j], quads[1][j]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path against the element-by-element copy: sizes around the 8 × 8 blocks, a row
    /// stride longer than the rows, and columns scattered with gaps (as a padded image's rows).
    #[test]
    fn blocks_and_edges_match_the_elementwise_copy() {
        for &(rows, cols, stride) in &[(8, 8, 8), (16, 49, 49), (64, 16, 16), (13, 21, 25), (7, 9, 9), (1, 1, 1), (24, 7, 10)] {
            let src: Vec<f32> = (0..(rows - 1) * stride + cols).map(|i| i as f32 * 0.5 - 3.0).collect();
            let at = |q: usize| (q / 5) * 3 * rows + q * rows + 2;
            let len = at(cols - 1) + rows + 7;
            let mut fast = vec![f32::NAN; len];
            transpose_scatter(&src, (rows, cols), stride, &mut fast, at);
            let mut slow = vec![f32::NAN; len];
            scalar(&src, (0, rows), (0, cols), stride, &mut slow, &at);
            assert_eq!(
                fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                slow.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{rows} × {cols}"
            );
            for q in 0..cols {
                for r in 0..rows {
                    assert_eq!(fast[at(q) + r], src[r * stride + q]);
                }
            }
            let f64s: Vec<f64> = src.iter().map(|&v| v as f64).collect();
            let mut wide = vec![f64::NAN; len];
            transpose_scatter(&f64s, (rows, cols), stride, &mut wide, at);
            assert!(wide.iter().zip(&fast).all(|(a, b)| a.to_bits() == (*b as f64).to_bits()), "f64, {rows} × {cols}");
        }
    }

    #[test]
    #[should_panic(expected = "read past")]
    fn a_short_source_panics_instead_of_reading_past_it() {
        transpose_scatter(&[0f32; 10], (2, 8), 8, &mut [0f32; 64], |q| q * 2);
    }
}
