use super::*;

/// A small deterministic generator (xorshift), uniform in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0).collect()
    }
}

/// The input position a tap reads, if inside the image.
fn at(o: usize, s: usize, k: usize, d: usize, p: usize, n: usize) -> Option<usize> {
    (o * s + k * d).checked_sub(p).filter(|&v| v < n)
}

/// Naive forward, input gradient and weight gradient.
#[allow(clippy::type_complexity)]
fn reference(x: &[f64], w: &[f64], dy: &[f64], n: usize, m: usize, groups: usize, g: &ConvGeom) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (cg, mg, l) = (g.channels / groups, m / groups, g.col_len());
    let kg = cg * g.kh * g.kw;
    let mut y = vec![0.0; n * m * l];
    let mut dx = vec![0.0; n * g.image_len()];
    let mut dw = vec![0.0; m * kg];
    for s in 0..n {
        for co in 0..m {
            let grp = co / mg;
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let yi = (s * m + co) * l + oy * g.ow + ox;
                    for cl in 0..cg {
                        let ci = grp * cg + cl;
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                let (Some(iy), Some(ix)) = (at(oy, g.sh, i, g.dh, g.ph, g.h), at(ox, g.sw, j, g.dw, g.pw, g.w)) else {
                                    continue;
                                };
                                let xi = ((s * g.channels + ci) * g.h + iy) * g.w + ix;
                                let wi = co * kg + (cl * g.kh + i) * g.kw + j;
                                y[yi] += w[wi] * x[xi];
                                dx[xi] += w[wi] * dy[yi];
                                dw[wi] += dy[yi] * x[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    (y, dx, dw)
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: got {a}, want {b}");
    }
}

fn check_case(rng: &mut Rng, case: usize) {
    let groups = 1 + rng.below(3);
    let (cg, mg) = (1 + rng.below(if case.is_multiple_of(3) { 20 } else { 4 }), 1 + rng.below(if case % 3 == 1 { 20 } else { 4 }));
    let (c, m) = (cg * groups, mg * groups);
    let n = 1 + rng.below(if case.is_multiple_of(5) { 20 } else { 3 });
    let (h, w) = (1 + rng.below(9), 1 + rng.below(9));
    let (kh, kw) = (1 + rng.below(4), 1 + rng.below(4));
    let (sh, sw) = (1 + rng.below(3), 1 + rng.below(3));
    let (ph, pw) = (rng.below(3), rng.below(3));
    let (dh, dw) = (1 + rng.below(3), 1 + rng.below(3));
    let fits = |n: usize, k: usize, s: usize, p: usize, d: usize| (n + 2 * p > d * (k - 1)).then(|| (n + 2 * p - d * (k - 1) - 1) / s + 1);
    let (Some(oh), Some(ow)) = (fits(h, kh, sh, ph, dh), fits(w, kw, sw, pw, dw)) else {
        return;
    };
    let g = ConvGeom { channels: c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow };
    let x = rng.vec(n * g.image_len());
    let wt = rng.vec(m * cg * kh * kw);
    let dy = rng.vec(n * m * oh * ow);
    let bias = rng.vec(m);
    let (mut y, dx, dwt) = reference(&x, &wt, &dy, n, m, groups, &g);
    for (i, v) in y.iter_mut().enumerate() {
        *v += bias[(i / (oh * ow)) % m];
    }
    let what = format!("case {case}: {g:?} n {n} m {m} groups {groups}");
    let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let (x32, w32, dy32, b32) = (f32s(&x), f32s(&wt), f32s(&dy), f32s(&bias));
    // Every ISA of this CPU, each with its tile; the FMA ISAs sum every element in the
    // same order, so they must agree bit for bit. Outputs: (y, dx, dw) in f64, then f32.
    type Outputs = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f32>, Vec<f32>, Vec<f32>);
    let mut fused: Option<Outputs> = None;
    for isa in Isa::available() {
        let y64 = f64_kernels::forward(isa, &x, n, &wt, m, groups, &g, Some(&bias));
        let dx64 = f64_kernels::backward_input(isa, &dy, n, &wt, m, groups, &g);
        let dw64 = f64_kernels::backward_weight(isa, &dy, &x, n, m, groups, &g);
        let y32 = f32_kernels::forward(isa, &x32, n, &w32, m, groups, &g, Some(&b32));
        let dx32 = f32_kernels::backward_input(isa, &dy32, n, &w32, m, groups, &g);
        let dw32 = f32_kernels::backward_weight(isa, &dy32, &x32, n, m, groups, &g);
        close(&y64, &y, 1e-12, &format!("f64 forward {isa:?} {what}"));
        close(&dx64, &dx, 1e-12, &format!("f64 dx {isa:?} {what}"));
        close(&dw64, &dwt, 1e-12, &format!("f64 dw {isa:?} {what}"));
        close(&f64s(&y32), &y, 1e-4, &format!("f32 forward {isa:?} {what}"));
        close(&f64s(&dx32), &dx, 1e-4, &format!("f32 dx {isa:?} {what}"));
        close(&f64s(&dw32), &dwt, 1e-4, &format!("f32 dw {isa:?} {what}"));
        if isa == Isa::Portable {
            continue;
        }
        let got = (y64, dx64, dw64, y32, dx32, dw32);
        match &fused {
            Some(first) => assert!(*first == got, "{isa:?} differs from the other FMA ISA: {what}"),
            None => fused = Some(got),
        }
    }
}

#[test]
fn direct_kernels_match_naive_convolution() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for case in 0..400 {
        check_case(&mut rng, case);
    }
}

