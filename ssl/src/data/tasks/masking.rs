//! Patch masks of masked image modelling: MAE's per-sample random masking (He et al. 2022)
//! and SimMIM's coarse-block masking (Xie et al. 2022). Batch helpers fork one generator per
//! sample index, so masks do not depend on the thread count or on batch composition.

use rayon::prelude::*;
use tessera_engine::{Generator, Tensor};

use crate::data::error::{DataError, Result};
use crate::data::recipe::{BatchTask, TrainBatch};

/// One MAE mask over `L` patches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaeMask {
    /// Indices of the kept (visible) patches, in shuffled order; length `L − masked`.
    pub ids_keep: Vec<usize>,
    /// 1 where the patch is masked (removed), 0 where kept, in original patch order; length `L`.
    pub mask: Vec<u8>,
    /// The permutation that restores original order from `[kept…, masked…]`: position `i` of
    /// the original sequence is at `ids_restore[i]` of the shuffled one; length `L`.
    pub ids_restore: Vec<usize>,
}

/// Number of patches MAE keeps: ⌊L·(1 − ratio)⌋, with a tolerance so that, e.g.,
/// 10·(1 − 0.7) counts as 3 despite floating-point error.
pub fn mae_keep_count(num_patches: usize, ratio: f64) -> usize {
    ((num_patches as f64 * (1.0 - ratio)) + 1e-9).floor() as usize
}

fn check_ratio(what: &'static str, ratio: f64) -> Result<()> {
    if (0.0..1.0).contains(&ratio) {
        Ok(())
    } else {
        Err(DataError::invalid(what, format!("mask ratio must lie in [0, 1), got {ratio}")))
    }
}

/// MAE random masking of `num_patches` patches: uniform noise per patch, argsort ascending,
/// keep the first ⌊L·(1 − ratio)⌋ (see [`mae_keep_count`]).
pub fn mae_mask(num_patches: usize, ratio: f64, rng: &mut Generator) -> Result<MaeMask> {
    check_ratio("mae_mask", ratio)?;
    if num_patches == 0 {
        return Err(DataError::invalid("mae_mask", "needs at least one patch"));
    }
    let keep = mae_keep_count(num_patches, ratio);
    if keep == 0 {
        return Err(DataError::invalid("mae_mask", format!("ratio {ratio} keeps no patch of {num_patches}")));
    }
    let noise: Vec<f64> = (0..num_patches).map(|_| rng.next_f64()).collect();
    let mut ids_shuffle: Vec<usize> = (0..num_patches).collect();
    ids_shuffle.sort_by(|&a, &b| noise[a].total_cmp(&noise[b]).then(a.cmp(&b)));
    let mut ids_restore = vec![0usize; num_patches];
    for (pos, &id) in ids_shuffle.iter().enumerate() {
        ids_restore[id] = pos;
    }
    let mask = ids_restore.iter().map(|&pos| (pos >= keep) as u8).collect();
    Ok(MaeMask { ids_keep: ids_shuffle[..keep].to_vec(), mask, ids_restore })
}

/// MAE masks of a batch as flat buffers ready for tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct MaeBatchMask {
    /// Batch size B.
    pub batch: usize,
    /// Patches per image L.
    pub num_patches: usize,
    /// Kept patches per image.
    pub keep: usize,
    /// `[B, keep]` kept patch indices.
    pub ids_keep: Vec<i64>,
    /// `[B, L]`, 1.0 where masked.
    pub mask: Vec<f32>,
    /// `[B, L]` restore permutation.
    pub ids_restore: Vec<i64>,
}

/// MAE masks for `batch` samples; sample `i` uses `rng.fork(i)`, so the result is the same
/// at any thread count and for a sample wherever it sits in the batch.
pub fn mae_mask_batch(batch: usize, num_patches: usize, ratio: f64, rng: &Generator) -> Result<MaeBatchMask> {
    let masks: Vec<MaeMask> =
        (0..batch).into_par_iter().map(|i| mae_mask(num_patches, ratio, &mut rng.fork(i as u64))).collect::<Result<_>>()?;
    let keep = mae_keep_count(num_patches, ratio);
    Ok(MaeBatchMask {
        batch,
        num_patches,
        keep,
        ids_keep: masks.iter().flat_map(|m| m.ids_keep.iter().map(|&i| i as i64)).collect(),
        mask: masks.iter().flat_map(|m| m.mask.iter().map(|&v| v as f32)).collect(),
        ids_restore: masks.iter().flat_map(|m| m.ids_restore.iter().map(|&i| i as i64)).collect(),
    })
}

