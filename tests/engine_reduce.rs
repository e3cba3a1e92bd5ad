//! Reductions over axis sets against naive f64 references: sum, mean, var (biased and
//! unbiased), max, min, logsumexp, with and without keepdim; argmax/argmin (first index on
//! ties); `sum_to_shape`.

mod common;

use common::*;
use proptest::prelude::*;
use tessera::engine::{DType, ReduceOp, Tensor};

fn naive(op: ReduceOp, v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let sum: f64 = v.iter().sum();
    match op {
        ReduceOp::Sum => sum,
        ReduceOp::Mean => sum / n,
        ReduceOp::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ReduceOp::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
        ReduceOp::Var { unbiased } => v.iter().map(|x| (x - sum / n).powi(2)).sum::<f64>() / if unbiased { n - 1.0 } else { n },
        ReduceOp::LogSumExp => v.iter().map(|x| x.exp()).sum::<f64>().ln(),
    }
}

const OPS: [ReduceOp; 7] = [
    ReduceOp::Sum,
    ReduceOp::Mean,
    ReduceOp::Max,
    ReduceOp::Min,
    ReduceOp::Var { unbiased: false },
    ReduceOp::Var { unbiased: true },
    ReduceOp::LogSumExp,
];

/// Axes as the caller may pass them: some negative, in any order.
fn signed_axes(axes: &[usize], rank: usize, rng: &mut Rng64) -> Vec<isize> {
    let mut s: Vec<isize> = axes.iter().map(|&a| if rng.coin(0.5) { a as isize - rank as isize } else { a as isize }).collect();
    rng.shuffle(&mut s);
    s
}

