//! The layout ops that build or split tensors (cat, stack, split, chunk, pad, rot90, repeat)
//! against plain references over multi-indices (f64), plus dot-product (adjoint) checks of
//! their backward kernels (see tests/common/adjoint.rs), and the same ops on a GPU.

mod common;

use common::adjoint::{assert_adjoint, assert_close, dot, rand, ravel, relayout, shape_strategy, unravel, vals};
use common::{gpu, numel, operand};
use proptest::prelude::*;
use tessera::engine::{DType, PadMode, Tensor};

// ---- cat / stack / split / chunk --------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn cat_stack_split_chunk_round_trip(
        shape in shape_strategy(4),
        lens in prop::collection::vec(0usize..4, 1..4),
        axis_pick in any::<prop::sample::Index>(),
        (variant, seed) in (0u8..4, any::<u64>()),
    ) {
        let a = axis_pick.index(shape.len());
        let parts: Vec<Tensor> = lens.iter().enumerate().map(|(i, &l)| {
            let mut s = shape.clone();
            s[a] = l;
            relayout(&rand(seed ^ i as u64, &s), variant)
        }).collect();
        let refs: Vec<&Tensor> = parts.iter().collect();
        let cat = Tensor::cat(&refs, a as isize).unwrap();
        let total: usize = lens.iter().sum();
        let mut cshape = shape.clone();
        cshape[a] = total;
        prop_assert_eq!(cat.shape(), &cshape[..]);
        // Reference: each output element comes from the part whose range covers its index.
        let pv: Vec<Vec<f64>> = parts.iter().map(vals).collect();
        let want: Vec<f64> = (0..numel(&cshape)).map(|o| {
            let mut m = unravel(o, &cshape);
            let mut p = 0;
            while m[a] >= lens[p] {
                m[a] -= lens[p];
                p += 1;
            }
            pv[p][ravel(&m, parts[p].shape())]
        }).collect();
        assert_close(&vals(&cat), &want, 0.0, "cat");

        let pieces = cat.split(&lens, a as isize).unwrap();
        for (p, q) in pieces.iter().zip(&parts) {
            prop_assert!(p.shares_storage(&cat));
            assert_close(&vals(p), &vals(q), 0.0, "split");
        }
        let n = lens.len();
        let chunks = cat.chunk(n, a as isize).unwrap();
        let size = total.div_ceil(n).max(1);
        let back: Vec<&Tensor> = chunks.iter().collect();
        for (i, c) in chunks.iter().enumerate() {
            if i + 1 < chunks.len() {
                prop_assert_eq!(c.shape()[a], size);
            }
        }
        assert_close(&vals(&Tensor::cat(&back, a as isize).unwrap()), &vals(&cat), 0.0, "chunk");

        // stack(a) == cat of unsqueezed, for equal shapes.
        let same: Vec<Tensor> = (0..n).map(|i| relayout(&rand(seed ^ (i as u64 + 9), &shape), variant)).collect();
        let srefs: Vec<&Tensor> = same.iter().collect();
        let st = Tensor::stack(&srefs, a as isize).unwrap();
        let mut sshape = shape.clone();
        sshape.insert(a, n);
        prop_assert_eq!(st.shape(), &sshape[..]);
        for (i, t) in same.iter().enumerate() {
            assert_close(&vals(&st.select(a as isize, i).unwrap()), &vals(t), 0.0, "stack");
        }
        let last = Tensor::stack(&srefs, -1).unwrap();
        prop_assert_eq!(last.shape()[shape.len()], n);
    }
}