#[test]
fn narrow_resnet_shapes_match_naive_convolution() {
    // The SimCLR encoder's shapes (small batch): 3×3 stride 1 and 2, 1×1 stride 2.
    let mut rng = Rng(7);
    for (c, hw, m, k, s, p) in
        [(1, 28, 16, 3, 1, 1), (16, 28, 32, 3, 2, 1), (16, 28, 32, 1, 2, 0), (64, 7, 128, 3, 2, 1), (128, 4, 128, 3, 1, 1)]
    {
        let o = (hw + 2 * p - k) / s + 1;
        let g = ConvGeom { channels: c, h: hw, w: hw, kh: k, kw: k, sh: s, sw: s, ph: p, pw: p, dh: 1, dw: 1, oh: o, ow: o };
        let n = 3;
        let x = rng.vec(n * g.image_len());
        let wt = rng.vec(m * c * k * k);
        let dy = rng.vec(n * m * o * o);
        let (y, dx, dwt) = reference(&x, &wt, &dy, n, m, 1, &g);
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        let (x32, w32, dy32) = (f32s(&x), f32s(&wt), f32s(&dy));
        let mut fused: Option<(Vec<f32>, Vec<f32>, Vec<f32>)> = None;
        for isa in Isa::available() {
            let what = format!("{isa:?} {g:?}");
            let got = (
                f32_kernels::forward(isa, &x32, n, &w32, m, 1, &g, None),
                f32_kernels::backward_input(isa, &dy32, n, &w32, m, 1, &g),
                f32_kernels::backward_weight(isa, &dy32, &x32, n, m, 1, &g),
            );
            close(&f64s(&got.0), &y, 1e-4, &what);
            close(&f64s(&got.1), &dx, 1e-4, &what);
            close(&f64s(&got.2), &dwt, 1e-3, &what);
            // The FMA ISAs agree bit for bit (see check_case).
            match (&fused, isa) {
                (_, Isa::Portable) => {}
                (Some(first), _) => assert!(*first == got, "{what}: differs from the other FMA ISA"),
                (None, _) => fused = Some(got),
            }
        }
        // The trait runs the selected ISA.
        let what = format!("default {g:?}");
        close(&f64s(&f32::conv_forward(&x32, n, &w32, m, 1, &g, None)), &y, 1e-4, &what);
        close(&f64s(&f32::conv_backward_input(&dy32, n, &w32, m, 1, &g)), &dx, 1e-4, &what);
        close(&f64s(&f32::conv_backward_weight(&dy32, &x32, n, m, 1, &g)), &dwt, 1e-3, &what);
    }
}

