//! The two minimal-filtering algorithms the Winograd path runs, F(4×4, 3×3) and F(2×2, 3×3)
//! (Lavin & Gray, 2016), as their three matrices: `Bᵀ` (input), `G` (filter) and `Aᵀ`
//! (output). `Bᵀ` and `Aᵀ` are applied as the sums of their nonzero entries, on 16 lanes
//! (channels or tiles) at a time, which LLVM vectorizes; `G` is applied in f64 to the
//! filters once per call.

use super::{Lanes, LANES};
use crate::cpu::gemm::Gemm;

/// F(OUT×OUT, 3×3): an `OUT × OUT` block of outputs from an `IN × IN` block of input
/// (`IN = OUT + 2`), with `IN²` multiplies per (input, output) channel pair.
pub(super) trait Minimal<const OUT: usize, const IN: usize> {
    /// `G`, the filter transform (`IN × 3`).
    const G: [[f64; 3]; IN];
    /// `o = Bᵀ v` for `IN` lanes-vectors `v` (one column or row of an input tile).
    fn input_1d<T: Gemm>(v: &[Lanes<T>; IN], o: &mut [Lanes<T>; IN]);
    /// `o = Aᵀ v` for `IN` lanes-vectors `v` (one column or row of a tile's products).
    fn output_1d<T: Gemm>(v: &[Lanes<T>; IN], o: &mut [Lanes<T>; OUT]);
    /// `o = A v` for `OUT` lanes-vectors `v` (one column or row of an output-gradient tile).
    fn grad_1d<T: Gemm>(v: &[Lanes<T>; OUT], o: &mut [Lanes<T>; IN]);
}

/// F(4×4, 3×3): 36 multiplies for 16 outputs, where the direct convolution spends 144. Its
/// transforms scale inputs by up to 5× and 8×, which costs f32 about a digit (module doc).
pub(super) struct F4x4;

