//! CIE Lab conversion (sRGB with its gamma, D65 white) and the quantized ab targets of
//! colorization (Zhang et al. 2016): ab is cut into 10-wide bins and only the bins that sRGB
//! colours can reach are kept (261 bins; see [`AbQuantizer::from_srgb_sampling`]); a pixel's target is soft-encoded over its 5 nearest bins
//! with a Gaussian of sigma 5.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::data::error::{DataError, Result};
use crate::data::image::Image;

/// Linear sRGB → XYZ (D65).
const RGB_TO_XYZ: [[f64; 3]; 3] = [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]];
/// XYZ (D65) → linear sRGB.
const XYZ_TO_RGB: [[f64; 3]; 3] =
    [[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560], [0.0556434, -0.2040259, 1.0572252]];
/// The D65 white point: the row sums of `RGB_TO_XYZ`, so RGB white maps to a = b = 0.
const WHITE: [f64; 3] = [0.95047, 1.0, 1.08883];
const DELTA: f64 = 6.0 / 29.0;

/// Width of an ab bin.
pub const AB_BIN: f64 = 10.0;
/// Bin centres lie at multiples of 10 in [-110, 110] on both axes.
pub(crate) const GRID_HALF: i32 = 11;
pub(crate) const GRID_SIDE: usize = (2 * GRID_HALF + 1) as usize;

fn srgb_to_linear(c: f64) -> f64 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(c: f64) -> f64 {
    if c <= 0.0031308 {
        12.92 * c
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    }
}

fn lab_f(t: f64) -> f64 {
    if t > DELTA.powi(3) {
        t.cbrt()
    } else {
        t / (3.0 * DELTA * DELTA) + 4.0 / 29.0
    }
}

fn lab_f_inv(t: f64) -> f64 {
    if t > DELTA {
        t.powi(3)
    } else {
        3.0 * DELTA * DELTA * (t - 4.0 / 29.0)
    }
}

fn mat(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|r| m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2])
}

/// One sRGB colour (components in [0, 1]) to Lab: L in [0, 100], a and b roughly in
/// [-128, 127].
pub fn rgb_to_lab_pixel(rgb: [f64; 3]) -> [f64; 3] {
    linear_to_lab(rgb.map(srgb_to_linear))
}

/// Linear (gamma-expanded) RGB to Lab.
fn linear_to_lab(linear: [f64; 3]) -> [f64; 3] {
    let xyz = mat(&RGB_TO_XYZ, linear);
    let [fx, fy, fz] = [0, 1, 2].map(|i| lab_f(xyz[i] / WHITE[i]));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// One Lab colour to sRGB, unclamped (out-of-gamut colours leave [0, 1]).
pub fn lab_to_rgb_pixel(lab: [f64; 3]) -> [f64; 3] {
    let fy = (lab[0] + 16.0) / 116.0;
    let f = [fy + lab[1] / 500.0, fy, fy - lab[2] / 200.0];
    let xyz = [0, 1, 2].map(|i| WHITE[i] * lab_f_inv(f[i]));
    mat(&XYZ_TO_RGB, xyz).map(linear_to_srgb)
}

fn map_pixels(img: &Image, what: &'static str, f: impl Fn([f64; 3]) -> [f64; 3]) -> Result<Image> {
    if img.channels() != 3 {
        return Err(DataError::invalid(what, format!("needs 3 channels, got {}", img.channels())));
    }
    let n = img.height() * img.width();
    let mut out = img.clone();
    let (src, dst) = (img.data(), out.data_mut());
    for i in 0..n {
        let v = f([src[i] as f64, src[n + i] as f64, src[2 * n + i] as f64]);
        (dst[i], dst[n + i], dst[2 * n + i]) = (v[0] as f32, v[1] as f32, v[2] as f32);
    }
    Ok(out)
}

/// A 3×H×W sRGB image in [0, 1] to Lab (channels L, a, b; L in [0, 100]).
pub fn rgb_to_lab(img: &Image) -> Result<Image> {
    map_pixels(img, "rgb_to_lab", rgb_to_lab_pixel)
}

/// A 3×H×W Lab image to sRGB, clamped to [0, 1] (predicted ab may fall out of gamut).
pub fn lab_to_rgb(lab: &Image) -> Result<Image> {
    map_pixels(lab, "lab_to_rgb", |v| lab_to_rgb_pixel(v).map(|c| c.clamp(0.0, 1.0)))
}

/// Grid cell (row-major index in the 23×23 grid) of an ab value, or `None` outside it.
pub(crate) fn grid_cell(a: f64, b: f64) -> Option<usize> {
    let (ia, ib) = ((a / AB_BIN).round() as i32, (b / AB_BIN).round() as i32);
    let inside = ia.abs() <= GRID_HALF && ib.abs() <= GRID_HALF;
    inside.then(|| ((ia + GRID_HALF) as usize) * GRID_SIDE + (ib + GRID_HALF) as usize)
}

/// The in-gamut ab bins and the soft encoding of ab values over them.
#[derive(Debug, Clone, PartialEq)]
pub struct AbQuantizer {
    centers: Vec<[f32; 2]>,
}

/// Soft-encoded targets of an H×W image: for every pixel, its `k` nearest bins and their
/// Gaussian weights (summing to one), pixel-major: entry `(y * W + x) * k + j`.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftTargets {
    /// Image height H.
    pub height: usize,
    /// Image width W.
    pub width: usize,
    /// Bins per pixel (5).
    pub k: usize,
    /// `[H·W·k]` bin indices, nearest first.
    pub bins: Vec<u16>,
    /// `[H·W·k]` weights, summing to one per pixel.
    pub weights: Vec<f32>,
}

