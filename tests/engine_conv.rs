//! The convolution family (unfold / fold, conv2d, conv_transpose2d) against plain
//! nested-loop references (f64), plus dot-product (adjoint) checks of every backward kernel
//! (see tests/common/adjoint.rs), and the same ops on a GPU. Pooling: tests/engine_pool.rs.

mod common;

use common::adjoint::{assert_adjoint, assert_close, dot, rand, relayout, vals};
use common::gpu::same_on_gpu_tol;
use common::window::{out_len, window_params, P};
use proptest::prelude::*;
use tessera::engine::{DType, Tensor};

// ---- references -------------------------------------------------------------------------

fn unfold_ref(x: &[f64], [n, c, h, w]: [usize; 4], k: P, s: P, p: P, d: P) -> (Vec<f64>, Vec<usize>) {
    let (oh, ow) = (out_len(h, k.0, s.0, p.0, d.0).unwrap(), out_len(w, k.1, s.1, p.1, d.1).unwrap());
    let rows = c * k.0 * k.1;
    let l = oh * ow;
    let mut out = vec![0.0; n * rows * l];
    for ni in 0..n {
        for ci in 0..c {
            for i in 0..k.0 {
                for j in 0..k.1 {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let iy = (oy * s.0 + i * d.0) as isize - p.0 as isize;
                            let ix = (ox * s.1 + j * d.1) as isize - p.1 as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                let r = (ci * k.0 + i) * k.1 + j;
                                out[(ni * rows + r) * l + oy * ow + ox] = x[((ni * c + ci) * h + iy as usize) * w + ix as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    (out, vec![n, rows, l])
}

#[allow(clippy::too_many_arguments)]
fn conv2d_ref(
    x: &[f64],
    [n, c, h, w]: [usize; 4],
    wt: &[f64],
    [m, cg, kh, kw]: [usize; 4],
    b: Option<&[f64]>,
    s: P,
    p: P,
    d: P,
    groups: usize,
) -> Vec<f64> {
    let (oh, ow) = (out_len(h, kh, s.0, p.0, d.0).unwrap(), out_len(w, kw, s.1, p.1, d.1).unwrap());
    let mg = m / groups;
    let mut out = vec![0.0; n * m * oh * ow];
    for ni in 0..n {
        for co in 0..m {
            let g = co / mg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b[co]);
                    for ci in 0..cg {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (oy * s.0 + i * d.0) as isize - p.0 as isize;
                                let ix = (ox * s.1 + j * d.1) as isize - p.1 as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    acc += x[((ni * c + g * cg + ci) * h + iy as usize) * w + ix as usize]
                                        * wt[((co * cg + ci) * kh + i) * kw + j];
                                }
                            }
                        }
                    }
                    out[((ni * m + co) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    let _ = c;
    out
}

/// The scatter definition of a transposed convolution.
#[allow(clippy::too_many_arguments)]
fn conv_transpose2d_ref(
    x: &[f64],
    [n, c, h, w]: [usize; 4],
    wt: &[f64],
    [_, og, kh, kw]: [usize; 4],
    b: Option<&[f64]>,
    s: P,
    p: P,
    op: P,
    d: P,
    groups: usize,
) -> (Vec<f64>, [usize; 4]) {
    let ho = ((h - 1) * s.0 + d.0 * (kh - 1) + op.0 + 1) as isize - 2 * p.0 as isize;
    let wo = ((w - 1) * s.1 + d.1 * (kw - 1) + op.1 + 1) as isize - 2 * p.1 as isize;
    let (ho, wo) = (ho as usize, wo as usize);
    let m = og * groups;
    let cg = c / groups;
    let mut out = vec![0.0; n * m * ho * wo];
    for ni in 0..n {
        for co in 0..m {
            for v in &mut out[(ni * m + co) * ho * wo..(ni * m + co + 1) * ho * wo] {
                *v = b.map_or(0.0, |b| b[co]);
            }
        }
        for ci in 0..c {
            let g = ci / cg;
            for iy in 0..h {
                for ix in 0..w {
                    let xv = x[((ni * c + ci) * h + iy) * w + ix];
                    for col in 0..og {
                        for i in 0..kh {
                            for j in 0..kw {
                                let oy = (iy * s.0 + i * d.0) as isize - p.0 as isize;
                                let ox = (ix * s.1 + j * d.1) as isize - p.1 as isize;
                                if oy >= 0 && ox >= 0 && (oy as usize) < ho && (ox as usize) < wo {
                                    let co = g * og + col;
                                    out[((ni * m + co) * ho + oy as usize) * wo + ox as usize] +=
                                        xv * wt[((ci * og + col) * kh + i) * kw + j];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (out, [n, m, ho, wo])
}

// ---- unfold / fold ----------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn unfold_matches_reference_and_fold_is_its_adjoint(
        (n, c, h, w) in (1usize..3, 1usize..4, 1usize..7, 1usize..7),
        (k, s, p, d) in window_params(),
        variant in 0u8..4,
        seed in any::<u64>(),
    ) {
        let x = rand(seed, &[n, c, h, w]);
        let xv = relayout(&x, variant);
        let fits = out_len(h, k.0, s.0, p.0, d.0).is_some() && out_len(w, k.1, s.1, p.1, d.1).is_some();
        let got = xv.unfold(k, s, p, d);
        if !fits {
            let msg = got.unwrap_err().to_string();
            prop_assert!(msg.contains("unfold") && msg.contains(&format!("{:?}", [n, c, h, w])), "{msg}");
            return Ok(());
        }
        let got = got.unwrap();
        let (want, shape) = unfold_ref(&vals(&x), [n, c, h, w], k, s, p, d);
        prop_assert_eq!(got.shape(), &shape[..]);
        assert_close(&vals(&got), &want, 1e-12, "unfold");

        // <unfold(x), y> == <x, fold(y)>
        let y = relayout(&rand(seed ^ 1, &shape), (variant + 1) % 4);
        let folded = y.fold((h, w), k, s, p, d).unwrap();
        prop_assert_eq!(folded.shape(), &[n, c, h, w][..]);
        assert_adjoint(dot(&got, &y), dot(&x, &folded), "unfold/fold");

        // Unbatched forms agree with the batched ones.
        let x0 = x.select(0, 0).unwrap();
        let u0 = x0.unfold(k, s, p, d).unwrap();
        assert_close(&vals(&u0), &vals(&got.select(0, 0).unwrap()), 0.0, "unbatched unfold");
        let f0 = y.select(0, 0).unwrap().fold((h, w), k, s, p, d).unwrap();
        assert_close(&vals(&f0), &vals(&folded.select(0, 0).unwrap()), 0.0, "unbatched fold");
    }
}

#[test]
fn fold_sums_overlaps() {
    // A 1-channel 3x3 image of ones, 2x2 windows at stride 1: fold(unfold(x)) counts how many
    // windows cover each pixel.
    let x = Tensor::ones(&[1, 1, 3, 3], DType::F64).unwrap();
    let cols = x.unfold((2, 2), (1, 1), (0, 0), (1, 1)).unwrap();
    assert_eq!(cols.shape(), &[1, 4, 4]);
    let back = cols.fold((3, 3), (2, 2), (1, 1), (0, 0), (1, 1)).unwrap();
    assert_eq!(vals(&back), vec![1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
}

#[test]
fn unfold_fold_errors_name_the_op_and_shapes() {
    let x = Tensor::zeros(&[1, 2, 3, 3], DType::F64).unwrap();
    let e = x.unfold((4, 1), (1, 1), (0, 0), (1, 1)).unwrap_err().to_string();
    assert!(e.contains("unfold") && e.contains("[1, 2, 3, 3]") && e.contains("height"), "{e}");
    let e = x.unfold((1, 1), (0, 1), (0, 0), (1, 1)).unwrap_err().to_string();
    assert!(e.contains("stride must be positive"), "{e}");
    let e = Tensor::zeros(&[3, 3], DType::F64).unwrap().unfold((1, 1), (1, 1), (0, 0), (1, 1)).unwrap_err().to_string();
    assert!(e.contains("unfold") && e.contains("rank 2"), "{e}");
    let cols = Tensor::zeros(&[1, 8, 4], DType::F64).unwrap();
    let e = cols.fold((3, 3), (3, 1), (1, 1), (0, 0), (1, 1)).unwrap_err().to_string();
    assert!(e.contains("fold") && e.contains("[1, 8, 4]") && e.contains("multiple"), "{e}");
    let e = cols.fold((4, 4), (2, 2), (1, 1), (0, 0), (1, 1)).unwrap_err().to_string();
    assert!(e.contains("fold") && e.contains("4 blocks") && e.contains("9"), "{e}");
    let e = Tensor::zeros(&[1, 1, 2, 2], DType::I64).unwrap().unfold((1, 1), (1, 1), (0, 0), (1, 1)).unwrap_err().to_string();
    assert!(e.contains("unfold") && e.contains("I64"), "{e}");
    let e = x.unfold((1, 1), (1, 1), (usize::MAX, 0), (1, 1)).unwrap_err().to_string();
    assert!(e.contains("overflows"), "{e}");
}

// ---- conv2d -----------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn conv2d_matches_reference_and_backward_kernels_are_adjoints(
        (n, cg, og, groups) in (1usize..3, 1usize..3, 1usize..3, 1usize..3),
        (h, w) in (1usize..7, 1usize..7),
        (k, s, p, d) in window_params(),
        (variant, with_bias) in (0u8..4, any::<bool>()),
        seed in any::<u64>(),
    ) {
        let (c, m) = (cg * groups, og * groups);
        let x = rand(seed, &[n, c, h, w]);
        let wt = rand(seed ^ 2, &[m, cg, k.0, k.1]);
        let b = rand(seed ^ 3, &[m]);
        let (xv, wv) = (relayout(&x, variant), relayout(&wt, (variant + 2) % 4));
        let bias = with_bias.then_some(&b);
        let got = xv.conv2d(&wv, bias, s, p, d, groups);
        let fits = out_len(h, k.0, s.0, p.0, d.0).is_some() && out_len(w, k.1, s.1, p.1, d.1).is_some();
        if !fits {
            let msg = got.unwrap_err().to_string();
            prop_assert!(msg.contains("conv2d") && msg.contains(&format!("{:?}", [n, c, h, w])), "{msg}");
            return Ok(());
        }
        let got = got.unwrap();
        let bv = vals(&b);
        let want = conv2d_ref(&vals(&x), [n, c, h, w], &vals(&wt), [m, cg, k.0, k.1], with_bias.then_some(&bv[..]), s, p, d, groups);
        assert_close(&vals(&got), &want, 1e-10, "conv2d");

        let gy = relayout(&rand(seed ^ 4, got.shape()), variant);
        let lin = xv.conv2d(&wv, None, s, p, d, groups).unwrap();
        let dx = gy.conv2d_backward_input(&wv, &[n, c, h, w], s, p, d, groups).unwrap();
        assert_adjoint(dot(&lin, &gy), dot(&x, &dx), "conv2d input");
        let dw = gy.conv2d_backward_weight(&xv, &[m, cg, k.0, k.1], s, p, d, groups).unwrap();
        assert_adjoint(dot(&lin, &gy), dot(&wt, &dw), "conv2d weight");
        let db = gy.conv2d_backward_bias().unwrap();
        let with_b = xv.conv2d(&wv, Some(&b), s, p, d, groups).unwrap().sub(&lin).unwrap();
        assert_adjoint(dot(&with_b, &gy), dot(&b, &db), "conv2d bias");
    }
}

#[test]
fn conv2d_1x1_fast_path_and_parallel_batch_match_reference() {
    // 1x1, stride 1, unpadded (direct GEMM, no im2col), grouped, large enough to run the
    // batch in parallel; then 3x3 cases on the parallel im2col path; batches of 11 and 20
    // put several samples in each weight-gradient chunk.
    let cases = [
        (6usize, 8usize, 12usize, 9usize, 11usize, 1usize, 0usize, 2usize),
        (5, 6, 8, 12, 10, 3, 1, 1),
        (3, 4, 4, 10, 10, 3, 1, 4),
        (11, 3, 4, 5, 6, 3, 1, 1),
        (20, 2, 2, 3, 3, 1, 0, 1),
    ];
    for &(n, c, m, h, w, k, p, groups) in &cases {
        let x = rand(11, &[n, c, h, w]);
        let wt = rand(12, &[m, c / groups, k, k]);
        let b = rand(13, &[m]);
        let got = x.conv2d(&wt, Some(&b), (1, 1), (p, p), (1, 1), groups).unwrap();
        let want = conv2d_ref(&vals(&x), [n, c, h, w], &vals(&wt), [m, c / groups, k, k], Some(&vals(&b)), (1, 1), (p, p), (1, 1), groups);
        assert_close(&vals(&got), &want, 1e-10, "conv2d");
        let gy = rand(14, got.shape());
        let lin = x.conv2d(&wt, None, (1, 1), (p, p), (1, 1), groups).unwrap();
        let dx = gy.conv2d_backward_input(&wt, x.shape(), (1, 1), (p, p), (1, 1), groups).unwrap();
        let dw = gy.conv2d_backward_weight(&x, wt.shape(), (1, 1), (p, p), (1, 1), groups).unwrap();
        assert_adjoint(dot(&lin, &gy), dot(&x, &dx), "input");
        assert_adjoint(dot(&lin, &gy), dot(&wt, &dw), "weight");
    }
}

#[test]
fn conv2d_f32_matches_f64() {
    let x = rand(21, &[2, 4, 7, 6]);
    let wt = rand(22, &[6, 2, 3, 2]);
    let b = rand(23, &[6]);
    let args = ((2, 1), (1, 1), (1, 2), 2);
    let want = x.conv2d(&wt, Some(&b), args.0, args.1, args.2, args.3).unwrap();
    let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let got = f(&x).conv2d(&f(&wt), Some(&f(&b)), args.0, args.1, args.2, args.3).unwrap();
    assert_eq!(got.dtype(), DType::F32);
    assert_close(&vals(&got), &vals(&want), 1e-5, "f32 conv2d");
    let gy = rand(24, want.shape());
    let dw64 = gy.conv2d_backward_weight(&x, wt.shape(), args.0, args.1, args.2, args.3).unwrap();
    let dw32 = f(&gy).conv2d_backward_weight(&f(&x), wt.shape(), args.0, args.1, args.2, args.3).unwrap();
    assert_close(&vals(&dw32), &vals(&dw64), 1e-4, "f32 weight grad");
    let dx64 = gy.conv2d_backward_input(&wt, x.shape(), args.0, args.1, args.2, args.3).unwrap();
    let dx32 = f(&gy).conv2d_backward_input(&f(&wt), x.shape(), args.0, args.1, args.2, args.3).unwrap();
    assert_close(&vals(&dx32), &vals(&dx64), 1e-4, "f32 input grad");
}

#[test]
fn conv2d_weight_grad_is_deterministic_across_thread_counts() {
    let x = rand(31, &[16, 4, 10, 10]).to_dtype(DType::F32).unwrap();
    let gy = rand(32, &[16, 8, 10, 10]).to_dtype(DType::F32).unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| gy.conv2d_backward_weight(&x, &[8, 4, 3, 3], (1, 1), (1, 1), (1, 1), 1).unwrap().to_vec::<f32>().unwrap())
    };
    let one = run(1);
    for threads in [2, 3, 5] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}

#[test]
fn conv2d_errors_name_the_op_and_shapes() {
    let x = Tensor::zeros(&[2, 3, 5, 5], DType::F64).unwrap();
    let w = Tensor::zeros(&[4, 2, 3, 3], DType::F64).unwrap();
    let e = x.conv2d(&w, None, (1, 1), (0, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv2d") && e.contains("[2, 3, 5, 5]") && e.contains("[4, 2, 3, 3]") && e.contains("3 channels"), "{e}");
    let e = x.conv2d(&w, None, (1, 1), (0, 0), (1, 1), 2).unwrap_err().to_string();
    assert!(e.contains("groups 2 must divide"), "{e}");
    let e = x.conv2d(&w, None, (1, 1), (0, 0), (1, 1), 0).unwrap_err().to_string();
    assert!(e.contains("groups must be positive"), "{e}");
    let w3 = Tensor::zeros(&[4, 3, 6, 3], DType::F64).unwrap();
    let e = x.conv2d(&w3, None, (1, 1), (0, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv2d") && e.contains("height") && e.contains("padded input 5"), "{e}");
    let ok_w = Tensor::zeros(&[4, 3, 3, 3], DType::F64).unwrap();
    let e = x.conv2d(&ok_w, Some(&Tensor::zeros(&[3], DType::F64).unwrap()), (1, 1), (0, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv2d") && e.contains("bias") && e.contains("[3]"), "{e}");
    let e = x.conv2d(&ok_w.to_dtype(DType::F32).unwrap(), None, (1, 1), (0, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv2d") && e.contains("F32"), "{e}");
    let e = x.reshape(&[6, 5, 5]).unwrap().conv2d(&ok_w, None, (1, 1), (0, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv2d") && e.contains("rank 3"), "{e}");
    let e = x.conv2d(&ok_w, None, (1, 1), (0, 0), (0, 1), 1).unwrap_err().to_string();
    assert!(e.contains("dilation must be positive"), "{e}");
    let gy = Tensor::zeros(&[2, 4, 2, 3], DType::F64).unwrap();
    let e = gy.conv2d_backward_input(&ok_w, x.shape(), (1, 1), (0, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv2d_backward_input") && e.contains("[2, 4, 2, 3]") && e.contains("[2, 4, 3, 3]"), "{e}");
    let e = gy.conv2d_backward_weight(&x, &[4, 3, 3, 3], (1, 1), (0, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv2d_backward_weight") && e.contains("[2, 4, 2, 3]"), "{e}");
    let e = x.conv2d_backward_bias().map(|_| ()).and(Tensor::zeros(&[2, 2], DType::F64).unwrap().conv2d_backward_bias().map(|_| ()));
    assert!(e.unwrap_err().to_string().contains("conv2d_backward_bias"));
}

#[test]
fn huge_user_shapes_are_errors_not_panics() {
    // An empty weight cannot vouch for the input shape a backward kernel is handed.
    let w = Tensor::zeros(&[0, 1 << 40, 1, 1], DType::F64).unwrap();
    let gy = Tensor::zeros(&[1 << 30, 0, 1, 1], DType::F64).unwrap();
    let e = gy.conv2d_backward_input(&w, &[1 << 30, 1 << 40, 1, 1], (1, 1), (0, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv2d_backward_input") && e.contains("overflows"), "{e}");
    let g = Tensor::zeros(&[1, 1, 1, 1], DType::F64).unwrap();
    let idx = Tensor::zeros(&[1, 1, 1, 1], DType::I64).unwrap();
    let e = g.max_pool2d_backward(&idx, &[1, 1, 1 << 40, 1 << 40]).unwrap_err().to_string();
    assert!(e.contains("max_pool2d_backward") && e.contains("overflows"), "{e}");
    let x = Tensor::zeros(&[1, 1, 2, 2], DType::F64).unwrap();
    let e =
        x.conv2d(&Tensor::zeros(&[1, 1, 1, 1], DType::F64).unwrap(), None, (1, 1), (usize::MAX / 2, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv2d") && e.contains("overflows"), "{e}");
    let e =
        x.conv2d(&Tensor::zeros(&[1, 1, 1, 1], DType::F64).unwrap(), None, (1, 1), (1 << 40, 1 << 40), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv2d") && e.contains("overflows"), "{e}");
    let e = x
        .conv_transpose2d(&Tensor::zeros(&[1, 1, 1, 1], DType::F64).unwrap(), None, (usize::MAX, 1), (0, 0), (0, 0), (1, 1), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv_transpose2d") && e.contains("overflows"), "{e}");
}

#[test]
fn conv2d_edge_sizes() {
    // An empty batch, zero output channels, a 1x1 image with padding.
    let w = rand(41, &[3, 2, 3, 3]);
    let y = Tensor::zeros(&[0, 2, 4, 4], DType::F64).unwrap().conv2d(&w, None, (1, 1), (1, 1), (1, 1), 1).unwrap();
    assert_eq!(y.shape(), &[0, 3, 4, 4]);
    let dw = Tensor::zeros(&[0, 3, 4, 4], DType::F64)
        .unwrap()
        .conv2d_backward_weight(&Tensor::zeros(&[0, 2, 4, 4], DType::F64).unwrap(), &[3, 2, 3, 3], (1, 1), (1, 1), (1, 1), 1)
        .unwrap();
    assert_eq!(vals(&dw), vec![0.0; 54]);
    let y = rand(42, &[1, 2, 4, 4]).conv2d(&Tensor::zeros(&[0, 2, 3, 3], DType::F64).unwrap(), None, (1, 1), (1, 1), (1, 1), 1).unwrap();
    assert_eq!(y.shape(), &[1, 0, 4, 4]);
    let x = rand(43, &[1, 2, 1, 1]);
    let y = x.conv2d(&w, None, (1, 1), (1, 1), (1, 1), 1).unwrap();
    let want = conv2d_ref(&vals(&x), [1, 2, 1, 1], &vals(&w), [3, 2, 3, 3], None, (1, 1), (1, 1), (1, 1), 1);
    assert_close(&vals(&y), &want, 1e-12, "1x1 image");
}

// ---- conv_transpose2d -------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv_transpose2d_matches_reference_and_backward_kernels_are_adjoints(
        (n, cg, og, groups) in (1usize..3, 1usize..3, 1usize..3, 1usize..3),
        (h, w) in (1usize..5, 1usize..5),
        (k, s, p, d) in window_params(),
        (oph, opw) in (0usize..2, 0usize..2),
        (variant, with_bias) in (0u8..4, any::<bool>()),
        seed in any::<u64>(),
    ) {
        let (c, m) = (cg * groups, og * groups);
        let x = rand(seed, &[n, c, h, w]);
        let wt = rand(seed ^ 2, &[c, og, k.0, k.1]);
        let b = rand(seed ^ 3, &[m]);
        let (xv, wv) = (relayout(&x, variant), relayout(&wt, (variant + 1) % 4));
        let bias = with_bias.then_some(&b);
        let op = (oph, opw);
        let got = xv.conv_transpose2d(&wv, bias, s, p, op, d, groups);
        let valid_op = (oph < s.0 || oph < d.0) && (opw < s.1 || opw < d.1);
        let ho = ((h - 1) * s.0 + d.0 * (k.0 - 1) + oph + 1) as isize - 2 * p.0 as isize;
        let wo = ((w - 1) * s.1 + d.1 * (k.1 - 1) + opw + 1) as isize - 2 * p.1 as isize;
        if !valid_op || ho <= 0 || wo <= 0 {
            let msg = got.unwrap_err().to_string();
            prop_assert!(msg.contains("conv_transpose2d") && msg.contains(&format!("{:?}", [n, c, h, w])), "{msg}");
            return Ok(());
        }
        let got = got.unwrap();
        let bv = vals(&b);
        let (want, shape) = conv_transpose2d_ref(&vals(&x), [n, c, h, w], &vals(&wt), [c, og, k.0, k.1], with_bias.then_some(&bv[..]), s, p, op, d, groups);
        prop_assert_eq!(got.shape(), &shape[..]);
        assert_close(&vals(&got), &want, 1e-10, "conv_transpose2d");

        let gy = relayout(&rand(seed ^ 4, &shape), variant);
        let lin = xv.conv_transpose2d(&wv, None, s, p, op, d, groups).unwrap();
        let dx = gy.conv_transpose2d_backward_input(&wv, &[n, c, h, w], s, p, d, groups).unwrap();
        assert_adjoint(dot(&lin, &gy), dot(&x, &dx), "conv_transpose2d input");
        let dw = gy.conv_transpose2d_backward_weight(&xv, &[c, og, k.0, k.1], s, p, d, groups).unwrap();
        assert_adjoint(dot(&lin, &gy), dot(&wt, &dw), "conv_transpose2d weight");
        let db = gy.conv2d_backward_bias().unwrap();
        let with_b = xv.conv_transpose2d(&wv, Some(&b), s, p, op, d, groups).unwrap().sub(&lin).unwrap();
        assert_adjoint(dot(&with_b, &gy), dot(&b, &db), "conv_transpose2d bias");
    }
}

#[test]
fn conv_transpose2d_is_conv2d_input_gradient() {
    let x = rand(51, &[2, 6, 4, 5]);
    let w = rand(52, &[6, 2, 3, 3]);
    let (s, p, d, g) = ((2, 2), (1, 1), (1, 1), 3);
    let y = x.conv_transpose2d(&w, None, s, p, (1, 0), d, g).unwrap();
    assert_eq!(y.shape(), &[2, 6, 8, 9]);
    let via_conv = x.conv2d_backward_input(&w, &[2, 6, 8, 9], s, p, d, g).unwrap();
    assert_close(&vals(&y), &vals(&via_conv), 1e-12, "transpose = conv2d input grad");
}

#[test]
fn conv_transpose2d_errors_name_the_op_and_shapes() {
    let x = Tensor::zeros(&[1, 4, 3, 3], DType::F64).unwrap();
    let w = Tensor::zeros(&[4, 2, 3, 3], DType::F64).unwrap();
    let e = x.conv_transpose2d(&w, None, (1, 1), (0, 0), (1, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv_transpose2d") && e.contains("output padding 1") && e.contains("[1, 4, 3, 3]"), "{e}");
    let e = x
        .conv_transpose2d(&Tensor::zeros(&[3, 2, 3, 3], DType::F64).unwrap(), None, (1, 1), (0, 0), (0, 0), (1, 1), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv_transpose2d") && e.contains("[3, 2, 3, 3]"), "{e}");
    let e = x.conv_transpose2d(&w, None, (1, 1), (0, 0), (0, 0), (1, 1), 3).unwrap_err().to_string();
    assert!(e.contains("groups 3"), "{e}");
    let e = x.conv_transpose2d(&w, None, (1, 1), (3, 0), (0, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    let gy = Tensor::zeros(&[1, 2, 9, 5], DType::F64).unwrap();
    let e = gy.conv_transpose2d_backward_input(&w, x.shape(), (1, 1), (0, 0), (1, 1), 1).unwrap_err().to_string();
    assert!(e.contains("conv_transpose2d_backward_input") && e.contains("size 9"), "{e}");
}
// ---- GPU parity: every op above on GPU copies of the same (often strided) inputs ------------

/// The GEMM-based ops sum tens of products per output: a looser f32 bound than elementwise.
fn gemm_tol(dtype: DType) -> Option<f64> {
    (dtype == DType::F32).then_some(1e-3)
}

/// One conv2d case: `[n, cin, h, w]` input, `cout` filters of `k`, then stride, padding,
/// dilation, groups and whether there is a bias.
type ConvCase = ([usize; 4], usize, P, P, P, P, usize, bool);

const GPU_CONV_CASES: &[ConvCase] = &[
    ([2, 4, 7, 9], 6, (3, 3), (1, 1), (1, 1), (1, 1), 1, true),
    ([1, 6, 8, 5], 4, (3, 2), (2, 1), (1, 0), (1, 2), 2, false),
    ([3, 3, 5, 5], 3, (1, 1), (1, 1), (0, 0), (1, 1), 3, true), // depthwise 1×1: no im2col
    ([1, 2, 1, 1], 5, (1, 1), (1, 1), (0, 0), (1, 1), 1, true), // 1×1 image, batch 1
    ([2, 4, 6, 7], 4, (2, 2), (2, 3), (0, 1), (1, 1), 4, true),
    ([1, 3, 2, 3], 2, (3, 3), (1, 1), (2, 2), (2, 1), 1, false), // mostly padding
    ([0, 2, 4, 4], 3, (3, 3), (1, 1), (1, 1), (1, 1), 1, true),  // empty batch
    ([2, 0, 4, 4], 3, (3, 3), (1, 1), (1, 1), (1, 1), 1, true),  // no input channels
    ([4, 2, 32, 32], 3, (3, 3), (1, 1), (1, 1), (1, 1), 1, true), // weight gradient split over samples·pixels
];

#[test]
fn gpu_conv2d_and_its_input_and_weight_gradients_match_cpu() {
    for dtype in common::gpu::GPU_FLOATS {
        for (case, &(xs, cout, k, s, p, d, groups, has_bias)) in GPU_CONV_CASES.iter().enumerate() {
            let ws = [cout, xs[1] / groups, k.0, k.1];
            let ys = Tensor::zeros(&xs, dtype).unwrap().conv2d(&Tensor::zeros(&ws, dtype).unwrap(), None, s, p, d, groups).unwrap();
            let ys = ys.shape().to_vec();
            let inputs = common::gpu::operands(dtype, case as u64, &[&xs, &ws, &[cout], &ys]);
            let what = format!("conv2d {dtype:?} case {case} {:?}", GPU_CONV_CASES[case]);
            same_on_gpu_tol(&what, &inputs, gemm_tol(dtype), |t| {
                let (x, w, b, dy) = (&t[0], &t[1], &t[2], &t[3]);
                let y = x.conv2d(w, has_bias.then_some(b), s, p, d, groups)?;
                let dx = dy.conv2d_backward_input(w, x.shape(), s, p, d, groups)?;
                let dw = dy.conv2d_backward_weight(x, w.shape(), s, p, d, groups)?;
                Ok(vec![y, dx, dw])
            });
        }
    }
}

#[test]
fn gpu_conv2d_bias_gradient_matches_cpu() {
    for dtype in common::gpu::GPU_FLOATS {
        for (seed, shape) in [(1u64, [2usize, 5, 3, 4]), (2, [1, 3, 1, 1]), (3, [0, 2, 3, 3])] {
            same_on_gpu_tol(
                &format!("conv2d_backward_bias {dtype:?} {shape:?}"),
                &common::gpu::operands(dtype, seed, &[&shape]),
                None,
                |t| Ok(vec![t[0].conv2d_backward_bias()?]),
            );
        }
    }
}

/// One conv_transpose2d case: `[n, cin, h, w]` input, weight `[cin, cout/groups, k]`, then
/// stride, padding, output padding, dilation, groups and whether there is a bias.
type ConvTCase = ([usize; 4], usize, P, P, P, P, P, usize, bool);

const GPU_CONVT_CASES: &[ConvTCase] = &[
    ([2, 4, 5, 6], 3, (3, 3), (2, 2), (1, 1), (1, 0), (1, 1), 1, true),
    ([1, 6, 4, 3], 2, (2, 3), (1, 2), (0, 1), (0, 1), (2, 1), 3, false),
    ([3, 2, 3, 3], 5, (1, 1), (1, 1), (0, 0), (0, 0), (1, 1), 1, true), // 1×1: no col2im
    ([1, 1, 1, 1], 1, (3, 2), (3, 2), (0, 0), (2, 1), (1, 1), 1, true),
    ([2, 4, 3, 4], 2, (3, 3), (2, 1), (1, 1), (1, 0), (1, 2), 2, true),
];

#[test]
fn gpu_conv_transpose2d_and_its_gradients_match_cpu() {
    for dtype in common::gpu::GPU_FLOATS {
        for (case, &(xs, cout_g, k, s, p, op, d, groups, has_bias)) in GPU_CONVT_CASES.iter().enumerate() {
            let ws = [xs[1], cout_g, k.0, k.1];
            let cout = cout_g * groups;
            let y0 = Tensor::zeros(&xs, dtype).unwrap();
            let ys = y0.conv_transpose2d(&Tensor::zeros(&ws, dtype).unwrap(), None, s, p, op, d, groups).unwrap().shape().to_vec();
            let inputs = common::gpu::operands(dtype, 100 + case as u64, &[&xs, &ws, &[cout], &ys]);
            let what = format!("conv_transpose2d {dtype:?} case {case} {:?}", GPU_CONVT_CASES[case]);
            same_on_gpu_tol(&what, &inputs, gemm_tol(dtype), |t| {
                let (x, w, b, dy) = (&t[0], &t[1], &t[2], &t[3]);
                let y = x.conv_transpose2d(w, has_bias.then_some(b), s, p, op, d, groups)?;
                let dx = dy.conv_transpose2d_backward_input(w, x.shape(), s, p, d, groups)?;
                let dw = dy.conv_transpose2d_backward_weight(x, w.shape(), s, p, d, groups)?;
                Ok(vec![y, dx, dw])
            });
        }
    }
}

#[test]
fn gpu_unfold_and_fold_match_cpu() {
    // (input shape, kernel, stride, padding, dilation): batched and unbatched.
    let cases: &[(&[usize], P, P, P, P)] = &[
        (&[2, 3, 6, 7], (3, 2), (1, 2), (1, 0), (1, 1)),
        (&[1, 2, 5, 5], (2, 2), (2, 2), (1, 1), (2, 1)),
        (&[4, 5, 3], (2, 3), (1, 1), (0, 1), (1, 1)),
        (&[1, 1, 1, 1], (1, 1), (1, 1), (0, 0), (1, 1)),
    ];
    for dtype in common::gpu::GPU_FLOATS {
        for (case, &(xs, k, s, p, d)) in cases.iter().enumerate() {
            let hw = (xs[xs.len() - 2], xs[xs.len() - 1]);
            let cols = Tensor::zeros(xs, dtype).unwrap().unfold(k, s, p, d).unwrap().shape().to_vec();
            let inputs = common::gpu::operands(dtype, 200 + case as u64, &[xs, &cols]);
            same_on_gpu_tol(&format!("unfold/fold {dtype:?} {xs:?} {k:?} {s:?} {p:?} {d:?}"), &inputs, None, |t| {
                Ok(vec![t[0].unfold(k, s, p, d)?, t[1].fold(hw, k, s, p, d)?])
            });
        }
    }
}

// ---- bf16 on the bf16 GEMM -----------------------------------------------------------------

/// bf16 convolutions on the CPU's bf16 GEMM (AMX tiles or AVX-512 BF16 dot products, see
/// engine/src/cpu/conv_bf16.rs) against the f64 convolution of the same bf16 values: each
/// output is the f32 sum of exact products rounded once to bf16, so it is within half a bf16
/// ulp (2⁻⁹ relative) of the exact value plus the f32 summation's error, bounded by
/// `(K + 1)·ε_f32` times the sum of the terms' magnitudes (the same convolution of |values|).
/// Forward with a bias, both gradients; strides, padding, dilation and groups.
#[test]
fn bf16_convolutions_on_the_bf16_gemm_round_once() {
    if !tessera::engine::cpu::gemm::bf16_gemm_available() {
        println!("bf16_convolutions_on_the_bf16_gemm_round_once: skipping (no bf16 GEMM on this CPU): bf16 convolutions widen to f32 here");
        return;
    }
    let bf = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
    let wide = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    let abs = |t: &Tensor| Tensor::from_vec(vals(t).iter().map(|v| v.abs()).collect::<Vec<f64>>(), t.shape()).unwrap();
    let check = |got: &Tensor, exact: &Tensor, magnitude: &Tensor, terms: usize, what: &str| {
        assert_eq!(got.dtype(), DType::BF16, "{what}");
        assert_eq!(got.shape(), exact.shape(), "{what}");
        let eps = (terms + 1) as f64 * f32::EPSILON as f64;
        for (i, ((g, e), m)) in vals(got).iter().zip(vals(exact)).zip(vals(magnitude)).enumerate() {
            let tol = e.abs() / 256.0 + eps * m + 1e-30;
            assert!((g - e).abs() <= tol, "{what}: element {i}: {g} vs exact {e} ± {tol}");
        }
    };
    // (n, c, h, w, m, k, stride, padding, dilation, groups)
    // At least 64 channels in and out per group take the GEMM path (`MIN_CHANNELS`); the
    // narrower ones widen to f32, under the same bound.
    let cases = [
        (2, 64, 9, 8, 64, 3, 1, 1, 1, 1),
        (2, 128, 7, 7, 128, 3, 2, 1, 1, 2),
        (1, 64, 11, 6, 96, 1, 1, 0, 1, 1),
        (2, 80, 9, 9, 64, 3, 1, 2, 2, 1),
        (3, 16, 12, 12, 32, 3, 1, 1, 1, 1),
        (2, 8, 11, 10, 12, 3, 2, 1, 1, 2),
    ];
    for (seed, (n, c, h, w, m, k, s, p, d, groups)) in cases.into_iter().enumerate() {
        let seed = 900 + 10 * seed as u64;
        let (x, wt, b) = (bf(&rand(seed, &[n, c, h, w])), bf(&rand(seed + 1, &[m, c / groups, k, k])), bf(&rand(seed + 2, &[m])));
        let (s, p, d) = ((s, s), (p, p), (d, d));
        let what = format!("n={n} c={c} {h}x{w} m={m} k={k} s={s:?} p={p:?} d={d:?} groups={groups}");
        let y = x.conv2d(&wt, Some(&b), s, p, d, groups).unwrap();
        let exact = wide(&x).conv2d(&wide(&wt), Some(&wide(&b)), s, p, d, groups).unwrap();
        let magnitude = abs(&x).conv2d(&abs(&wt), Some(&abs(&b)), s, p, d, groups).unwrap();
        let reduction = c / groups * k * k;
        check(&y, &exact, &magnitude, reduction, &format!("forward {what}"));
        let dy = bf(&rand(seed + 3, y.shape()));
        let dx = dy.conv2d_backward_input(&wt, x.shape(), s, p, d, groups).unwrap();
        let exact = wide(&dy).conv2d_backward_input(&wide(&wt), x.shape(), s, p, d, groups).unwrap();
        let magnitude = abs(&dy).conv2d_backward_input(&abs(&wt), x.shape(), s, p, d, groups).unwrap();
        check(&dx, &exact, &magnitude, m * k * k, &format!("input gradient {what}"));
        let dw = dy.conv2d_backward_weight(&x, wt.shape(), s, p, d, groups).unwrap();
        let exact = wide(&dy).conv2d_backward_weight(&wide(&x), wt.shape(), s, p, d, groups).unwrap();
        let magnitude = abs(&dy).conv2d_backward_weight(&abs(&x), wt.shape(), s, p, d, groups).unwrap();
        check(&dw, &exact, &magnitude, n * y.shape()[2] * y.shape()[3], &format!("weight gradient {what}"));
    }
}
