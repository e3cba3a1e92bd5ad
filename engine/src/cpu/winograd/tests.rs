//! The Winograd convolutions against the naive sum, and the rules that pick them.

use super::*;
use std::cell::Cell;

thread_local! {
    /// Samples per chunk for the correlations this thread runs, instead of
    /// [`samples_per_chunk`]'s choice (which takes whole batches of the small shapes here).
    pub(super) static SAMPLES_PER_CHUNK: Cell<Option<usize>> = const { Cell::new(None) };
}

/// A small deterministic generator of values in [-1, 1).
pub(super) fn values(seed: u64, len: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

fn geom(c: usize, h: usize, w: usize) -> ConvGeom {
    ConvGeom { channels: c, h, w, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, dh: 1, dw: 1, oh: h, ow: w }
}

/// The naive same-padded 3×3 correlation and its input and weight gradients, in f64.
#[allow(clippy::too_many_arguments)]
fn naive(
    x: &[f64],
    w: &[f64],
    dy: &[f64],
    bias: &[f64],
    n: usize,
    c: usize,
    m: usize,
    (h, wd): (usize, usize),
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut y = vec![0.0; n * m * h * wd];
    let mut dx = vec![0.0; n * c * h * wd];
    let mut dw = vec![0.0; m * c * 9];
    for s in 0..n {
        for o in 0..m {
            for oy in 0..h {
                for ox in 0..wd {
                    let yi = ((s * m + o) * h + oy) * wd + ox;
                    y[yi] = bias[o];
                    for i in 0..c {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = ((oy + ky).wrapping_sub(1), (ox + kx).wrapping_sub(1));
                                if iy < h && ix < wd {
                                    let xi = ((s * c + i) * h + iy) * wd + ix;
                                    let wv = w[((o * c + i) * 3 + ky) * 3 + kx];
                                    y[yi] += x[xi] * wv;
                                    dx[xi] += dy[yi] * wv;
                                    dw[((o * c + i) * 3 + ky) * 3 + kx] += dy[yi] * x[xi];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (y, dx, dw)
}

/// Largest error relative to the reference's largest magnitude.
fn scaled_error(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-30);
    got.iter().zip(want).fold(0.0f64, |a, (g, w)| a.max((g - w).abs())) / scale
}

/// Each tiling's forward pass and both gradients against the naive sum, in f64 (to rounding)
/// and f32 (within `f32_error` of the output's largest magnitude).
fn check_against_the_direct_sum(tiling: Tiling, f32_error: f64) {
    // Image sides that are and are not multiples of the tile, down to one partial tile;
    // channel counts below MIN_CHANNELS (the functions do not check it), below LANES, and
    // one whole block of LANES and a ragged one (20 and 18).
    let cases = [(2, 3, 5, 4, 4), (1, 4, 3, 7, 7), (3, 2, 4, 5, 9), (2, 5, 2, 8, 8), (1, 3, 3, 1, 6), (2, 6, 4, 14, 11), (2, 20, 18, 8, 9)];
    for (case, &(n, c, m, h, w)) in cases.iter().enumerate() {
        let g = geom(c, h, w);
        let x = values(4 * case as u64 + 1, n * c * h * w);
        let wt = values(4 * case as u64 + 2, m * c * 9);
        let dy = values(4 * case as u64 + 3, n * m * h * w);
        let bias = values(4 * case as u64 + 4, m);
        let (y, dx, dw) = naive(&x, &wt, &dy, &bias, n, c, m, (h, w));
        let what = |pass: &str| format!("{tiling:?} {pass}, case {case}, samples per chunk {:?}", SAMPLES_PER_CHUNK.get());
        let check = |pass: &str, got: &[f64], want: &[f64], bound: f64| {
            let err = scaled_error(got, want);
            assert!(err < bound, "{}: {err:e}", what(pass));
        };
        check("f64 forward", &forward(tiling, &x, n, &wt, m, &g, Some(&bias)), &y, 1e-13);
        check("f64 input gradient", &backward_input(tiling, &dy, n, &wt, m, &g), &dx, 1e-13);
        check("f64 weight gradient", &backward_weight(tiling, &dy, &x, n, m, &g), &dw, 1e-13);
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        let y32 = forward(tiling, &f32s(&x), n, &f32s(&wt), m, &g, Some(&f32s(&bias)));
        check("f32 forward", &f64s(&y32), &y, f32_error);
        check("f32 input gradient", &f64s(&backward_input(tiling, &f32s(&dy), n, &f32s(&wt), m, &g)), &dx, f32_error);
        check("f32 weight gradient", &f64s(&backward_weight(tiling, &f32s(&dy), &f32s(&x), n, m, &g)), &dw, f32_error);
    }
}

/// [`check_against_the_direct_sum`] with whole batches, and in chunks of one and two samples
/// (the weight gradient adds the chunks' products).
fn check_in_chunks(tiling: Tiling, f32_error: f64) {
    for chunk in [None, Some(1), Some(2)] {
        SAMPLES_PER_CHUNK.set(chunk);
        check_against_the_direct_sum(tiling, f32_error);
    }
    SAMPLES_PER_CHUNK.set(None);
}

/// An empty batch: no output, and a zero weight gradient (an empty sum).
#[test]
fn an_empty_batch_has_a_zero_weight_gradient() {
    for tiling in [Tiling::F4x4, Tiling::F2x2] {
        let g = geom(3, 8, 8);
        assert!(forward(tiling, &[] as &[f64], 0, &values(1, 2 * 3 * 9), 2, &g, None).is_empty());
        assert_eq!(backward_weight(tiling, &[] as &[f64], &[], 0, 2, &g), vec![0.0; 2 * 3 * 9], "{tiling:?}");
    }
}

#[test]
fn f4x4_matches_the_direct_sum() {
    check_in_chunks(Tiling::F4x4, 1e-5);
}

#[test]
fn f2x2_matches_the_direct_sum() {
    check_in_chunks(Tiling::F2x2, 1e-6);
}

/// ResNet-18's 64-channel 32×32 convolution at batch 64 runs in chunks of 7 samples (448
/// tiles, 4 MiB of transformed inputs); its 256-channel 8×8 one at batch 64 in one (256
/// tiles).
#[test]
fn batches_run_in_chunks_of_the_cache_budget_and_enough_tiles() {
    assert_eq!(samples_per_chunk::<f32>(64, 64, 64 * 36 * 64), 7);
    assert_eq!(samples_per_chunk::<f32>(64, 4, 4 * 36 * 256), 64);
    assert_eq!(samples_per_chunk::<f32>(3, 64, 64 * 36 * 64), 3, "never more than the batch");
    assert_eq!(samples_per_chunk::<f32>(64, 4096, 4096 * 36 * 512), 1, "never fewer than one");
}

#[test]
fn only_same_padded_stride_one_3x3_convolutions_with_enough_channels_and_tiles_apply() {
    let g = geom(128, 8, 8);
    let applies = |g: &ConvGeom, groups: usize, n: usize, m: usize| choose(g, groups, n, m).is_some();
    assert_eq!(choose(&g, 1, 32, 128), Some(Tiling::F4x4));
    assert!(!applies(&g, 1, 31, 128), "fewer tiles than channels");
    assert!(!applies(&g, 2, 32, 128), "groups");
    assert!(!applies(&g, 1, 32, 32), "output channels");
    assert!(!applies(&geom(32, 8, 8), 1, 32, 128), "input channels");
    // ResNet-18's first stage (64 channels, 32×32) takes F(4×4); the narrow ResNet's
    // 64-channel 7×7 and 32-channel 14×14 convolutions keep the direct kernels.
    assert_eq!(choose(&geom(64, 32, 32), 1, 64, 64), Some(Tiling::F4x4));
    assert!(!applies(&geom(64, 7, 7), 1, 512, 64), "the narrow ResNet's 7×7 stage");
    assert!(!applies(&geom(32, 14, 14), 1, 512, 32), "the narrow ResNet's 14×14 stage");
    assert!(!applies(&geom(128, 7, 16), 1, 64, 128), "height, and too few channels for F(2×2)");
    assert!(!applies(&ConvGeom { sh: 2, oh: 4, ..g }, 1, 32, 128), "stride");
    assert!(!applies(&ConvGeom { ph: 0, oh: 6, ..g }, 1, 32, 128), "padding");
    assert!(!applies(&ConvGeom { dh: 2, oh: 6, ..g }, 1, 32, 128), "dilation");
    assert!(!applies(&ConvGeom { kh: 1, kw: 1, ph: 0, pw: 0, ..g }, 1, 32, 128), "1×1");
    // ResNet-18's last stage on 32×32 inputs (512 channels, 4×4) takes F(2×2) from batch 32,
    // on 224×224 ones (7×7) from batch 8; the narrow ResNet's 128-channel 4×4 convolution
    // keeps the direct kernels.
    assert_eq!(choose(&geom(512, 4, 4), 1, 32, 512), Some(Tiling::F2x2));
    assert_eq!(choose(&geom(512, 7, 7), 1, 8, 512), Some(Tiling::F2x2));
    assert!(!applies(&geom(512, 4, 4), 1, 31, 512), "fewer tiles than a quarter of the channels");
    assert!(!applies(&geom(256, 4, 4), 1, 128, 256), "256 channels");
    assert!(!applies(&geom(128, 4, 4), 1, 512, 128), "the narrow ResNet's 4×4 stage");
    assert!(!applies(&geom(512, 3, 3), 1, 512, 512), "under 4 pixels a side");
}