#[test]
fn tasks_of_several_samples_match_one_sample_at_a_time() {
    // 4×4 and 3×3 images (ResNet-18's last stage, a stride-2 input gradient with 2×2 phases)
    // make tasks of several samples; one sample at a time must give the same bits.
    let mut rng = Rng(11);
    for (c, hw, m, k, s, p) in [(40, 4, 36, 3, 1, 1), (20, 6, 24, 3, 2, 1), (8, 3, 40, 1, 1, 0)] {
        let o = (hw + 2 * p - k) / s + 1;
        let g = ConvGeom { channels: c, h: hw, w: hw, kh: k, kw: k, sh: s, sw: s, ph: p, pw: p, dh: 1, dw: 1, oh: o, ow: o };
        let n = 27;
        let x: Vec<f32> = rng.vec(n * g.image_len()).iter().map(|&v| v as f32).collect();
        let wt: Vec<f32> = rng.vec(m * c * k * k).iter().map(|&v| v as f32).collect();
        let dy: Vec<f32> = rng.vec(n * m * o * o).iter().map(|&v| v as f32).collect();
        let bias: Vec<f32> = rng.vec(m).iter().map(|&v| v as f32).collect();
        // One worker: several samples per task (6 here, the last task 3).
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
        assert!(pool.install(|| samples_per_task(o * o / (s * s), n, |per| per)) > 1, "the shape must make multi-sample tasks");
        for isa in Isa::available() {
            let (y, dx) = pool.install(|| {
                (f32_kernels::forward(isa, &x, n, &wt, m, 1, &g, Some(&bias)), f32_kernels::backward_input(isa, &dy, n, &wt, m, 1, &g))
            });
            for b in 0..n {
                let xs = &x[b * g.image_len()..][..g.image_len()];
                let dys = &dy[b * m * o * o..][..m * o * o];
                let y1 = f32_kernels::forward(isa, xs, 1, &wt, m, 1, &g, Some(&bias));
                let dx1 = f32_kernels::backward_input(isa, dys, 1, &wt, m, 1, &g);
                assert!(y[b * y1.len()..][..y1.len()] == y1[..], "{isa:?} {g:?}: forward of sample {b}");
                assert!(dx[b * dx1.len()..][..dx1.len()] == dx1[..], "{isa:?} {g:?}: input gradient of sample {b}");
            }
        }
    }
}

#[test]
fn both_weight_gradient_paths_match_naive_convolution() {
    // The large-weight path (one gradient, workers sharing its channel blocks) and the
    // chunked one, each in batches of one sample, several, and all: within rounding of the
    // naive sums, the FMA ISAs bit for bit alike, and the large path alike on 1 and 3 workers.
    // 5×5 images skip the padding taps, 12×12 ones do not (see `MIN_TASK_ROWS`).
    let mut rng = Rng(23);
    for (c, hw, m, n) in [(12, 5, 40, 17), (3, 12, 36, 5)] {
        check_weight_gradient_paths(&mut rng, c, hw, m, n);
    }
}

fn check_weight_gradient_paths(rng: &mut Rng, c: usize, hw: usize, m: usize, n: usize) {
    let g = ConvGeom { channels: c, h: hw, w: hw, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, dh: 1, dw: 1, oh: hw, ow: hw };
    let x = rng.vec(n * g.image_len());
    let dy = rng.vec(n * m * hw * hw);
    let (_, _, want) = reference(&x, &vec![0.0; m * c * 9], &dy, n, m, 1, &g);
    let (x32, dy32): (Vec<f32>, Vec<f32>) = (x.iter().map(|&v| v as f32).collect(), dy.iter().map(|&v| v as f32).collect());
    let pools: Vec<_> = [1, 3].map(|t| rayon::ThreadPoolBuilder::new().num_threads(t).build().expect("pool")).into();
    for large in [false, true] {
        for batch in [1, 4, n] {
            let mut fused: Option<Vec<f32>> = None;
            for isa in Isa::available() {
                let what = format!("{hw}x{hw}: large {large}, batch {batch}, {isa:?}");
                let got64 = with_tile!(isa, m, backward_weight_with::<f64>(&dy, &x, n, m, 1, &g, Some((large, batch))), avx2: (6, 8), avx512: (6, 16));
                close(&got64, &want, 1e-12, &what);
                let runs: Vec<Vec<f32>> = pools
                    .iter()
                    .map(|pool| pool.install(|| with_tile!(isa, m, backward_weight_with::<f32>(&dy32, &x32, n, m, 1, &g, Some((large, batch))), avx2: (6, 16), avx512: (6, 32))))
                    .collect();
                close(&runs[0].iter().map(|&v| v as f64).collect::<Vec<_>>(), &want, 1e-4, &what);
                assert!(runs[0] == runs[1], "{what}: 1 and 3 workers differ");
                if isa != Isa::Portable {
                    match &fused {
                        Some(first) => assert!(*first == runs[0], "{what}: differs from the other FMA ISA"),
                        None => fused = Some(runs[0].clone()),
                    }
                }
            }
        }
    }
}