impl SoftTargets {
    /// The dense `[Q, H, W]` target distribution for `q` bins.
    pub fn to_dense(&self, q: usize) -> Vec<f32> {
        let n = self.height * self.width;
        let mut out = vec![0.0f32; q * n];
        for p in 0..n {
            for j in 0..self.k {
                let bin = self.bins[p * self.k + j] as usize;
                if bin < q {
                    out[bin * n + p] += self.weights[p * self.k + j];
                }
            }
        }
        out
    }
}

impl AbQuantizer {
    /// The bins that sRGB colours reach, found by converting every colour of a
    /// `levels`³ grid over the sRGB cube and keeping the ab bins hit (bin = ab rounded to
    /// the nearest multiple of 10). With 256 levels (every 8-bit colour) this gives 261 bins,
    /// a in [-90, 100] and b in [-110, 90]. Zhang et al.'s published set has 313 bins over
    /// the same extent; it was derived differently and sampling the cube does not reproduce
    /// it (nor does binning by floor, 265, or a convex hull of the gamut's ab projection).
    pub fn from_srgb_sampling(levels: usize) -> AbQuantizer {
        let levels = levels.max(2);
        // The gamma curve per level, computed once: it is the costly part of the conversion.
        let lin: Vec<f64> = (0..levels).map(|i| srgb_to_linear(i as f64 / (levels - 1) as f64)).collect();
        let hits: Vec<bool> = lin
            .par_iter()
            .map(|&r| {
                let mut hit = vec![false; GRID_SIDE * GRID_SIDE];
                for &g in &lin {
                    for &b in &lin {
                        let lab = linear_to_lab([r, g, b]);
                        if let Some(cell) = grid_cell(lab[1], lab[2]) {
                            hit[cell] = true;
                        }
                    }
                }
                hit
            })
            .reduce(|| vec![false; GRID_SIDE * GRID_SIDE], |a, b| a.iter().zip(&b).map(|(x, y)| *x || *y).collect());
        let centers = hits.iter().enumerate().filter(|(_, &h)| h).map(|(cell, _)| AbQuantizer::cell_center(cell)).collect();
        AbQuantizer { centers }
    }

    /// A quantizer over explicit bin centres (a dataset's bins, a saved run's); an error when
    /// there are none or one is not finite.
    pub fn from_centers(centers: Vec<[f32; 2]>) -> Result<AbQuantizer> {
        if centers.is_empty() || centers.iter().flatten().any(|v| !v.is_finite()) {
            return Err(DataError::invalid("AbQuantizer", format!("needs at least one finite bin centre, got {} centres", centers.len())));
        }
        Ok(AbQuantizer { centers })
    }

