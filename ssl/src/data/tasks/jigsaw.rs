//! Jigsaw puzzles (Noroozi & Favaro 2016): the image is cut into a grid of cells, a tile is
//! cropped at a random offset inside each cell (so neighbouring tiles do not share an edge
//! that could be matched), and the tiles are shuffled by one permutation of a fixed set; the
//! network predicts which permutation it was.

use std::sync::Arc;

use rayon::prelude::*;
use tessera_engine::{Generator, Tensor};

use super::first_view;
use crate::data::error::{DataError, Result};
use crate::data::image::Image;
use crate::data::recipe::{BatchTask, TrainBatch};

/// Permutations are packed as 4-bit nibbles in a u64, so at most 16 tiles (a 4×4 grid).
const MAX_TILES: usize = 16;
/// Candidates drawn at random when the tile count's factorial is too large to enumerate.
const SAMPLED_POOL: usize = 200_000;

/// Number of positions where the nibble-packed permutations `a` and `b` differ.
#[inline]
fn hamming_packed(a: u64, b: u64) -> u32 {
    let x = a ^ b;
    ((x | (x >> 1) | (x >> 2) | (x >> 3)) & 0x1111_1111_1111_1111).count_ones()
}

fn pack(p: &[usize]) -> u64 {
    p.iter().enumerate().fold(0, |acc, (i, &v)| acc | ((v as u64) << (4 * i)))
}

fn unpack(x: u64, n: usize) -> Vec<usize> {
    (0..n).map(|i| ((x >> (4 * i)) & 0xf) as usize).collect()
}