/// SimMIM masking: a random set of exactly round(ratio · cells) cells of a coarse grid
/// (`mask_patch` pixels per cell) is masked, then upsampled to the model's patch grid
/// (`model_patch` pixels per patch).
#[derive(Debug, Clone, PartialEq)]
pub struct SimMimMasker {
    coarse: (usize, usize),
    scale: usize,
    masked: usize,
}

impl SimMimMasker {
    /// For `input` = (height, width) images; `mask_patch` must divide both sides and be a
    /// multiple of `model_patch`; `ratio` in [0, 1).
    pub fn new(input: (usize, usize), mask_patch: usize, model_patch: usize, ratio: f64) -> Result<Self> {
        check_ratio("SimMimMasker", ratio)?;
        let ok = model_patch > 0
            && mask_patch > 0
            && mask_patch.is_multiple_of(model_patch)
            && input.0.is_multiple_of(mask_patch)
            && input.1.is_multiple_of(mask_patch);
        if !ok || input.0 == 0 || input.1 == 0 {
            return Err(DataError::invalid(
                "SimMimMasker",
                format!("mask patch {mask_patch} must divide the input {input:?} and be a multiple of the model patch {model_patch}"),
            ));
        }
        let coarse = (input.0 / mask_patch, input.1 / mask_patch);
        let masked = (ratio * (coarse.0 * coarse.1) as f64).round() as usize;
        Ok(SimMimMasker { coarse, scale: mask_patch / model_patch, masked })
    }

    /// The coarse mask grid (rows, columns).
    pub fn coarse_grid(&self) -> (usize, usize) {
        self.coarse
    }

    /// The model's patch grid (rows, columns) that masks are returned on.
    pub fn model_grid(&self) -> (usize, usize) {
        (self.coarse.0 * self.scale, self.coarse.1 * self.scale)
    }

    /// Coarse cells masked per sample: round(ratio · cells).
    pub fn masked_cells(&self) -> usize {
        self.masked
    }

    /// One mask on the model grid, row-major, 1 where masked.
    pub fn sample(&self, rng: &mut Generator) -> Vec<u8> {
        let (ch, cw) = self.coarse;
        let mut coarse = vec![0u8; ch * cw];
        for &i in &rng.permutation(ch * cw)[..self.masked] {
            coarse[i] = 1;
        }
        let (gh, gw) = self.model_grid();
        (0..gh * gw).map(|p| coarse[(p / gw / self.scale) * cw + (p % gw) / self.scale]).collect()
    }

    /// Masks of a batch as `[B, rows, columns]` f32 (1.0 where masked); sample `i` uses
    /// `rng.fork(i)`.
    pub fn sample_batch(&self, batch: usize, rng: &Generator) -> Vec<f32> {
        let masks: Vec<Vec<u8>> = (0..batch).into_par_iter().map(|i| self.sample(&mut rng.fork(i as u64))).collect();
        masks.iter().flatten().map(|&v| v as f32).collect()
    }
}

/// MAE's per-sample random masks as a batch task: sets `mask` to u8 `[B, L]`.
#[derive(Debug, Clone)]
pub struct MaeMasking {
    /// Patches per image L.
    pub num_patches: usize,
    /// Fraction masked, in (0, 1).
    pub ratio: f64,
}

impl BatchTask for MaeMasking {
    fn apply(&self, mut batch: TrainBatch, rng: &Generator) -> Result<TrainBatch> {
        let m = mae_mask_batch(batch.len(), self.num_patches, self.ratio, rng)?;
        let mask: Vec<u8> = m.mask.iter().map(|&v| v as u8).collect();
        batch.mask = Some(Tensor::from_vec(mask, &[m.batch, m.num_patches])?);
        Ok(batch)
    }
}

/// SimMIM's block-wise masks as a batch task: sets `mask` to u8 `[B, L]` on the model's
/// patch grid.
#[derive(Debug, Clone)]
pub struct SimMimMasking(pub SimMimMasker);

impl BatchTask for SimMimMasking {
    fn apply(&self, mut batch: TrainBatch, rng: &Generator) -> Result<TrainBatch> {
        let (gh, gw) = self.0.model_grid();
        let mask: Vec<u8> = self.0.sample_batch(batch.len(), rng).iter().map(|&v| v as u8).collect();
        batch.mask = Some(Tensor::from_vec(mask, &[batch.len(), gh * gw])?);
        Ok(batch)
    }
}