#[test]
fn tiles_cover_the_rows_in_order_and_read_no_more_taps_than_fixed_cuts() {
    // The rows of tasks of 1–8 samples of 3×3-kernel convolutions on 2×2 to 9×9 images:
    // the tiles cover every row once, in order, none longer than MR, each with its rows'
    // union; they never read more taps than cutting every MR rows, and rows that all read
    // the same taps are cut every MR rows.
    const MR: usize = 6;
    let fixed = |rects: &[TapRect]| -> usize { rects.chunks(MR).map(|c| c.iter().fold(c[0], |u, &r| u.union(r)).area()).sum() };
    for hw in 2..10 {
        let g = ConvGeom { channels: 1, h: hw, w: hw, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, dh: 1, dw: 1, oh: hw, ow: hw };
        let per_sample: Vec<(usize, usize, TapRect)> = (0..hw * hw).map(|q| (q, q, TapRect::inside_output(&g, q / hw, q % hw))).collect();
        for samples in 1..=8 {
            let task = TaskRows::new(&per_sample, samples, hw * hw, hw * hw, MR);
            let rects: Vec<TapRect> = {
                // The rows' taps, in the task's order (a row's source offset names its pixel).
                task.rows.iter().map(|&r| per_sample[r % (hw * hw)].2).collect()
            };
            let mut next = 0;
            for (range, rect) in &task.tiles {
                assert!(range.start == next && !range.is_empty() && range.len() <= MR, "{hw}×{hw}, {samples}: tile {range:?}");
                assert_eq!(*rect, rects[range.clone()].iter().fold(rects[range.start], |u, &r| u.union(r)));
                next = range.end;
            }
            assert_eq!(next, rects.len());
            assert_eq!(task.work, task.tiles.iter().map(|(_, r)| r.area()).sum::<usize>());
            assert!(task.work <= fixed(&rects), "{hw}×{hw}, {samples}: {} > {}", task.work, fixed(&rects));
        }
    }
    // An 8×8 image, two samples: cutting every 6 rows reads 0.911 of all (pixel, tap) pairs,
    // the chosen tiles 0.875 (the image holds 0.840 of them).
    let g = ConvGeom { channels: 1, h: 8, w: 8, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, dh: 1, dw: 1, oh: 8, ow: 8 };
    let per_sample: Vec<_> = (0..64).map(|q| (q, q, TapRect::inside_output(&g, q / 8, q % 8))).collect();
    let task = TaskRows::new(&per_sample, 2, 64, 64, MR);
    assert_eq!(task.work * MR, 1008);
    let same = vec![TapRect::new((0, 3), (0, 3)); 20];
    let cuts: Vec<_> = cut_tiles(&same, MR).into_iter().map(|(r, _)| r).collect();
    assert_eq!(cuts, vec![0..6, 6..12, 12..18, 18..20]);
}

#[test]
fn samples_per_task_takes_the_count_that_reads_least_per_sample() {
    // 4×4 images (16 rows): 8 samples reach MIN_TASK_ROWS; among 4–16 the work per sample
    // decides, then the count nearest 8.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    pool.install(|| {
        assert_eq!(samples_per_task(16, 256, |per| per * 10), 8);
        assert_eq!(samples_per_task(16, 256, |per| if per == 12 { 12 * 9 } else { per * 10 }), 12);
        // Large images take one sample per task whatever the work.
        assert_eq!(samples_per_task(256, 256, |per| per), 1);
        // Few samples: no more than leaves each worker a few tasks.
        assert!(samples_per_task(16, 8, |per| per) <= 1);
    });
    assert_eq!(busiest_worker(64, 6, 2), 34);
    assert_eq!(busiest_worker(64, 8, 2), 32);
    assert_eq!(busiest_worker(10, 3, 4), 3);
}