#[test]
fn cat_large_and_errors() {
    let a = rand(1, &[300, 70]);
    let b = rand(2, &[300, 50]).to_dtype(DType::F64).unwrap();
    let c = Tensor::cat(&[&a, &b.t().unwrap().contiguous().unwrap().t().unwrap()], 1).unwrap();
    assert_eq!(c.shape(), &[300, 120]);
    assert_eq!(vals(&c.narrow(1, 70, 50).unwrap()), vals(&b));
    let e = Tensor::cat(&[], 0).unwrap_err().to_string();
    assert!(e.contains("cat") && e.contains("at least one"), "{e}");
    let e = Tensor::cat(&[&a, &rand(3, &[299, 70])], 1).unwrap_err().to_string();
    assert!(e.contains("cat") && e.contains("[300, 70]") && e.contains("[299, 70]"), "{e}");
    let e = Tensor::cat(&[&a, &a.to_dtype(DType::F32).unwrap()], 0).unwrap_err().to_string();
    assert!(e.contains("cat") && e.contains("F32"), "{e}");
    let e = Tensor::cat(&[&a], 2).unwrap_err().to_string();
    assert!(e.contains("cat") && e.contains("axis 2"), "{e}");
    let e = Tensor::stack(&[&a, &b], 0).unwrap_err().to_string();
    assert!(e.contains("stack") && e.contains("[300, 50]"), "{e}");
    let e = Tensor::stack(&[&a], 3).unwrap_err().to_string();
    assert!(e.contains("stack") && e.contains("axis 3"), "{e}");
    let e = a.split(&[100, 100], 0).unwrap_err().to_string();
    assert!(e.contains("split") && e.contains("[100, 100]") && e.contains("300"), "{e}");
    let e = a.split(&[usize::MAX, 2], 0).unwrap_err().to_string();
    assert!(e.contains("split"), "{e}");
    let e = a.chunk(0, 0).unwrap_err().to_string();
    assert!(e.contains("chunk") && e.contains("positive"), "{e}");
    // PyTorch's chunk: 5 entries in 3 chunks -> 2, 2, 1; in 4 chunks -> 2, 2, 1 (three).
    let v = Tensor::arange(0.0, 5.0, 1.0, DType::F64).unwrap();
    let lens = |n| v.chunk(n, 0).unwrap().iter().map(|c| c.shape()[0]).collect::<Vec<_>>();
    assert_eq!(lens(3), vec![2, 2, 1]);
    assert_eq!(lens(4), vec![2, 2, 1]);
    assert_eq!(lens(9), vec![1; 5]);
}

// ---- pad --------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn pad_matches_reference_and_backward_is_adjoint(
        shape in shape_strategy(4),
        raw_pads in prop::collection::vec((0usize..3, 0usize..3), 0..4),
        (reflect, value) in (any::<bool>(), -2.0f64..2.0),
        (variant, seed) in (0u8..4, any::<u64>()),
    ) {
        let pads: Vec<(usize, usize)> = raw_pads.into_iter().take(shape.len()).collect();
        let lead = shape.len() - pads.len();
        let x = rand(seed, &shape);
        let mode = if reflect { PadMode::Reflect } else { PadMode::Constant(value) };
        let got = relayout(&x, variant).pad(&pads, mode);
        let full: Vec<(usize, usize)> = (0..shape.len()).map(|d| if d < lead { (0, 0) } else { pads[d - lead] }).collect();
        let bad = reflect && full.iter().zip(&shape).any(|(&(b, e), &n)| (b, e) != (0, 0) && (b >= n || e >= n));
        if bad {
            let msg = got.unwrap_err().to_string();
            prop_assert!(msg.contains("pad") && msg.contains(&format!("{shape:?}")), "{msg}");
            return Ok(());
        }
        let got = got.unwrap();
        let oshape: Vec<usize> = shape.iter().zip(&full).map(|(&n, &(b, e))| n + b + e).collect();
        prop_assert_eq!(got.shape(), &oshape[..]);
        let xv = vals(&x);
        let want: Vec<f64> = (0..numel(&oshape)).map(|o| {
            let m = unravel(o, &oshape);
            let mut src = vec![0; shape.len()];
            for d in 0..shape.len() {
                let i = m[d] as isize - full[d].0 as isize;
                let n = shape[d] as isize;
                let i = if reflect {
                    let i = i.abs();
                    if i >= n { 2 * (n - 1) - i } else { i }
                } else if i < 0 || i >= n {
                    return value;
                } else {
                    i
                };
                src[d] = i as usize;
            }
            xv[ravel(&src, &shape)]
        }).collect();
        assert_close(&vals(&got), &want, 0.0, "pad");

        // Adjoint (a constant pad is affine: use the zero constant).
        let lin_mode = if reflect { mode } else { PadMode::Constant(0.0) };
        let lin = x.pad(&pads, lin_mode).unwrap();
        let g = relayout(&rand(seed ^ 1, &oshape), variant);
        let dx = g.pad_backward(&pads, lin_mode).unwrap();
        prop_assert_eq!(dx.shape(), &shape[..]);
        assert_adjoint(dot(&lin, &g), dot(&x, &dx), "pad");
    }
}

