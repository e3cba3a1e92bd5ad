//! matmul against a naive triple loop: 1-D, 2-D, batched and broadcast-batch operands that
//! are transposed, sliced, flipped or expanded; empty and size-1 dims; sizes past
//! `matrixmultiply`'s blocking and the batch-parallel path.

mod common;

use common::*;
use proptest::prelude::*;
use tessera::engine::{DType, Tensor};

/// NumPy `matmul` of reference arrays, written plainly.
fn naive_matmul(a: &Arr, b: &Arr) -> Arr {
    let a2 = if a.shape.len() == 1 { a.reshape(&[1, a.shape[0]]) } else { a.clone() };
    let b2 = if b.shape.len() == 1 { b.reshape(&[b.shape[0], 1]) } else { b.clone() };
    let (ra, rb) = (a2.shape.len(), b2.shape.len());
    let (m, k, n) = (a2.shape[ra - 2], a2.shape[ra - 1], b2.shape[rb - 1]);
    assert_eq!(k, b2.shape[rb - 2]);
    let batch = broadcast_shape(&a2.shape[..ra - 2], &b2.shape[..rb - 2]).unwrap();
    let mut sa = batch.clone();
    sa.extend([m, k]);
    let mut sb = batch.clone();
    sb.extend([k, n]);
    let (ae, be) = (a2.expand(&sa), b2.expand(&sb));
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    let out = Arr::from_fn(&out_shape, |i| {
        let nb = i.len() - 2;
        (0..k)
            .map(|p| {
                let mut ia = i[..nb].to_vec();
                ia.extend([i[nb], p]);
                let mut ib = i[..nb].to_vec();
                ib.extend([p, i[nb + 1]]);
                ae.at(&ia) * be.at(&ib)
            })
            .sum()
    });
    let mut shape = out.shape.clone();
    if b.shape.len() == 1 {
        shape.pop();
    }
    if a.shape.len() == 1 {
        shape.remove(shape.len() - if b.shape.len() == 1 { 1 } else { 2 });
    }
    out.reshape(&shape)
}