/// Index of the first extreme element along `axis`, per output position.
fn naive_arg(a: &Arr, axis: usize, keepdim: bool, better: fn(f64, f64) -> bool) -> Arr {
    a.reduce(&[axis], keepdim, |v| {
        let mut best = 0;
        for i in 1..v.len() {
            if better(v[best], v[i]) {
                best = i;
            }
        }
        best as f64
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reductions_over_axis_sets(shape in shape(4, 4), seed: u64) {
        let mut rng = Rng64::new(seed);
        let axes = axis_subset(shape.len(), &mut rng);
        let signed = signed_axes(&axes, shape.len(), &mut rng);
        let reduced: usize = if axes.is_empty() { numel(&shape) } else { axes.iter().map(|&a| shape[a]).product() };
        for dtype in FLOATS {
            let o = operand(&shape, dtype, seed);
            let (rtol, atol) = if dtype == DType::F64 { (1e-10, 1e-10) } else { (1e-4, 1e-4) };
            for op in OPS {
                for keepdim in [false, true] {
                    let got = o.t.reduce(op, &signed, keepdim);
                    if reduced == 0 && op != ReduceOp::Sum {
                        let msg = err_msg(got);
                        prop_assert!(msg.contains(op.name()) && msg.contains("empty"), "{}", msg);
                        continue;
                    }
                    let got = got.unwrap();
                    prop_assert_eq!(got.dtype(), dtype);
                    let expected = o.a.reduce(&axes, keepdim, |v| naive(op, v));
                    assert_tensor(&format!("{op:?} over {signed:?} keepdim {keepdim} of {o:?}"), &got, &expected, rtol, atol);
                }
            }
            // The named methods are the same reductions.
            if reduced > 0 {
                let k = rng.coin(0.5);
                let cmp = |t: tessera::engine::Result<Tensor>, op| assert_tensor(&format!("{op:?}"), &t.unwrap(), &o.a.reduce(&axes, k, |v| naive(op, v)), rtol, atol);
                cmp(o.t.sum(&signed, k), ReduceOp::Sum);
                cmp(o.t.mean(&signed, k), ReduceOp::Mean);
                cmp(o.t.max(&signed, k), ReduceOp::Max);
                cmp(o.t.min(&signed, k), ReduceOp::Min);
                cmp(o.t.var(&signed, true, k), ReduceOp::Var { unbiased: true });
                cmp(o.t.var(&signed, false, k), ReduceOp::Var { unbiased: false });
                cmp(o.t.logsumexp(&signed, k), ReduceOp::LogSumExp);
                assert_tensor("sum_all", &o.t.sum_all().unwrap(), &o.a.reduce(&[], false, |v| v.iter().sum()), rtol, atol);
                if numel(&shape) > 0 {
                    assert_tensor("mean_all", &o.t.mean_all().unwrap(), &o.a.reduce(&[], false, |v| naive(ReduceOp::Mean, v)), rtol, atol);
                }
            }
        }
    }

    #[test]
    fn argmax_argmin_take_the_first_index_on_ties(shape in shape(4, 4), seed: u64) {
        prop_assume!(!shape.is_empty());
        let mut rng = Rng64::new(seed);
        let axis = rng.below(shape.len());
        let signed = if rng.coin(0.5) { axis as isize - shape.len() as isize } else { axis as isize };
        for dtype in [DType::F64, DType::F32, DType::I64, DType::U8] {
            // Three distinct values: ties everywhere.
            let o = operand_with(&shape, dtype, seed, |r| r.below(3) as f64);
            let a = if dtype == DType::U8 { o.a.map(|x| (x != 0.0) as u8 as f64) } else { o.a.clone() };
            for keepdim in [false, true] {
                let (mx, mn) = (o.t.argmax(signed, keepdim), o.t.argmin(signed, keepdim));
                if shape[axis] == 0 {
                    prop_assert!(err_msg(mx).contains("argmax"));
                    prop_assert!(err_msg(mn).contains("argmin"));
                    continue;
                }
                let (mx, mn) = (mx.unwrap(), mn.unwrap());
                prop_assert_eq!((mx.dtype(), mn.dtype()), (DType::I64, DType::I64));
                assert_exact(&format!("argmax axis {signed} {dtype:?} of {o:?}"), &mx, &naive_arg(&a, axis, keepdim, |best, x| x > best));
                assert_exact(&format!("argmin axis {signed} {dtype:?} of {o:?}"), &mn, &naive_arg(&a, axis, keepdim, |best, x| x < best));
            }
        }
    }

    #[test]
    fn sum_to_shape_inverts_broadcasting(shape in shape(4, 4), seed: u64) {
        let mut rng = Rng64::new(seed);
        let target = broadcast_from(&shape, &mut rng);
        for dtype in FLOATS {
            let o = operand(&shape, dtype, seed);
            let lead = shape.len() - target.len();
            let axes: Vec<usize> = (0..shape.len()).filter(|&d| d < lead || (target[d - lead] == 1 && shape[d] != 1)).collect();
            let expected = if axes.is_empty() { o.a.reshape(&target) } else { o.a.reduce(&axes, true, |v| v.iter().sum()).reshape(&target) };
            let (rtol, atol) = if dtype == DType::F64 { (1e-10, 1e-10) } else { (1e-4, 1e-4) };
            let got = o.t.sum_to_shape(&target).unwrap();
            assert_tensor(&format!("sum_to_shape {target:?} of {o:?}"), &got, &expected, rtol, atol);
        }
    }
}

#[test]
fn reduction_edge_cases() {
    let x =
        Tensor::from_vec(vec![1.0f64, f64::NEG_INFINITY, 3.0, f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY], &[2, 3]).unwrap();
    let lse = x.logsumexp(&[1], false).unwrap().to_vec::<f64>().unwrap();
    assert!((lse[0] - (1f64.exp() + 3f64.exp()).ln()).abs() < 1e-12);
    assert_eq!(lse[1], f64::NEG_INFINITY, "logsumexp of an all -inf row is -inf, not NaN");
    // Large inputs do not overflow.
    let big = Tensor::from_vec(vec![1e4f32, 1e4, 1e4 - 1.0, -1e4], &[4]).unwrap();
    let lse = big.logsumexp(&[0], false).unwrap().item().unwrap();
    let expected = 1e4 + (2.0 + (-1f64).exp()).ln();
    assert!((lse - expected).abs() < 1e-2, "{lse} vs {expected}");
    // NaN propagates through max/min.
    let nan = Tensor::from_vec(vec![1.0f64, f64::NAN, 0.5], &[3]).unwrap();
    assert!(nan.max(&[], false).unwrap().item().unwrap().is_nan());
    assert!(nan.min(&[], false).unwrap().item().unwrap().is_nan());
    // A single element: unbiased variance is 0/0, biased is 0.
    let one = Tensor::scalar(2.0f64);
    assert!(one.var(&[], true, false).unwrap().item().unwrap().is_nan());
    assert_eq!(one.var(&[], false, false).unwrap().item().unwrap(), 0.0);
    // Sums over empty axes are 0 and keep the other dims; keepdim keeps size-1 dims.
    let e = Tensor::zeros(&[2, 0, 3], DType::F32).unwrap();
    assert_eq!(e.sum(&[1], false).unwrap().to_vec::<f32>().unwrap(), [0.0; 6]);
    assert_eq!(e.sum(&[1], true).unwrap().shape(), &[2, 1, 3]);
    assert_eq!(e.sum(&[0, 2], true).unwrap().shape(), &[1, 0, 1]);
    assert_eq!(e.mean(&[0], false).unwrap().shape(), &[0, 3], "reducing a non-empty axis of an empty tensor is fine");
}

#[test]
fn reductions_of_large_tensors_match_naive() {
    // Above the parallel threshold, along each axis of a non-contiguous view.
    let (m, n) = (300, 257);
    let a = Arr::from_fn(&[m, n], |i| ((i[0] * 31 + i[1] * 17) % 97) as f64 / 97.0 - 0.5);
    let t = tensor(&a.permute(&[1, 0]), DType::F64).t().unwrap();
    for axes in [vec![0usize], vec![1], vec![]] {
        let signed: Vec<isize> = axes.iter().map(|&x| x as isize).collect();
        for op in OPS {
            let expected = a.reduce(&axes, false, |v| naive(op, v));
            assert_tensor(&format!("{op:?} {axes:?}"), &t.reduce(op, &signed, false).unwrap(), &expected, 1e-10, 1e-10);
        }
        if let [axis] = axes[..] {
            assert_exact("argmax", &t.argmax(axis as isize, false).unwrap(), &naive_arg(&a, axis, false, |b, x| x > b));
        }
    }
}

#[test]
fn sums_down_columns_equal_sums_of_the_transposed_rows_bit_for_bit() {
    // A sum whose reduced axes come before contiguous kept ones (a bias gradient, a mean over
    // tokens) runs down the columns in memory order; it must give exactly the bits of the
    // rows path, which reduces the transposed copy row by row. Sizes straddle the eight-lane
    // chunks (red mod 8) and the parallel threshold, with fewer outer indices than threads
    // (the eight lanes split between them) and more.
    for (outer, red, inner) in [(1, 5, 3), (1, 8, 2), (2, 13, 7), (3, 64, 300), (1, 777, 257), (4, 1001, 40), (1, 3, 70_000)] {
        let mut rng = Rng64::new((outer * 1_000_003 + red * 1_009 + inner) as u64);
        let data: Vec<f64> = (0..outer * red * inner).map(|_| rng.range(-1.0, 1.0)).collect();
        for dtype in [DType::F32, DType::F64] {
            let x = Tensor::from_vec(data.clone(), &[outer, red, inner]).unwrap().to_dtype(dtype).unwrap();
            let transposed = x.permute(&[0, 2, 1]).unwrap().contiguous().unwrap();
            for op in [ReduceOp::Sum, ReduceOp::Mean] {
                let by_columns = x.reduce(op, &[1], false).unwrap();
                let by_rows = transposed.reduce(op, &[2], false).unwrap();
                assert_eq!(by_columns.shape(), by_rows.shape());
                let (c, r) = (by_columns.to_vec_f64().unwrap(), by_rows.to_vec_f64().unwrap());
                let same = c.iter().zip(&r).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{op:?} {dtype:?} over [{outer}, {red}, {inner}]: the column sums differ from the row sums");
            }
        }
    }
    // Leading axes together ([a, b, c] over (0, 1)) and with keepdim.
    let x = Tensor::from_vec((0..6 * 5 * 33).map(|i| ((i * 37) % 101) as f32 / 7.0).collect::<Vec<f32>>(), &[6, 5, 33]).unwrap();
    let rows = x.reshape(&[30, 33]).unwrap().t().unwrap().contiguous().unwrap().sum(&[1], false).unwrap();
    let cols = x.sum(&[0, 1], true).unwrap();
    assert_eq!(cols.shape(), &[1, 1, 33]);
    assert_eq!(cols.to_vec::<f32>().unwrap(), rows.to_vec::<f32>().unwrap());
}

// ---- GPU parity: the same ops on CUDA tensors (skipped where there is no GPU) ---------------

/// Reductions of f32 lines this long get a looser tolerance: the GPU sums in another order.
fn reduce_tol(dtype: DType, reduced: usize) -> Option<f64> {
    (dtype == DType::F32 && reduced > 4096).then_some(1e-3)
}

#[test]
fn gpu_reductions_match_cpu() {
    // Rows (reduced axes last), columns (reduced axes leading), permuted copies (reduced
    // axes apart), size-0 and size-1 axes, a 0-d tensor, and lines long enough to be split
    // into segments (rows and columns both).
    let cases: &[(&[usize], &[isize])] = &[
        (&[37], &[]),
        (&[3, 4, 5], &[1]),
        (&[3, 4, 5], &[-1]),
        (&[3, 4, 5], &[0]),
        (&[3, 4, 5], &[0, 2]),
        (&[3, 4, 5], &[2, 0, 1]),
        (&[2, 1, 6, 3], &[1, 2]),
        (&[4, 1], &[1]),
        (&[1, 7, 1], &[0, 2]),
        (&[], &[]),
        (&[2, 0, 3], &[1]),
        (&[0, 3], &[1]),
        (&[3, 20000], &[1]),
        (&[20000, 3], &[0]),
        (&[70000], &[]),
        (&[300, 257], &[0]),
        (&[2, 600, 5], &[1]),
    ];
    for dtype in gpu::GPU_FLOATS {
        for (seed, &(shape, axes)) in cases.iter().enumerate() {
            let x = operand(shape, dtype, seed as u64 + 11).t;
            let normalized: Vec<usize> =
                axes.iter().map(|&a| if a < 0 { (a + shape.len() as isize) as usize } else { a as usize }).collect();
            let reduced: usize = if axes.is_empty() { numel(shape) } else { normalized.iter().map(|&a| shape[a]).product() };
            for op in OPS {
                if reduced == 0 && op != ReduceOp::Sum {
                    continue;
                }
                for keepdim in [false, true] {
                    let what = format!("{op:?} over {axes:?} keepdim {keepdim} of {dtype:?} {shape:?}");
                    gpu::same_on_gpu_tol(&what, std::slice::from_ref(&x), reduce_tol(dtype, reduced), |t| {
                        Ok(vec![t[0].reduce(op, axes, keepdim)?])
                    });
                }
            }
        }
    }
}

#[test]
fn gpu_reduction_edge_values_and_errors_match_cpu() {
    let x =
        Tensor::from_vec(vec![1.0f64, f64::NEG_INFINITY, 3.0, f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY], &[2, 3]).unwrap();
    let nan = Tensor::from_vec(vec![1.0f64, f64::NAN, 0.5, 2.0, -1.0, f64::INFINITY], &[2, 3]).unwrap();
    let big = Tensor::from_vec(vec![1e4f32, 1e4, 1e4 - 1.0, -1e4], &[4]).unwrap();
    for t in [x, nan, big.to_dtype(DType::F64).unwrap(), big] {
        gpu::same_on_gpu("edge values", &[t], |t| {
            let mut out = Vec::new();
            for op in OPS {
                out.push(t[0].reduce(op, &[-1], false)?);
                out.push(t[0].reduce(op, &[], true)?);
            }
            Ok(out)
        });
    }
    let Some(dev) = gpu::gpu() else { return };
    // Errors are the CPU's, word for word.
    let errors = |e: &Tensor, i: &Tensor| {
        vec![
            err_msg(e.mean(&[1], false)),
            err_msg(e.sum(&[3], false)),
            err_msg(e.argmax(1, false)),
            err_msg(i.sum(&[], false)),
            err_msg(e.extreme_mask(&[0, 0], true)),
        ]
    };
    let e = Tensor::zeros(&[2, 0, 3], DType::F32).unwrap();
    let i = Tensor::from_vec(vec![1i64, 2, 3], &[3]).unwrap();
    assert_eq!(errors(&e.to_device(dev).unwrap(), &i.to_device(dev).unwrap()), errors(&e, &i));
}

#[test]
fn gpu_argmax_argmin_and_extreme_masks_resolve_ties_like_cpu() {
    let shapes: &[&[usize]] = &[&[7], &[3, 4, 5], &[2, 1, 6], &[5, 1], &[4, 700], &[0, 3], &[3, 2, 0]];
    for dtype in [DType::F32, DType::F64, DType::I64, DType::U8] {
        for (seed, &shape) in shapes.iter().enumerate() {
            // Three distinct values: ties everywhere.
            let x = operand_with(shape, dtype, seed as u64 + 40, |r| r.below(3) as f64).t;
            for axis in 0..shape.len() {
                if shape[axis] == 0 {
                    continue;
                }
                for keepdim in [false, true] {
                    let what = format!("argmax/argmin axis {axis} keepdim {keepdim} of {dtype:?} {shape:?}");
                    gpu::same_on_gpu(&what, std::slice::from_ref(&x), |t| {
                        Ok(vec![t[0].argmax(axis as isize, keepdim)?, t[0].argmin(axis as isize, keepdim)?])
                    });
                }
            }
            if dtype.is_float() {
                let evens: Vec<isize> = (0..shape.len() as isize).filter(|a| a % 2 == 0).collect();
                for axes in [vec![], vec![0], vec![-1], evens] {
                    let what = format!("extreme_mask over {axes:?} of {dtype:?} {shape:?}");
                    gpu::same_on_gpu(&what, std::slice::from_ref(&x), |t| {
                        Ok(vec![t[0].extreme_mask(&axes, true)?, t[0].extreme_mask(&axes, false)?])
                    });
                }
            }
        }
    }
    // NaN: a NaN first element wins its row, later NaNs are passed over (the CPU's scan).
    let nan = Tensor::from_vec(vec![f64::NAN, 1.0, 3.0, 1.0, f64::NAN, 3.0, 2.0, 2.0, f64::NAN], &[3, 3]).unwrap();
    for t in [nan.clone(), nan.to_dtype(DType::F32).unwrap()] {
        gpu::same_on_gpu("argmax / extreme_mask with NaN", &[t], |t| {
            Ok(vec![t[0].argmax(1, false)?, t[0].argmin(1, false)?, t[0].extreme_mask(&[1], true)?, t[0].extreme_mask(&[0], false)?])
        });
    }
}

#[test]
fn gpu_sum_to_shape_matches_cpu() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[4, 5], &[5]),
        (&[4, 5], &[4, 1]),
        (&[2, 3, 4], &[3, 1]),
        (&[2, 1, 4], &[1, 4]),
        (&[2, 3, 4, 5], &[1, 3, 1, 1]),
        (&[3, 4], &[3, 4]),
        (&[3, 4], &[]),
        (&[512, 64], &[64]),
        (&[0, 4], &[4]),
    ];
    for dtype in gpu::GPU_FLOATS {
        for (seed, &(shape, target)) in cases.iter().enumerate() {
            let x = operand(shape, dtype, seed as u64 + 70).t;
            gpu::same_on_gpu(&format!("sum_to_shape {shape:?} -> {target:?} {dtype:?}"), &[x], |t| Ok(vec![t[0].sum_to_shape(target)?]));
        }
    }
}