#[test]
fn pad_examples_and_errors() {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[1, 3]).unwrap();
    assert_eq!(vals(&x.pad(&[(2, 1)], PadMode::Reflect).unwrap()), vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
    assert_eq!(vals(&x.pad(&[(1, 0), (0, 1)], PadMode::Constant(9.0)).unwrap()), vec![9.0, 9.0, 9.0, 9.0, 1.0, 2.0, 3.0, 9.0]);
    let i = Tensor::from_vec(vec![1i64, 2], &[2]).unwrap();
    assert_eq!(i.pad(&[(1, 1)], PadMode::Reflect).unwrap().to_vec::<i64>().unwrap(), vec![2, 1, 2, 1]);
    let e = x.pad(&[(3, 0)], PadMode::Reflect).unwrap_err().to_string();
    assert!(e.contains("pad") && e.contains("(3, 0)") && e.contains("[1, 3]"), "{e}");
    let e = x.pad(&[(0, 0), (0, 0), (0, 0)], PadMode::Reflect).unwrap_err().to_string();
    assert!(e.contains("pad") && e.contains("3 paddings"), "{e}");
    let e = x.pad(&[(usize::MAX, 1)], PadMode::Constant(0.0)).unwrap_err().to_string();
    assert!(e.contains("pad") && e.contains("overflows"), "{e}");
    let e = x.pad_backward(&[(2, 2)], PadMode::Constant(0.0)).unwrap_err().to_string();
    assert!(e.contains("pad_backward") && e.contains("[1, 3]"), "{e}");
    // Large enough for the parallel paths.
    let big = rand(5, &[8, 64, 70]);
    let p = big.pad(&[(2, 2), (3, 1)], PadMode::Reflect).unwrap();
    assert_eq!(p.shape(), &[8, 68, 74]);
    let g = rand(6, p.shape());
    assert_adjoint(dot(&p, &g), dot(&big, &g.pad_backward(&[(2, 2), (3, 1)], PadMode::Reflect).unwrap()), "big pad");
}

// ---- rot90 / repeat ---------------------------------------------------------------------

