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