#[test]
fn gpu_reductions_are_deterministic() {
    let Some(dev) = gpu::gpu() else { return };
    let x = operand(&[1 << 20], DType::F32, 5).t.to_device(dev).unwrap();
    let cols = operand(&[4096, 300], DType::F32, 6).t.to_device(dev).unwrap();
    let first = (x.sum_all().unwrap().to_vec::<f32>().unwrap(), cols.sum(&[0], false).unwrap().to_vec::<f32>().unwrap());
    for _ in 0..3 {
        let again = (x.sum_all().unwrap().to_vec::<f32>().unwrap(), cols.sum(&[0], false).unwrap().to_vec::<f32>().unwrap());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&again.0), bits(&first.0), "sum_all changed between runs");
        assert_eq!(bits(&again.1), bits(&first.1), "column sums changed between runs");
    }
}

// Batch norm and layer norm have no engine test file of their own (autograd tests cover
// their maths), so their GPU parity lives here with the other reductions.

#[test]
fn gpu_batch_norm_matches_cpu() {
    let shapes: &[&[usize]] = &[&[4, 3], &[2, 3, 5], &[2, 3, 4, 5], &[1, 2, 1], &[3, 0, 2], &[8, 2, 600]];
    for dtype in gpu::GPU_FLOATS {
        for (seed, &shape) in shapes.iter().enumerate() {
            let seed = seed as u64 * 10 + 100;
            let c = shape[1];
            let x = operand(shape, dtype, seed).t;
            let g = operand(shape, dtype, seed + 1).t;
            let w = operand_with(&[c], dtype, seed + 2, |r| r.range(0.5, 2.0)).t;
            let b = operand(&[c], dtype, seed + 3).t;
            for affine in [false, true] {
                let what = format!("batch norm {dtype:?} {shape:?} affine {affine}");
                gpu::same_on_gpu(&what, &[x.clone(), g.clone(), w.clone(), b.clone()], |t| {
                    let (w, b) = if affine { (Some(&t[2]), Some(&t[3])) } else { (None, None) };
                    let st = t[0].batch_norm_stats(1e-5)?;
                    let y = t[0].batch_norm_apply(&st.mean, &st.rstd, w, b)?;
                    let (dx, dw, db) = t[0].batch_norm_backward(&t[1], &st.mean, &st.rstd, w)?;
                    Ok(vec![st.mean, st.var, st.rstd, y, dx, dw, db])
                });
            }
        }
    }
}