    /// The centre of grid cell `cell` (row-major in the 23×23 grid of [`grid_cell`]).
    pub(crate) fn cell_center(cell: usize) -> [f32; 2] {
        let (ia, ib) = ((cell / GRID_SIDE) as i32 - GRID_HALF, (cell % GRID_SIDE) as i32 - GRID_HALF);
        [(ia as f64 * AB_BIN) as f32, (ib as f64 * AB_BIN) as f32]
    }

    /// The sRGB quantizer (every 8-bit colour sampled: 261 bins), computed once per process.
    pub fn srgb() -> &'static AbQuantizer {
        static Q: OnceLock<AbQuantizer> = OnceLock::new();
        Q.get_or_init(|| AbQuantizer::from_srgb_sampling(256))
    }

    /// Number of bins Q (the number of classes of the colorization head).
    pub fn len(&self) -> usize {
        self.centers.len()
    }

    /// Whether there is no bin.
    pub fn is_empty(&self) -> bool {
        self.centers.is_empty()
    }

    /// Bin centres `[a, b]`, ordered by a then b.
    pub fn centers(&self) -> &[[f32; 2]] {
        &self.centers
    }

    /// The index of the bin nearest to `(a, b)`.
    pub fn nearest(&self, a: f32, b: f32) -> usize {
        self.nearest_k::<1>(a, b)[0].0
    }

    /// The `K` nearest bins to `(a, b)` with squared distances, nearest first.
    fn nearest_k<const K: usize>(&self, a: f32, b: f32) -> [(usize, f32); K] {
        let mut best = [(0usize, f32::INFINITY); K];
        for (i, c) in self.centers.iter().enumerate() {
            let d = (c[0] - a).powi(2) + (c[1] - b).powi(2);
            if d < best[K - 1].1 {
                let mut j = K - 1;
                while j > 0 && best[j - 1].1 > d {
                    best[j] = best[j - 1];
                    j -= 1;
                }
                best[j] = (i, d);
            }
        }
        best
    }

    /// Soft targets of a 3×H×W Lab image (channels 1 and 2 are a and b): the 5 nearest bins
    /// of each pixel weighted by `exp(−d² / (2·5²))`, normalized.
    pub fn soft_encode(&self, lab: &Image) -> Result<SoftTargets> {
        const K: usize = 5;
        const SIGMA: f32 = 5.0;
        if lab.channels() != 3 || self.centers.len() < K {
            return Err(DataError::invalid("soft_encode", format!("needs a 3-channel Lab image and at least {K} bins")));
        }
        let (a, b) = (lab.plane(1), lab.plane(2));
        let mut bins = Vec::with_capacity(a.len() * K);
        let mut weights = Vec::with_capacity(a.len() * K);
        for (&pa, &pb) in a.iter().zip(b) {
            let near = self.nearest_k::<K>(pa, pb);
            let w = near.map(|(_, d)| (-d / (2.0 * SIGMA * SIGMA)).exp());
            let total: f32 = w.iter().sum();
            for ((i, _), wi) in near.iter().zip(w) {
                bins.push(*i as u16);
                // The nearest bin is within 10·√2/2 of any in-grid point, so total > 0.
                weights.push(if total > 0.0 { wi / total } else { 1.0 / K as f32 });
            }
        }
        Ok(SoftTargets { height: lab.height(), width: lab.width(), k: K, bins, weights })
    }

    /// Decodes a predicted distribution `[Q, H, W]` (probabilities) to an `[2, H, W]` ab
    /// plane by the annealed mean of Zhang et al. (temperature `t`, 0.38 in the paper).
    pub fn annealed_mean(&self, probs: &[f32], height: usize, width: usize, t: f32) -> Result<Vec<f32>> {
        let (q, n) = (self.centers.len(), height * width);
        if probs.len() != q * n || t.is_nan() || t <= 0.0 {
            return Err(DataError::invalid(
                "annealed_mean",
                format!("needs {q}x{height}x{width} probabilities and t > 0, got {} and t {t}", probs.len()),
            ));
        }
        let mut out = vec![0.0f32; 2 * n];
        for p in 0..n {
            let logits: Vec<f32> = (0..q).map(|k| probs[k * n + p].max(1e-12).ln() / t).collect();
            let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
            let z: f32 = e.iter().sum();
            for (k, ek) in e.iter().enumerate() {
                out[p] += ek / z * self.centers[k][0];
                out[n + p] += ek / z * self.centers[k][1];
            }
        }
        Ok(out)
    }
}