/// An operand of logical `shape` that is stored transposed in its last two dims half the
/// time (the layout of `x.t()`), on top of the random recipe.
fn matrix_operand(shape: &[usize], dtype: DType, seed: u64) -> Operand {
    let r = shape.len();
    if r >= 2 && seed % 2 == 0 {
        let mut ts = shape.to_vec();
        ts.swap(r - 2, r - 1);
        let o = operand(&ts, dtype, seed);
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        Operand { t: o.t.t().unwrap(), a: o.a.permute(&perm), recipe: format!("t() of {}", o.recipe) }
    } else {
        operand(shape, dtype, seed)
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matmul_matches_naive(m in dim(5), k in dim(5), n in dim(5), batch in shape(3, 3), kinds in 0usize..9, seed: u64) {
        let mut rng = Rng64::new(seed);
        let (ba, bb) = (broadcast_from(&batch, &mut rng), broadcast_from(&batch, &mut rng));
        // kinds / 3 picks the lhs rank (1-D, 2-D, batched), kinds % 3 the rhs rank.
        let lhs: Vec<usize> = match kinds / 3 { 0 => vec![k], 1 => vec![m, k], _ => ba.iter().copied().chain([m, k]).collect() };
        let rhs: Vec<usize> = match kinds % 3 { 0 => vec![k], 1 => vec![k, n], _ => bb.iter().copied().chain([k, n]).collect() };
        for dtype in FLOATS {
            let a = matrix_operand(&lhs, dtype, seed ^ 1);
            let b = matrix_operand(&rhs, dtype, seed.wrapping_add(2));
            let got = a.t.matmul(&b.t).unwrap();
            let (rtol, atol) = if dtype == DType::F64 { (1e-12, 1e-12) } else { (1e-5, 1e-5) };
            prop_assert_eq!(got.dtype(), dtype);
            assert_tensor(&format!("matmul {dtype:?}\na = {a:?}\nb = {b:?}"), &got, &naive_matmul(&a.a, &b.a), rtol, atol);
        }
    }
}

#[test]
fn matmul_fixed_cases() {
    let v = Tensor::from_slice(&[1.0f64, 2.0, 3.0], &[3]).unwrap();
    assert_eq!(v.matmul(&v).unwrap().shape(), &[] as &[usize]);
    assert_eq!(v.matmul(&v).unwrap().item().unwrap(), 14.0);
    let m = Tensor::arange(0.0, 6.0, 1.0, DType::F64).unwrap().reshape(&[2, 3]).unwrap();
    assert_eq!(m.matmul(&v).unwrap().to_vec::<f64>().unwrap(), [8.0, 26.0]);
    assert_eq!(v.matmul(&m.t().unwrap()).unwrap().to_vec::<f64>().unwrap(), [8.0, 26.0]);
    assert_eq!(m.matmul(&m.t().unwrap()).unwrap().to_vec::<f64>().unwrap(), [5.0, 14.0, 14.0, 50.0]);
    // k = 0: a sum over nothing is 0.
    let a = Tensor::zeros(&[3, 0], DType::F32).unwrap();
    let b = Tensor::zeros(&[0, 2], DType::F32).unwrap();
    assert_eq!(a.matmul(&b).unwrap().to_vec::<f32>().unwrap(), [0.0; 6]);
    assert_eq!(Tensor::zeros(&[0, 3], DType::F32).unwrap().matmul(&a).unwrap().shape(), &[0, 0]);
    assert_eq!(b.t().unwrap().matmul(&b).unwrap().to_vec::<f32>().unwrap(), [0.0; 4]);
    // 1-D lhs with a batched rhs: [k] @ [b, k, n] -> [b, n].
    let bt = Tensor::ones(&[4, 3, 5], DType::F64).unwrap();
    let r = v.matmul(&bt).unwrap();
    assert_eq!(r.shape(), &[4, 5]);
    assert_eq!(r.to_vec::<f64>().unwrap(), [6.0; 20]);
    // Batched lhs with a 1-D rhs: [b, m, k] @ [k] -> [b, m].
    assert_eq!(bt.t().unwrap().matmul(&Tensor::ones(&[3], DType::F64).unwrap()).unwrap().shape(), &[4, 5]);
}

fn large_case(dtype: DType, sa: &[usize], sb: &[usize], transpose_a: bool, transpose_b: bool) {
    let mut rng = Rng64::new(sa.iter().chain(sb).product::<usize>() as u64);
    let mut make = |shape: &[usize], transpose: bool| {
        let r = shape.len();
        let mut stored = shape.to_vec();
        if transpose {
            stored.swap(r - 2, r - 1);
        }
        let mut a = Arr::random(&stored, &mut rng, -1.0, 1.0);
        if dtype == DType::F32 {
            a = a.round_f32();
        }
        let t = tensor(&a, dtype);
        if transpose {
            let mut perm: Vec<usize> = (0..r).collect();
            perm.swap(r - 2, r - 1);
            (t.t().unwrap(), a.permute(&perm))
        } else {
            (t, a)
        }
    };
    let ((ta, aa), (tb, ab)) = (make(sa, transpose_a), make(sb, transpose_b));
    let (rtol, atol) = if dtype == DType::F64 { (1e-10, 1e-11) } else { (1e-4, 1e-4) };
    assert_tensor(&format!("{sa:?} @ {sb:?} {dtype:?}"), &ta.matmul(&tb).unwrap(), &naive_matmul(&aa, &ab), rtol, atol);
}

#[test]
fn matmul_large_and_batched() {
    for dtype in FLOATS {
        // Past matrixmultiply's blocking, with every transpose combination.
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            large_case(dtype, &[70, 130], &[130, 90], ta, tb);
        }
        // Many small matrices: the batch-parallel path, with a broadcast batch dim.
        large_case(dtype, &[3, 1, 20, 30], &[4, 30, 10], true, false);
        large_case(dtype, &[2, 1, 16, 8], &[5, 8, 3], false, true);
    }
}