#[test]
fn gpu_layer_norm_matches_cpu() {
    let shapes: &[&[usize]] = &[&[7], &[4, 3], &[2, 3, 5], &[3, 1], &[0, 4], &[5, 1000]];
    for dtype in gpu::GPU_FLOATS {
        for (seed, &shape) in shapes.iter().enumerate() {
            let seed = seed as u64 * 10 + 200;
            let d = *shape.last().unwrap();
            let x = operand(shape, dtype, seed).t;
            let g = operand(shape, dtype, seed + 1).t;
            let w = operand_with(&[d], dtype, seed + 2, |r| r.range(0.5, 2.0)).t;
            let b = operand(&[d], dtype, seed + 3).t;
            for affine in [false, true] {
                let what = format!("layer norm {dtype:?} {shape:?} affine {affine}");
                gpu::same_on_gpu(&what, &[x.clone(), g.clone(), w.clone(), b.clone()], |t| {
                    let (w, b) = if affine { (Some(&t[2]), Some(&t[3])) } else { (None, None) };
                    let (y, mean, rstd) = t[0].layer_norm(w, b, 1e-5)?;
                    let (dx, xhat) = t[0].layer_norm_backward(&t[1], &mean, &rstd, w)?;
                    Ok(vec![y, mean, rstd, dx, xhat])
                });
            }
        }
    }
}

