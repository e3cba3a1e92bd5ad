//! Invariants of the pretext and masked-modelling task transforms.

use tessera_engine::{Generator, Tensor};
use tessera_ssl::data::tasks::jigsaw::{Jigsaw, PermutationSet};
use tessera_ssl::data::tasks::lab::{lab_to_rgb, lab_to_rgb_pixel, rgb_to_lab, rgb_to_lab_pixel, AbQuantizer};
use tessera_ssl::data::tasks::masking::{mae_keep_count, mae_mask, mae_mask_batch, SimMimMasker};
use tessera_ssl::data::tasks::rotation::{rot90, rotation_batch};
use tessera_ssl::data::tasks::{downsample, normalize_tile, rebalancing_weights, ColorizationTask, ColourPrior, JigsawTask, RotationTask};
use tessera_ssl::data::Image;
use tessera_ssl::data::{synthetic_colour, BatchTask, SyntheticConfig, TrainBatch};

fn ramp(c: usize, h: usize, w: usize) -> Image {
    let n = c * h * w;
    Image::new(c, h, w, (0..n).map(|i| i as f32 / n as f32).collect()).unwrap()
}

#[test]
fn rot90_matches_torch_and_cycles() {
    // torch.rot90([[1, 2], [3, 4]], 1) == [[2, 4], [1, 3]]
    let img = Image::new(1, 2, 2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(rot90(&img, 1).data(), &[2.0, 4.0, 1.0, 3.0]);
    assert_eq!(rot90(&img, 2).data(), &[4.0, 3.0, 2.0, 1.0]);
    let rect = ramp(3, 4, 7);
    assert_eq!(rot90(&rect, 1).shape(), [3, 7, 4]);
    assert_eq!(rot90(&rot90(&rect, 1), 3), rect);
    assert_eq!(rot90(&rot90(&rot90(&rot90(&rect, 1), 1), 1), 1), rect);
    assert_eq!(rot90(&rot90(&rect, 2), 2), rect);
}

#[test]
fn rotation_batch_stacks_four_rotations() {
    let a = ramp(2, 5, 5);
    let data: Vec<f32> = a.data().iter().chain(a.data()).copied().collect();
    let (out, labels) = rotation_batch(&data, [2, 2, 5, 5]).unwrap();
    assert_eq!(out.len(), 8 * 50);
    assert_eq!(labels, vec![0, 1, 2, 3, 0, 1, 2, 3]);
    assert_eq!(&out[50..100], rot90(&a, 1).data());
    assert!(rotation_batch(&data, [2, 2, 5, 6]).is_err());
}

#[test]
fn permutation_set_is_spread_and_deterministic() {
    let set = PermutationSet::greedy(9, 30, 7).unwrap();
    assert_eq!(set.len(), 30);
    for i in 0..set.len() {
        let mut p = set.get(i).to_vec();
        p.sort();
        assert_eq!(p, (0..9).collect::<Vec<_>>(), "member {i} is a permutation");
    }
    let min = set.min_distance();
    println!("jigsaw 3x3, 30 permutations: min pairwise Hamming distance {min}");
    assert!(min >= 7, "min Hamming distance {min}");
    assert_eq!(set, PermutationSet::greedy(9, 30, 7).unwrap());
    assert_ne!(set, PermutationSet::greedy(9, 30, 8).unwrap());
    // 2x2: all 24 permutations are reachable; asking for more is an error.
    assert_eq!(PermutationSet::greedy(4, 24, 0).unwrap().len(), 24);
    assert!(PermutationSet::greedy(4, 25, 0).is_err());
    // Noroozi & Favaro's usual set size: 100 permutations of 9 tiles.
    let hundred = PermutationSet::greedy(9, 100, 0).unwrap();
    println!("jigsaw 3x3, 100 permutations: min pairwise Hamming distance {}", hundred.min_distance());
    assert!(hundred.min_distance() >= 6);
    let big = PermutationSet::greedy(16, 10, 1).unwrap();
    println!("jigsaw 4x4, 10 permutations: min pairwise Hamming distance {}", big.min_distance());
    assert!(big.min_distance() >= 14);
}

#[test]
fn jigsaw_tiles_come_from_their_cells() {
    let perms = PermutationSet::greedy(9, 10, 3).unwrap();
    let jig = Jigsaw::new(3, 7, perms).unwrap();
    let img = ramp(1, 28, 28);
    let mut rng = Generator::new(5);
    for _ in 0..20 {
        let s = jig.apply(&img, &mut rng).unwrap();
        assert_eq!(s.tiles.len(), 9);
        assert!(s.label < 10);
        assert_eq!(s.stacked().len(), 9 * 49);
        let perm = jig.permutations().get(s.label);
        for (pos, tile) in s.tiles.iter().enumerate() {
            assert_eq!(tile.shape(), [1, 7, 7]);
            // The ramp encodes the pixel's position: recover the tile's top-left corner.
            let first = (tile.at(0, 0, 0) * 784.0).round() as usize;
            let (y, x) = (first / 28, first % 28);
            let cell = perm[pos];
            assert!((cell / 3) * 9 <= y && y + 7 <= (cell / 3) * 9 + 9, "tile row {y} outside cell {cell}");
            assert!((cell % 3) * 9 <= x && x + 7 <= (cell % 3) * 9 + 9, "tile col {x} outside cell {cell}");
        }
    }
    assert!(jig.apply(&ramp(1, 12, 12), &mut rng).is_err(), "cells smaller than the tile");
}

#[test]
fn lab_round_trip_is_tight() {
    let mut rng = Generator::new(11);
    let mut worst = 0.0f64;
    for _ in 0..20_000 {
        let rgb = [rng.next_f64(), rng.next_f64(), rng.next_f64()];
        let back = lab_to_rgb_pixel(rgb_to_lab_pixel(rgb));
        worst = rgb.iter().zip(back).map(|(a, b)| (a - b).abs()).fold(worst, f64::max);
    }
    assert!(worst < 1e-3, "worst per-pixel round-trip error {worst}");
    // Known values: white, black, pure red.
    let white = rgb_to_lab_pixel([1.0, 1.0, 1.0]);
    assert!((white[0] - 100.0).abs() < 1e-3 && white[1].abs() < 1e-3 && white[2].abs() < 1e-3, "{white:?}");
    let red = rgb_to_lab_pixel([1.0, 0.0, 0.0]);
    assert!((red[0] - 53.24).abs() < 0.05 && (red[1] - 80.09).abs() < 0.05 && (red[2] - 67.20).abs() < 0.05, "{red:?}");
    // Image-level (f32) round trip.
    let img = ramp(3, 8, 8);
    let back = lab_to_rgb(&rgb_to_lab(&img).unwrap()).unwrap();
    let err = img.data().iter().zip(back.data()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(err < 1e-3, "image round trip error {err}");
    assert!(rgb_to_lab(&ramp(1, 4, 4)).is_err());
}

#[test]
fn srgb_gamut_ab_bins() {
    // Sampling every 8-bit sRGB colour hits 261 bins of the 10-wide grid (not the 313 of
    // Zhang et al., whose set was derived differently; see AbQuantizer::from_srgb_sampling).
    let q = AbQuantizer::srgb();
    assert_eq!(q.len(), 261, "in-gamut ab bins of the sRGB cube");
    let (amin, amax) = q.centers().iter().fold((f32::MAX, f32::MIN), |(lo, hi), c| (lo.min(c[0]), hi.max(c[0])));
    let (bmin, bmax) = q.centers().iter().fold((f32::MAX, f32::MIN), |(lo, hi), c| (lo.min(c[1]), hi.max(c[1])));
    assert_eq!((amin, amax, bmin, bmax), (-90.0, 100.0, -110.0, 90.0));
    // A coarser sampling of the cube finds the same bins.
    assert_eq!(AbQuantizer::from_srgb_sampling(64).len(), 261);
    // Every bin centre is a multiple of 10 inside [-110, 110].
    assert!(q.centers().iter().all(|c| c[0] % 10.0 == 0.0 && c[1] % 10.0 == 0.0 && c[0].abs() <= 110.0 && c[1].abs() <= 110.0));
}

#[test]
fn soft_encoding_uses_five_nearest_bins() {
    let q = AbQuantizer::srgb();
    let img = ramp(3, 6, 5);
    let lab = rgb_to_lab(&img).unwrap();
    let t = q.soft_encode(&lab).unwrap();
    assert_eq!((t.height, t.width, t.k), (6, 5, 5));
    assert_eq!(t.bins.len(), 30 * 5);
    for p in 0..30 {
        let w = &t.weights[p * 5..p * 5 + 5];
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(w.windows(2).all(|x| x[0] >= x[1]), "nearest bin weighs most: {w:?}");
        let nearest = q.nearest(lab.plane(1)[p], lab.plane(2)[p]);
        assert_eq!(t.bins[p * 5] as usize, nearest);
    }
    let dense = t.to_dense(q.len());
    assert_eq!(dense.len(), q.len() * 30);
    let total: f32 = dense.iter().sum();
    assert!((total - 30.0).abs() < 1e-3);
    // Decoding a one-hot distribution gives back that bin's centre.
    let mut probs = vec![0.0f32; q.len()];
    probs[100] = 1.0;
    let ab = q.annealed_mean(&probs, 1, 1, 0.38).unwrap();
    assert!((ab[0] - q.centers()[100][0]).abs() < 1e-3 && (ab[1] - q.centers()[100][1]).abs() < 1e-3);
}

#[test]
fn mae_mask_ratio_is_exact_per_sample() {
    let mut rng = Generator::new(3);
    for &(l, ratio) in &[(196usize, 0.75f64), (49, 0.75), (10, 0.7), (16, 0.5), (64, 0.625)] {
        let keep = mae_keep_count(l, ratio);
        assert_eq!(keep, (l as f64 * (1.0 - ratio)).round() as usize, "these cases have whole keep counts");
        for _ in 0..20 {
            let m = mae_mask(l, ratio, &mut rng).unwrap();
            assert_eq!(m.ids_keep.len(), keep);
            assert_eq!(m.mask.iter().filter(|&&v| v == 1).count(), l - keep);
            for &k in &m.ids_keep {
                assert_eq!(m.mask[k], 0, "kept patch is unmasked");
            }
            let mut seen = m.ids_restore.clone();
            seen.sort();
            assert_eq!(seen, (0..l).collect::<Vec<_>>());
            for (pos, &k) in m.ids_keep.iter().enumerate() {
                assert_eq!(m.ids_restore[k], pos, "ids_restore inverts the shuffle");
            }
        }
    }
    assert_eq!(mae_keep_count(10, 0.7), 3);
    assert!(mae_mask(16, 1.0, &mut rng).is_err());
    let b = mae_mask_batch(8, 49, 0.75, &Generator::new(1)).unwrap();
    assert_eq!((b.ids_keep.len(), b.mask.len(), b.ids_restore.len()), (8 * 12, 8 * 49, 8 * 49));
    for s in 0..8 {
        assert_eq!(b.mask[s * 49..(s + 1) * 49].iter().sum::<f32>(), 37.0);
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    assert_eq!(pool.install(|| mae_mask_batch(8, 49, 0.75, &Generator::new(1)).unwrap()), b);
}

#[test]
fn simmim_masks_exactly_round_ratio_cells() {
    let m = SimMimMasker::new((32, 32), 8, 4, 0.6).unwrap();
    assert_eq!(m.coarse_grid(), (4, 4));
    assert_eq!(m.model_grid(), (8, 8));
    assert_eq!(m.masked_cells(), 10); // round(0.6 * 16) = 9.6 -> 10
    let mut rng = Generator::new(2);
    for _ in 0..50 {
        let mask = m.sample(&mut rng);
        assert_eq!(mask.len(), 64);
        assert_eq!(mask.iter().filter(|&&v| v == 1).count(), 10 * 4);
        // Each coarse cell is uniformly masked or not on the 2x2 block of model patches.
        for cy in 0..4 {
            for cx in 0..4 {
                let v = mask[(2 * cy) * 8 + 2 * cx];
                assert!([(0, 1), (1, 0), (1, 1)].iter().all(|(dy, dx)| mask[(2 * cy + dy) * 8 + 2 * cx + dx] == v));
            }
        }
    }
    let batch = m.sample_batch(5, &Generator::new(9));
    assert_eq!(batch.len(), 5 * 64);
    assert!(SimMimMasker::new((28, 28), 8, 4, 0.6).is_err());
    assert!(SimMimMasker::new((32, 32), 8, 3, 0.6).is_err());
}

fn batch_of(views: Vec<Tensor>) -> TrainBatch {
    let n = views[0].shape()[0];
    TrainBatch {
        views,
        targets: None,
        mask: None,
        tokens: None,
        labels: Tensor::zeros(&[n], tessera_engine::DType::I64).unwrap(),
        indices: (0..n).collect(),
    }
}

#[test]
fn rotation_task_gives_four_rotations_and_their_labels() {
    // Known answer: [[1, 2], [3, 4]] rotated counter-clockwise by k quarter turns.
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], &[2, 1, 2, 2]).unwrap();
    let out = RotationTask.apply(batch_of(vec![x]), &Generator::new(0)).unwrap();
    assert_eq!(out.views.len(), 1);
    assert_eq!(out.views[0].shape(), [8, 1, 2, 2]);
    let v = out.views[0].to_vec::<f32>().unwrap();
    assert_eq!(&v[..16], &[1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 1.0, 3.0, 4.0, 3.0, 2.0, 1.0, 3.0, 1.0, 4.0, 2.0]);
    assert_eq!(&v[16..20], &[5.0, 6.0, 7.0, 8.0], "image 1 follows image 0's four rotations");
    assert_eq!(out.targets.unwrap().to_vec::<i64>().unwrap(), vec![0, 1, 2, 3, 0, 1, 2, 3]);
    let bad = Tensor::zeros(&[1, 1, 2, 3], tessera_engine::DType::F32).unwrap();
    assert!(RotationTask.apply(batch_of(vec![bad]), &Generator::new(0)).unwrap_err().to_string().contains("square"));
}

#[test]
fn jigsaw_offsets_stay_inside_their_cells_and_cover_the_jitter() {
    // 28×28 image, 3×3 cells of 9 pixels, 7-pixel tiles: offsets 0..=2 in each cell, so the
    // gap between horizontal neighbours is 9 + o₁ − o₀ − 7 ∈ [0, 4].
    let jig = Jigsaw::new(3, 7, PermutationSet::greedy(9, 10, 1).unwrap()).unwrap();
    let img = ramp(1, 28, 28);
    let mut rng = Generator::new(9);
    let (mut offsets, mut gaps) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for _ in 0..200 {
        let s = jig.apply(&img, &mut rng).unwrap();
        let perm = jig.permutations().get(s.label);
        let mut corner = [(0usize, 0usize); 9];
        for (pos, tile) in s.tiles.iter().enumerate() {
            let first = (tile.at(0, 0, 0) * 784.0).round() as usize;
            corner[perm[pos]] = (first / 28, first % 28);
        }
        for (cell, &(y, x)) in corner.iter().enumerate() {
            let (oy, ox) = (y - (cell / 3) * 9, x - (cell % 3) * 9);
            assert!(oy <= 2 && ox <= 2, "offset ({oy}, {ox}) in cell {cell}");
            offsets.insert(oy);
            offsets.insert(ox);
            if cell % 3 < 2 {
                let gap = corner[cell + 1].1 as i64 - (x as i64 + 7);
                assert!((0..=4).contains(&gap), "gap {gap}");
                gaps.insert(gap);
            }
        }
    }
    assert_eq!(offsets.into_iter().collect::<Vec<_>>(), vec![0, 1, 2], "the jitter reaches both ends of the cell");
    assert_eq!(gaps.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn jigsaw_task_stacks_normalized_shuffled_tiles_per_image() {
    let jig = Jigsaw::new(3, 7, PermutationSet::greedy(9, 12, 4).unwrap()).unwrap();
    let imgs: Vec<f32> = ramp(1, 28, 28).data().iter().chain(ramp(1, 28, 28).data().iter().rev()).copied().collect();
    let x = Tensor::from_vec(imgs.clone(), &[2, 1, 28, 28]).unwrap();
    let rng = Generator::new(3);
    let out = JigsawTask { jigsaw: jig.clone() }.apply(batch_of(vec![x]), &rng).unwrap();
    assert_eq!(out.views[0].shape(), [18, 1, 7, 7]);
    assert_eq!(out.views[1].shape(), [2, 1, 28, 28], "the whole images follow the tiles");
    let tiles = out.views[0].to_vec::<f32>().unwrap();
    let labels = out.targets.unwrap().to_vec::<i64>().unwrap();
    for i in 0..2 {
        // The same draws as the task's: image i uses rng.fork(i).
        let img = tessera_ssl::data::Image::new(1, 28, 28, imgs[i * 784..(i + 1) * 784].to_vec()).unwrap();
        let s = jig.apply(&img, &mut rng.fork(i as u64)).unwrap();
        assert_eq!(labels[i], s.label as i64);
        for (pos, tile) in s.tiles.iter().enumerate() {
            let mut want = tile.data().to_vec();
            normalize_tile(&mut want);
            assert_eq!(&tiles[(i * 9 + pos) * 49..(i * 9 + pos + 1) * 49], want.as_slice(), "image {i} position {pos}");
            let mean = want.iter().sum::<f32>() / 49.0;
            let var = want.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 49.0;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "tile normalized on its own: mean {mean}, var {var}");
        }
    }
    // A uniform tile stays flat instead of dividing by zero.
    let mut flat = vec![0.3f32; 49];
    normalize_tile(&mut flat);
    assert!(flat.iter().all(|v| v.abs() < 1e-4), "{flat:?}");
}

#[test]
fn annealed_mean_goes_from_the_mode_to_the_mean() {
    let q = AbQuantizer::from_centers(vec![[0.0, 0.0], [10.0, 20.0], [-30.0, 40.0]]).unwrap();
    let probs = [0.5f32, 0.3, 0.2];
    let mean = [0.3 * 10.0 - 0.2 * 30.0, 0.3 * 20.0 + 0.2 * 40.0];
    let at_one = q.annealed_mean(&probs, 1, 1, 1.0).unwrap();
    assert!((at_one[0] - mean[0]).abs() < 1e-4 && (at_one[1] - mean[1]).abs() < 1e-4, "T = 1: the mean {at_one:?}");
    let cold = q.annealed_mean(&probs, 1, 1, 0.01).unwrap();
    assert!(cold[0].abs() < 1e-3 && cold[1].abs() < 1e-3, "T → 0: the mode (bin 0) {cold:?}");
    let paper = q.annealed_mean(&probs, 1, 1, 0.38).unwrap();
    assert!(paper[1] > 0.0 && paper[1] < at_one[1], "T = 0.38 lies between: {paper:?}");
    assert!(AbQuantizer::from_centers(vec![]).is_err());
}

#[test]
fn rebalancing_weights_have_expectation_one_under_the_prior() {
    let p = [0.7, 0.2, 0.05, 0.05];
    for lambda in [0.1, 0.5, 1.0] {
        let w = rebalancing_weights(&p, lambda);
        let e: f64 = p.iter().zip(&w).map(|(p, w)| p * w).sum();
        assert!((e - 1.0).abs() < 1e-12, "λ {lambda}: E[w] = {e}");
        assert!(w[0] <= w[1] && w[1] <= w[2], "rarer bins weigh more: {w:?}");
    }
    assert!(rebalancing_weights(&p, 1.0).iter().all(|w| (w - 1.0).abs() < 1e-12), "λ = 1: uniform weights");
    // From data: the synthetic colour set's bins, prior and weights.
    let ds = synthetic_colour(SyntheticConfig { len: 40, ..SyntheticConfig::default() }).unwrap();
    let prior = ColourPrior::from_dataset(&ds, 5.0, 0.5).unwrap();
    let q = prior.centers.len();
    assert!((5..=261).contains(&q), "{q} bins");
    assert_eq!((prior.prior.len(), prior.weights.len()), (q, q));
    let total: f64 = prior.prior.iter().map(|&v| v as f64).sum();
    let e: f64 = prior.prior.iter().zip(&prior.weights).map(|(&p, &w)| p as f64 * w as f64).sum();
    assert!((total - 1.0).abs() < 1e-5 && (e - 1.0).abs() < 1e-5, "Σp̃ = {total}, E_p̃[w] = {e}");
    assert!(prior.centers.iter().all(|c| c[0] % 10.0 == 0.0 && c[1] % 10.0 == 0.0));
    let grey = tessera_ssl::data::Dataset::new("grey", [1, 2, 2], vec![0; 4], vec![0], vec!["a".into()]).unwrap();
    assert!(ColourPrior::from_dataset(&grey, 5.0, 0.5).unwrap_err().to_string().contains("colour"));
}

#[test]
fn colorization_targets_are_soft_encodings_of_the_downsampled_ab() {
    let ds = synthetic_colour(SyntheticConfig { len: 4, ..SyntheticConfig::default() }).unwrap();
    let prior = ColourPrior::from_dataset(&ds, 5.0, 0.5).unwrap();
    let quantizer = AbQuantizer::from_centers(prior.centers.clone()).unwrap();
    let q = quantizer.len();
    // Identity normalization: the task then sees exactly the u8 values the reference below sees.
    let norm = (0.0f32, 1.0f32);
    let px: Vec<f32> =
        (0..2).flat_map(|i| ds.pixels(i).iter().map(|&p| (p as f32 / 255.0 - norm.0) / norm.1).collect::<Vec<_>>()).collect();
    let x = Tensor::from_vec(px, &[2, 3, 32, 32]).unwrap();
    let out = ColorizationTask { quantizer: quantizer.clone(), norm, side: 8 }.apply(batch_of(vec![x]), &Generator::new(0)).unwrap();
    let t = out.targets.unwrap();
    assert_eq!(t.shape(), [2, 8, 8, q]);
    let t = t.to_vec::<f32>().unwrap();
    let lab = downsample(&rgb_to_lab(&tessera_ssl::data::Image::from_u8(3, 32, 32, ds.pixels(1)).unwrap()).unwrap(), 8).unwrap();
    for p in 0..64 {
        let row = &t[(64 + p) * q..(64 + p + 1) * q];
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "pixel {p} sums to 1");
        let argmax = (0..q).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        assert_eq!(argmax, quantizer.nearest(lab.plane(1)[p], lab.plane(2)[p]), "pixel {p} peaks at its nearest bin");
    }
    // Block means: a 4×4 block of a ramp averages its 16 values.
    let r = downsample(&ramp(1, 8, 8), 2).unwrap();
    let want: f32 = (0..4).flat_map(|y| (0..4).map(move |x| (y * 8 + x) as f32 / 64.0)).sum::<f32>() / 16.0;
    assert!((r.at(0, 0, 0) - want).abs() < 1e-6);
}