#[test]
fn rot90_matches_numpy() {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let r1 = x.rot90(1, (0, 1)).unwrap();
    assert_eq!(r1.shape(), &[3, 2]);
    assert!(r1.shares_storage(&x));
    assert_eq!(vals(&r1), vec![3.0, 6.0, 2.0, 5.0, 1.0, 4.0]);
    assert_eq!(vals(&x.rot90(2, (0, 1)).unwrap()), vec![6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
    assert_eq!(vals(&x.rot90(3, (0, 1)).unwrap()), vec![4.0, 1.0, 5.0, 2.0, 6.0, 3.0]);
    assert_eq!(vals(&x.rot90(-1, (0, 1)).unwrap()), vals(&x.rot90(3, (0, 1)).unwrap()));
    assert_eq!(vals(&x.rot90(1, (1, 0)).unwrap()), vals(&x.rot90(3, (0, 1)).unwrap()));
    assert_eq!(vals(&x.rot90(4, (0, 1)).unwrap()), vals(&x));
    let img = rand(1, &[2, 3, 4, 5]);
    let back = img.rot90(1, (-2, -1)).unwrap().rot90(-1, (-2, -1)).unwrap();
    assert_eq!(vals(&back), vals(&img));
    let e = x.rot90(1, (0, 0)).unwrap_err().to_string();
    assert!(e.contains("rot90") && e.contains("[2, 3]"), "{e}");
    let e = Tensor::zeros(&[3], DType::F64).unwrap().rot90(1, (0, 1)).unwrap_err().to_string();
    assert!(e.contains("rot90") && e.contains("[3]"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn repeat_matches_reference_and_backward_is_adjoint(
        shape in shape_strategy(3),
        reps in prop::collection::vec(1usize..4, 0..5),
        (variant, seed) in (0u8..4, any::<u64>()),
    ) {
        let x = rand(seed, &shape);
        let got = relayout(&x, variant).repeat(&reps);
        if reps.len() < shape.len() {
            let msg = got.unwrap_err().to_string();
            prop_assert!(msg.contains("repeat") && msg.contains(&format!("{shape:?}")), "{msg}");
            return Ok(());
        }
        let got = got.unwrap();
        let lead = reps.len() - shape.len();
        let padded: Vec<usize> = (0..reps.len()).map(|d| if d < lead { 1 } else { shape[d - lead] }).collect();
        let oshape: Vec<usize> = padded.iter().zip(&reps).map(|(s, r)| s * r).collect();
        prop_assert_eq!(got.shape(), &oshape[..]);
        let xv = vals(&x);
        let want: Vec<f64> = (0..numel(&oshape)).map(|o| {
            let m: Vec<usize> = unravel(o, &oshape).iter().zip(&padded).map(|(i, s)| i % s).collect();
            xv[ravel(&m, &padded)]
        }).collect();
        assert_close(&vals(&got), &want, 0.0, "repeat");
        let g = relayout(&rand(seed ^ 1, &oshape), variant);
        let dx = g.repeat_backward(&shape).unwrap();
        prop_assert_eq!(dx.shape(), &shape[..]);
        assert_adjoint(dot(&got, &g), dot(&x, &dx), "repeat");
    }
}

#[test]
fn repeat_errors_and_edges() {
    let x = Tensor::zeros(&[2, 3], DType::F64).unwrap();
    let e = x.repeat(&[2]).unwrap_err().to_string();
    assert!(e.contains("repeat") && e.contains("[2, 3]"), "{e}");
    let e = Tensor::zeros(&[4, 7], DType::F64).unwrap().repeat_backward(&[2, 3]).unwrap_err().to_string();
    assert!(e.contains("repeat_backward") && e.contains("[4, 7]") && e.contains("[2, 3]"), "{e}");
    assert_eq!(x.repeat(&[0, 2]).unwrap().shape(), &[0, 6]);
    assert_eq!(Tensor::scalar(3.0f64).repeat(&[2, 2]).unwrap().to_vec::<f64>().unwrap(), vec![3.0; 4]);
    let e = x.repeat(&[usize::MAX, 2]).unwrap_err().to_string();
    assert!(e.contains("repeat") && e.contains("overflows"), "{e}");
}

// ---- GPU parity -------------------------------------------------------------------------
// The same ops on GPU copies of the same (often strided) inputs; `gpu::same_on_gpu` skips
// where there is no GPU. Accumulations run in the CPU's order on the GPU, so floats agree
// to the bit, well within the dtype tolerance the helper applies.

const ALL_DTYPES: [DType; 6] = DType::ALL;
const FLOAT_DTYPES: [DType; 4] = gpu::GPU_FLOATS;

#[test]
fn gpu_cat_stack_split_match_cpu() {
    for dtype in ALL_DTYPES {
        let parts = [operand(&[2, 3, 4], dtype, 1).t, operand(&[2, 0, 4], dtype, 2).t, operand(&[2, 5, 4], dtype, 3).t];
        gpu::same_on_gpu(&format!("cat/stack/split {dtype:?}"), &parts, |t| {
            Ok(vec![
                Tensor::cat(&[&t[0], &t[1], &t[2]], 1)?,
                Tensor::cat(&[&t[2]], -1)?,
                Tensor::cat(&[&t[0], &t[0]], 0)?,
                Tensor::stack(&[&t[0], &t[0], &t[0]], 0)?,
                Tensor::stack(&[&t[0], &t[0]], -1)?,
                t[2].split(&[1, 4], 1)?[1].contiguous()?,
                t[2].chunk(2, 1)?[1].contiguous()?,
            ])
        });
    }
    let big = [operand(&[64, 300], DType::F32, 4).t, operand(&[64, 200], DType::F32, 5).t];
    gpu::same_on_gpu("cat large", &big, |t| Ok(vec![Tensor::cat(&[&t[0], &t[1]], 1)?]));
}

#[test]
fn gpu_pad_and_pad_backward_match_cpu() {
    let cases: [(&[(usize, usize)], PadMode); 5] = [
        (&[(1, 2), (0, 3)], PadMode::Constant(-1.5)),
        (&[(2, 1), (3, 2)], PadMode::Reflect),
        (&[(0, 0), (1, 1), (2, 3), (4, 0)], PadMode::Reflect),
        (&[(1, 1)], PadMode::Constant(0.0)),
        (&[], PadMode::Reflect),
    ];
    for (pads, mode) in cases {
        for dtype in ALL_DTYPES {
            let x = operand(&[2, 3, 4, 5], dtype, 1).t;
            gpu::same_on_gpu(&format!("pad {dtype:?} {pads:?} {mode:?}"), &[x], |t| Ok(vec![t[0].pad(pads, mode)?]));
        }
        for dtype in FLOAT_DTYPES {
            let padded = Tensor::zeros(&[2, 3, 4, 5], dtype).unwrap().pad(pads, mode).unwrap();
            let g = operand(padded.shape(), dtype, 2).t;
            gpu::same_on_gpu(&format!("pad_backward {dtype:?} {pads:?} {mode:?}"), &[g], |t| Ok(vec![t[0].pad_backward(pads, mode)?]));
        }
    }
    let edge = [Tensor::scalar(2.5f64), operand(&[0, 3], DType::F32, 3).t];
    gpu::same_on_gpu("pad 0-d and empty", &edge, |t| {
        Ok(vec![t[0].pad(&[], PadMode::Constant(1.0))?, t[1].pad(&[(1, 2)], PadMode::Constant(4.0))?])
    });
}

#[test]
fn gpu_rot90_and_repeat_match_cpu() {
    for dtype in ALL_DTYPES {
        let x = operand(&[2, 3, 4], dtype, 1).t;
        gpu::same_on_gpu(&format!("rot90 {dtype:?}"), std::slice::from_ref(&x), |t| {
            Ok(vec![t[0].rot90(1, (0, 1))?.contiguous()?, t[0].rot90(2, (1, 2))?, t[0].rot90(-1, (-1, 0))?.contiguous()?])
        });
        for reps in [&[2, 1, 3][..], &[1, 1, 1], &[0, 2, 1], &[3, 2, 2], &[2, 1, 2, 3]] {
            gpu::same_on_gpu(&format!("repeat {dtype:?} {reps:?}"), std::slice::from_ref(&x), |t| Ok(vec![t[0].repeat(reps)?]));
        }
    }
    gpu::same_on_gpu("repeat 0-d", &[Tensor::scalar(3i64)], |t| Ok(vec![t[0].repeat(&[2, 3])?]));
}

/// Separate from the forward checks: `repeat_backward` is built on `sum` (the reduce kernels).
#[test]
fn gpu_repeat_backward_matches_cpu() {
    for dtype in FLOAT_DTYPES {
        let g = operand(&[4, 3, 6], dtype, 1).t;
        gpu::same_on_gpu(&format!("repeat_backward {dtype:?}"), &[g], |t| {
            Ok(vec![t[0].repeat_backward(&[3, 2])?, t[0].repeat_backward(&[4, 1, 3])?])
        });
    }
    let empty = operand(&[2, 0, 6], DType::F32, 2).t;
    gpu::same_on_gpu("repeat_backward empty", &[empty], |t| Ok(vec![t[0].repeat_backward(&[0, 3])?]));
}