// argsort / topk: their CPU tests are in engine_index.rs; the GPU sort kernels are this
// family's, so their parity lives here.

#[test]
fn gpu_argsort_and_topk_match_cpu() {
    // Rows short (shared memory), at the shared-memory limit (f64: 4096 pairs) and beyond
    // it (global scratch); sizes 0 and 1 along the sorted axis.
    let shapes: &[&[usize]] = &[&[7], &[3, 4, 5], &[2, 1, 6], &[0, 3], &[3, 0], &[2, 3000], &[2, 5000]];
    for dtype in [DType::F32, DType::F64, DType::I64, DType::U8] {
        for (seed, &shape) in shapes.iter().enumerate() {
            // Few distinct values: ties everywhere, which a stable order must keep in index order.
            let x = operand_with(shape, dtype, seed as u64 + 300, |r| r.below(5) as f64 - 2.0).t;
            for axis in 0..shape.len() {
                let n = shape[axis];
                for descending in [false, true] {
                    let what = format!("argsort axis {axis} descending {descending} of {dtype:?} {shape:?}");
                    gpu::same_on_gpu(&what, std::slice::from_ref(&x), |t| Ok(vec![t[0].argsort(axis as isize, descending)?]));
                    for k in [0, 1, n / 2, n].into_iter().filter(|&k| k <= n) {
                        let what = format!("topk {k} axis {axis} largest {descending} of {dtype:?} {shape:?}");
                        gpu::same_on_gpu(&what, std::slice::from_ref(&x), |t| {
                            let (v, i) = t[0].topk(k, axis as isize, descending)?;
                            Ok(vec![v, i])
                        });
                    }
                }
            }
        }
    }
    // NaN sorts above every number, in index order among NaNs.
    let nan = Tensor::from_vec(vec![2.0f32, f32::NAN, -1.0, f32::NAN, 2.0, f32::NEG_INFINITY], &[6]).unwrap();
    gpu::same_on_gpu("argsort / topk with NaN", &[nan], |t| {
        let (v, i) = t[0].topk(3, 0, true)?;
        let (v2, i2) = t[0].topk(3, 0, false)?;
        Ok(vec![t[0].argsort(0, false)?, t[0].argsort(0, true)?, v, i, v2, i2])
    });
}