impl Minimal<4, 6> for F4x4 {
    const G: [[f64; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input_1d<T: Gemm>(v: &[Lanes<T>; 6], o: &mut [Lanes<T>; 6]) {
        let (four, five, two) = (T::c(4.0), T::c(5.0), T::c(2.0));
        for l in 0..LANES {
            let (d0, d1, d2, d3, d4, d5) = (v[0][l], v[1][l], v[2][l], v[3][l], v[4][l], v[5][l]);
            o[0][l] = four * d0 - five * d2 + d4;
            o[1][l] = d3 + d4 - four * (d1 + d2);
            o[2][l] = four * (d1 - d2) + d4 - d3;
            o[3][l] = two * (d3 - d1) + d4 - d2;
            o[4][l] = two * (d1 - d3) + d4 - d2;
            o[5][l] = four * d1 - five * d3 + d5;
        }
    }

    #[inline(always)]
    fn output_1d<T: Gemm>(v: &[Lanes<T>; 6], o: &mut [Lanes<T>; 4]) {
        let (two, four, eight) = (T::c(2.0), T::c(4.0), T::c(8.0));
        for l in 0..LANES {
            let (m0, m1, m2, m3, m4, m5) = (v[0][l], v[1][l], v[2][l], v[3][l], v[4][l], v[5][l]);
            let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
            o[0][l] = m0 + s12 + s34;
            o[1][l] = d12 + two * d34;
            o[2][l] = s12 + four * s34;
            o[3][l] = d12 + eight * d34 + m5;
        }
    }

    #[inline(always)]
    fn grad_1d<T: Gemm>(v: &[Lanes<T>; 4], o: &mut [Lanes<T>; 6]) {
        let (two, four, eight) = (T::c(2.0), T::c(4.0), T::c(8.0));
        for l in 0..LANES {
            let (g0, g1, g2, g3) = (v[0][l], v[1][l], v[2][l], v[3][l]);
            let (s02, s13) = (g0 + g2, g1 + g3);
            let (e02, e13) = (g0 + four * g2, two * g1 + eight * g3);
            o[0][l] = g0;
            o[1][l] = s02 + s13;
            o[2][l] = s02 - s13;
            o[3][l] = e02 + e13;
            o[4][l] = e02 - e13;
            o[5][l] = g3;
        }
    }
}

/// F(2×2, 3×3): 16 multiplies for 4 outputs, where the direct convolution spends 36, with
/// transforms of ±1 (and ½ in `G`), so f32 rounds about as the direct sum does. It covers
/// 4×4 images in four tiles, where F(4×4)'s one tile per image left too few rows for the
/// products ([`super::choose`]).
pub(super) struct F2x2;

impl Minimal<2, 4> for F2x2 {
    const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

    #[inline(always)]
    fn input_1d<T: Gemm>(v: &[Lanes<T>; 4], o: &mut [Lanes<T>; 4]) {
        for l in 0..LANES {
            let (d0, d1, d2, d3) = (v[0][l], v[1][l], v[2][l], v[3][l]);
            o[0][l] = d0 - d2;
            o[1][l] = d1 + d2;
            o[2][l] = d2 - d1;
            o[3][l] = d1 - d3;
        }
    }

    #[inline(always)]
    fn output_1d<T: Gemm>(v: &[Lanes<T>; 4], o: &mut [Lanes<T>; 2]) {
        for l in 0..LANES {
            let (m0, m1, m2, m3) = (v[0][l], v[1][l], v[2][l], v[3][l]);
            o[0][l] = m0 + m1 + m2;
            o[1][l] = m1 - m2 - m3;
        }
    }

    #[inline(always)]
    fn grad_1d<T: Gemm>(v: &[Lanes<T>; 2], o: &mut [Lanes<T>; 4]) {
        for l in 0..LANES {
            let (g0, g1) = (v[0][l], v[1][l]);
            o[0][l] = g0;
            o[1][l] = g0 + g1;
            o[2][l] = g0 - g1;
            o[3][l] = -g1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::values;
    use super::*;

    /// Checks `W`'s three 1-D transforms against the matrices `Bᵀ` and `Aᵀ` (`A` is `Aᵀ`'s
    /// transpose), and that `Aᵀ (G g ⊙ Bᵀ d) = g ⋆ d` for a 1-D filter `g` and input `d`:
    /// the identity the 2-D algorithm is two of.
    fn check<W: Minimal<OUT, IN>, const OUT: usize, const IN: usize>(bt: [[f64; IN]; IN], at: [[f64; IN]; OUT]) {
        let v = values(7, IN * LANES);
        let lanes: [Lanes<f64>; IN] = std::array::from_fn(|a| std::array::from_fn(|l| v[a * LANES + l]));
        let grad: [Lanes<f64>; OUT] = std::array::from_fn(|a| lanes[a]);
        let (mut got_in, mut got_out, mut got_grad) = ([[0.0; LANES]; IN], [[0.0; LANES]; OUT], [[0.0; LANES]; IN]);
        W::input_1d(&lanes, &mut got_in);
        W::output_1d(&lanes, &mut got_out);
        W::grad_1d(&grad, &mut got_grad);
        for l in 0..LANES {
            for a in 0..IN {
                let want: f64 = (0..IN).map(|i| bt[a][i] * lanes[i][l]).sum();
                assert!((got_in[a][l] - want).abs() < 1e-12, "Bᵀ row {a}");
                let want: f64 = (0..OUT).map(|i| at[i][a] * grad[i][l]).sum();
                assert!((got_grad[a][l] - want).abs() < 1e-12, "A row {a}");
            }
            for a in 0..OUT {
                let want: f64 = (0..IN).map(|i| at[a][i] * lanes[i][l]).sum();
                assert!((got_out[a][l] - want).abs() < 1e-12, "Aᵀ row {a}");
            }
        }
        let (g, d) = ([0.3, -1.1, 0.7], values(11, IN));
        let u: Vec<f64> = W::G.iter().map(|row| (0..3).map(|k| row[k] * g[k]).sum()).collect();
        let bd: Vec<f64> = bt.iter().map(|row| (0..IN).map(|i| row[i] * d[i]).sum()).collect();
        for (o, row) in at.iter().enumerate() {
            let got: f64 = (0..IN).map(|xi| row[xi] * u[xi] * bd[xi]).sum();
            let want: f64 = (0..3).map(|k| g[k] * d[o + k]).sum();
            assert!((got - want).abs() < 1e-12, "output {o}: {got} vs {want}");
        }
    }

    #[test]
    fn f4x4_transforms_are_its_matrices() {
        let bt = [
            [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
            [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
            [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
            [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
            [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
            [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
        ];
        let at = [
            [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
            [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
            [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
        ];
        check::<F4x4, 4, 6>(bt, at);
    }

    #[test]
    fn f2x2_transforms_are_its_matrices() {
        let bt = [[1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, -1.0, 1.0, 0.0], [0.0, 1.0, 0.0, -1.0]];
        let at = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];
        check::<F2x2, 2, 4>(bt, at);
    }
}