/// Every permutation of `0..n` (Heap's algorithm), packed.
fn all_permutations(n: usize) -> Vec<u64> {
    let mut p: Vec<usize> = (0..n).collect();
    let mut c = vec![0usize; n];
    let mut out = vec![pack(&p)];
    let mut i = 0;
    while i < n {
        if c[i] < i {
            p.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
            out.push(pack(&p));
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    out
}

/// A set of tile permutations chosen greedily for large pairwise Hamming distances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermutationSet {
    tiles: usize,
    perms: Vec<Vec<usize>>,
}

impl PermutationSet {
    /// `count` permutations of `0..tiles` (2 ≤ tiles ≤ 16), deterministic from `seed`. The
    /// candidates are all `tiles!` permutations when there are at most 9! of them, else
    /// 200,000 seeded random ones. The first pick is random; each next one maximizes the
    /// minimum Hamming distance to those already chosen, then the summed distance (the
    /// criterion of Noroozi & Favaro), with remaining ties broken by a seeded random key.
    pub fn greedy(tiles: usize, count: usize, seed: u64) -> Result<Self> {
        if !(2..=MAX_TILES).contains(&tiles) {
            return Err(DataError::invalid("PermutationSet", format!("tile count must be in 2..=16, got {tiles}")));
        }
        let mut rng = Generator::new(seed);
        let candidates = if tiles <= 9 {
            all_permutations(tiles)
        } else {
            let mut pool = rng.fork(1);
            (0..SAMPLED_POOL).map(|_| pack(&pool.permutation(tiles))).collect()
        };
        if count == 0 || count > candidates.len() {
            return Err(DataError::invalid("PermutationSet", format!("count must be in 1..={}, got {count}", candidates.len())));
        }
        let keys_rng = rng.fork(2);
        let keys: Vec<u64> = (0..candidates.len() as u64).map(|k| keys_rng.fork(k).next_below(u64::MAX)).collect();
        // Per candidate: min distance to the chosen set, summed distance, tie key.
        let mut state: Vec<(u32, u32, u64)> = keys.iter().map(|&k| (u32::MAX, 0, k)).collect();
        let mut chosen = vec![candidates[rng.next_below(candidates.len() as u64) as usize]];
        while chosen.len() < count {
            let last = chosen[chosen.len() - 1];
            let best = state
                .par_iter_mut()
                .zip(candidates.par_iter())
                .enumerate()
                .map(|(k, (s, &c))| {
                    let d = hamming_packed(c, last);
                    s.0 = s.0.min(d);
                    s.1 += d;
                    ((s.0, s.1, s.2), k)
                })
                .max()
                .map(|(_, k)| k);
            // `best` exists: candidates is non-empty.
            chosen.push(candidates[best.unwrap_or(0)]);
        }
        Ok(PermutationSet { tiles, perms: chosen.iter().map(|&p| unpack(p, tiles)).collect() })
    }

    /// A set from explicit permutations (a saved run's), each ordering `0..tiles`.
    pub fn from_rows(tiles: usize, perms: Vec<Vec<usize>>) -> Result<Self> {
        if !(2..=MAX_TILES).contains(&tiles) || perms.is_empty() {
            return Err(DataError::invalid(
                "PermutationSet",
                format!("needs 2..=16 tiles and at least one permutation, got {tiles} and {}", perms.len()),
            ));
        }
        for (i, p) in perms.iter().enumerate() {
            let mut sorted = p.clone();
            sorted.sort_unstable();
            if sorted != (0..tiles).collect::<Vec<_>>() {
                return Err(DataError::invalid("PermutationSet", format!("row {i} {p:?} is not a permutation of 0..{tiles}")));
            }
        }
        Ok(PermutationSet { tiles, perms })
    }

    /// Number of permutations (the number of classes of the jigsaw task).
    pub fn len(&self) -> usize {
        self.perms.len()
    }

    /// Whether the set is empty (never, for a set built by [`PermutationSet::greedy`]).
    pub fn is_empty(&self) -> bool {
        self.perms.is_empty()
    }

    /// Number of tiles each permutation orders.
    pub fn tiles(&self) -> usize {
        self.tiles
    }

    /// Permutation `i`: position `j` shows the tile of cell `get(i)[j]`. Panics if out of range.
    pub fn get(&self, i: usize) -> &[usize] {
        &self.perms[i]
    }

    /// Number of positions where two permutations differ.
    pub fn hamming(a: &[usize], b: &[usize]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    /// The smallest Hamming distance between two distinct members (`tiles` for a set of one).
    pub fn min_distance(&self) -> usize {
        let mut best = self.tiles;
        for i in 0..self.perms.len() {
            for j in i + 1..self.perms.len() {
                best = best.min(Self::hamming(&self.perms[i], &self.perms[j]));
            }
        }
        best
    }
}

/// One jigsaw puzzle: the shuffled tiles and the index of the permutation used.
#[derive(Debug, Clone, PartialEq)]
pub struct JigsawSample {
    /// `grid²` tiles, each C×tile×tile, in shuffled order.
    pub tiles: Vec<Image>,
    /// Index into the permutation set (the class to predict).
    pub label: usize,
}

impl JigsawSample {
    /// The tiles as one contiguous `[T, C, tile, tile]` buffer.
    pub fn stacked(&self) -> Vec<f32> {
        self.tiles.iter().flat_map(|t| t.data().iter().copied()).collect()
    }
}

/// Cuts images into jigsaw puzzles: a `grid`×`grid` layout of cells, a `tile`×`tile` crop at
/// a random offset in each cell, shuffled by a random member of the permutation set.
#[derive(Debug, Clone)]
pub struct Jigsaw {
    grid: usize,
    tile: usize,
    perms: Arc<PermutationSet>,
}

impl Jigsaw {
    /// A jigsaw of `grid`×`grid` tiles of side `tile` using `perms` (which must order
    /// `grid²` tiles). Choose `tile` smaller than the cell (image side / grid) so the random
    /// offsets leave gaps between tiles.
    pub fn new(grid: usize, tile: usize, perms: PermutationSet) -> Result<Self> {
        if grid < 2 || perms.tiles() != grid * grid {
            return Err(DataError::invalid(
                "Jigsaw",
                format!("grid {grid} needs a permutation set of {} tiles, got {}", grid * grid, perms.tiles()),
            ));
        }
        if tile == 0 {
            return Err(DataError::invalid("Jigsaw", "tile size must be positive"));
        }
        Ok(Jigsaw { grid, tile, perms: Arc::new(perms) })
    }

    /// The permutation set.
    pub fn permutations(&self) -> &PermutationSet {
        &self.perms
    }

    /// Builds one puzzle from `img`; errors if a cell (side / grid) is smaller than the tile.
    pub fn apply(&self, img: &Image, rng: &mut Generator) -> Result<JigsawSample> {
        let (cell_h, cell_w) = (img.height() / self.grid, img.width() / self.grid);
        if cell_h < self.tile || cell_w < self.tile {
            return Err(DataError::invalid(
                "Jigsaw",
                format!("a {}x{} image gives {cell_h}x{cell_w} cells, smaller than the {} tile", img.height(), img.width(), self.tile),
            ));
        }
        let mut cells = Vec::with_capacity(self.grid * self.grid);
        for gy in 0..self.grid {
            for gx in 0..self.grid {
                let oy = rng.next_below((cell_h - self.tile + 1) as u64) as usize;
                let ox = rng.next_below((cell_w - self.tile + 1) as u64) as usize;
                cells.push(img.crop(gy * cell_h + oy, gx * cell_w + ox, self.tile, self.tile)?);
            }
        }
        let label = rng.next_below(self.perms.len() as u64) as usize;
        let tiles = self.perms.get(label).iter().map(|&cell| cells[cell].clone()).collect();
        Ok(JigsawSample { tiles, label })
    }
}

/// Floor of a tile's standard deviation when it is normalized on its own: an almost uniform
/// tile (background) is left near zero instead of having its faint noise blown up.
const TILE_STD_FLOOR: f32 = 0.05;

/// Shifts and scales `tile` to zero mean and unit standard deviation over all its values
/// (Noroozi & Favaro normalize each tile on its own, so brightness and contrast, which
/// vary smoothly across an image, do not give a tile's position away).
pub fn normalize_tile(tile: &mut [f32]) {
    let n = tile.len().max(1) as f32;
    let mean = tile.iter().sum::<f32>() / n;
    let var = tile.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let std = var.sqrt().max(TILE_STD_FLOOR);
    tile.iter_mut().for_each(|v| *v = (*v - mean) / std);
}

/// The jigsaw batch task: the first view `[B, C, H, W]` becomes the shuffled, individually
/// normalized tiles `[B·T, C, tile, tile]` (image-major: the T = grid² tiles of image 0
/// in shuffled order, then image 1's), followed by the whole images as the second view
/// (the online probe reads them); the targets are the permutation indices `[B]` (i64).
/// Image `i` draws its offsets and permutation from `rng.fork(i)`.
#[derive(Debug, Clone)]
pub struct JigsawTask {
    pub jigsaw: Jigsaw,
}

impl BatchTask for JigsawTask {
    fn apply(&self, mut batch: TrainBatch, rng: &Generator) -> Result<TrainBatch> {
        let (data, [b, c, h, w]) = first_view(&batch, "JigsawTask")?;
        let samples: Vec<JigsawSample> = data
            .par_chunks_exact(c * h * w)
            .enumerate()
            .map(|(i, px)| self.jigsaw.apply(&Image::new(c, h, w, px.to_vec())?, &mut rng.fork(i as u64)))
            .collect::<Result<_>>()?;
        let (t, side) = (self.jigsaw.grid * self.jigsaw.grid, self.jigsaw.tile);
        let mut tiles = Vec::with_capacity(b * t * c * side * side);
        for s in &samples {
            for tile in &s.tiles {
                let start = tiles.len();
                tiles.extend_from_slice(tile.data());
                normalize_tile(&mut tiles[start..]);
            }
        }
        let whole = batch.views.swap_remove(0);
        batch.views = vec![Tensor::from_vec(tiles, &[b * t, c, side, side])?, whole];
        batch.targets = Some(Tensor::from_vec(samples.iter().map(|s| s.label as i64).collect::<Vec<_>>(), &[b])?);
        Ok(batch)
    }
}
