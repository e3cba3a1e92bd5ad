//! The colour statistics colorization is built from (Zhang, Isola, Efros 2016, §2.2): the ab
//! bins a dataset's pixels occupy, their empirical distribution smoothed by a Gaussian, and
//! the class-rebalancing weights that keep the loss from being dominated by the
//! desaturated colours most pixels have.

use rayon::prelude::*;

use super::lab::{grid_cell, rgb_to_lab_pixel, AbQuantizer, GRID_SIDE};
use crate::data::dataset::Dataset;
use crate::data::error::{DataError, Result};

/// A dataset's colour prior: its bins, the smoothed distribution `p̃` over them and the
/// rebalancing weights `w`, one of each per bin.
#[derive(Debug, Clone, PartialEq)]
pub struct ColourPrior {
    /// Bin centres `[a, b]`: every cell of the 10-unit ab grid a pixel of the data falls in.
    pub centers: Vec<[f32; 2]>,
    /// The smoothed empirical distribution `p̃` (sums to 1).
    pub prior: Vec<f32>,
    /// `w ∝ ((1 − λ)·p̃ + λ/Q)⁻¹`, scaled so that `Σ p̃·w = 1`.
    pub weights: Vec<f32>,
}

/// How many pixels of `ds` (3-channel, sRGB) fall in each cell of the 23×23 ab grid.
pub fn ab_histogram(ds: &Dataset) -> Result<Vec<u64>> {
    let [c, h, w] = ds.image_shape();
    if c != 3 {
        return Err(DataError::invalid("ab_histogram", format!("{}: needs colour images (3 channels), got {c}", ds.name())));
    }
    let n = h * w;
    Ok((0..ds.len())
        .into_par_iter()
        .fold(
            || vec![0u64; GRID_SIDE * GRID_SIDE],
            |mut counts, i| {
                let px = ds.pixels(i);
                for p in 0..n {
                    let rgb = [px[p], px[n + p], px[2 * n + p]].map(|v| v as f64 / 255.0);
                    let lab = rgb_to_lab_pixel(rgb);
                    // Every sRGB colour lands inside the grid (|a|, |b| < 115).
                    if let Some(cell) = grid_cell(lab[1], lab[2]) {
                        counts[cell] += 1;
                    }
                }
                counts
            },
        )
        .reduce(|| vec![0u64; GRID_SIDE * GRID_SIDE], |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect()))
}

/// `p` smoothed by a Gaussian of `sigma` ab units over the bin centres, renormalized.
pub fn smooth(centers: &[[f32; 2]], p: &[f64], sigma: f64) -> Vec<f64> {
    let out: Vec<f64> = centers
        .iter()
        .map(|c| {
            centers
                .iter()
                .zip(p)
                .map(|(d, &pd)| pd * (-((c[0] - d[0]).powi(2) + (c[1] - d[1]).powi(2)) as f64 / (2.0 * sigma * sigma)).exp())
                .sum()
        })
        .collect();
    let total: f64 = out.iter().sum();
    out.iter().map(|v| v / total.max(f64::MIN_POSITIVE)).collect()
}

/// Zhang et al.'s rebalancing weights for a distribution `p̃` over Q bins and a mix `λ` with
/// the uniform distribution: `w ∝ ((1 − λ)·p̃ + λ/Q)⁻¹`, normalized to `E_p̃[w] = 1`, so
/// the loss keeps its scale while rare colours weigh more.
pub fn rebalancing_weights(prior: &[f64], lambda: f64) -> Vec<f64> {
    let q = prior.len().max(1) as f64;
    let raw: Vec<f64> = prior.iter().map(|&p| 1.0 / ((1.0 - lambda) * p + lambda / q)).collect();
    let expectation: f64 = prior.iter().zip(&raw).map(|(p, w)| p * w).sum();
    raw.iter().map(|w| w / expectation).collect()
}

impl ColourPrior {
    /// The prior of a colour dataset: bins from its pixels, `p̃` smoothed with `sigma`
    /// (5 in the paper), weights mixed with uniform by `lambda` (0.5).
    pub fn from_dataset(ds: &Dataset, sigma: f64, lambda: f64) -> Result<ColourPrior> {
        let counts = ab_histogram(ds)?;
        let cells: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] > 0).collect();
        let total: u64 = counts.iter().sum();
        if cells.len() < 5 {
            return Err(DataError::invalid(
                "ColourPrior",
                format!("{}: its pixels occupy {} ab bins; soft encoding needs at least 5", ds.name(), cells.len()),
            ));
        }
        let centers: Vec<[f32; 2]> = cells.iter().map(|&c| AbQuantizer::cell_center(c)).collect();
        let p: Vec<f64> = cells.iter().map(|&c| counts[c] as f64 / total as f64).collect();
        let prior = smooth(&centers, &p, sigma);
        let weights = rebalancing_weights(&prior, lambda);
        Ok(ColourPrior { centers, prior: prior.iter().map(|&v| v as f32).collect(), weights: weights.iter().map(|&v| v as f32).collect() })
    }
}
