//! Creation (zeros/ones/full/arange/linspace/eye/from_vec/to_vec/scalar/item) and casts
//! between f32, f64, i64 and u8.

mod common;

use common::*;
use proptest::prelude::*;
use tessera::engine::{DType, Tensor};

const ALL: [DType; 4] = [DType::F32, DType::F64, DType::I64, DType::U8];

#[test]
fn zeros_ones_full_in_every_dtype() {
    for dtype in ALL {
        for shape in [vec![], vec![0], vec![3], vec![2, 0, 3], vec![2, 3, 1]] {
            let n = numel(&shape);
            let z = Tensor::zeros(&shape, dtype).unwrap();
            assert_eq!((z.shape(), z.dtype(), z.numel()), (&shape[..], dtype, n));
            assert_eq!(z.to_vec_f64().unwrap(), vec![0.0; n]);
            assert_eq!(Tensor::ones(&shape, dtype).unwrap().to_vec_f64().unwrap(), vec![1.0; n]);
            assert_eq!(Tensor::full(&shape, 7.0, dtype).unwrap().to_vec_f64().unwrap(), vec![7.0; n]);
            assert_eq!(z.ones_like().unwrap().to_vec_f64().unwrap(), vec![1.0; n]);
            assert_eq!(z.ones_like().unwrap().dtype(), dtype);
        }
    }
    assert_eq!(Tensor::full(&[2], -2.5, DType::F32).unwrap().to_vec::<f32>().unwrap(), [-2.5, -2.5]);
    assert_eq!(Tensor::full(&[2], -7.0, DType::I64).unwrap().to_vec::<i64>().unwrap(), [-7, -7]);
    assert_eq!(Tensor::ones(&[2], DType::U8).unwrap().to_vec::<u8>().unwrap(), [1, 1]);
    assert_eq!(Tensor::scalar(3i64).shape(), &[] as &[usize]);
    assert_eq!(Tensor::scalar(3i64).item().unwrap(), 3.0);
}

#[test]
fn arange_cases() {
    let a = |s, e, st, d| Tensor::arange(s, e, st, d).unwrap().to_vec_f64().unwrap();
    assert_eq!(a(0.0, 5.0, 1.0, DType::I64), [0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(a(5.0, 0.0, -1.5, DType::F64), [5.0, 3.5, 2.0, 0.5]);
    assert_eq!(a(0.0, 1.0, 0.25, DType::F32), [0.0, 0.25, 0.5, 0.75]);
    assert_eq!(a(3.0, 3.0, 1.0, DType::F64), [] as [f64; 0]);
    assert_eq!(a(0.0, -1.0, 1.0, DType::F64), [] as [f64; 0]);
    assert_eq!(a(-2.0, 2.0, 3.0, DType::F64), [-2.0, 1.0]);
    assert_eq!(Tensor::arange(0.0, 3.0, 1.0, DType::U8).unwrap().to_vec::<u8>().unwrap(), [0, 1, 2]);
}

#[test]
fn linspace_cases() {
    let l = |s, e, n| Tensor::linspace(s, e, n, DType::F64).unwrap().to_vec::<f64>().unwrap();
    assert_eq!(l(0.0, 1.0, 0), [] as [f64; 0]);
    assert_eq!(l(2.0, 9.0, 1), [2.0]);
    assert_eq!(l(0.0, 1.0, 5), [0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(l(1.0, -1.0, 3), [1.0, 0.0, -1.0]);
    assert_eq!(Tensor::linspace(0.0, 0.3, 4, DType::F32).unwrap().to_vec::<f32>().unwrap()[3], 0.3f32);
}

#[test]
fn eye_cases() {
    for dtype in ALL {
        for n in [0usize, 1, 4] {
            let e = Tensor::eye(n, dtype).unwrap();
            assert_eq!(e.shape(), &[n, n]);
            let expected: Vec<f64> = indices(&[n, n]).iter().map(|i| (i[0] == i[1]) as u8 as f64).collect();
            assert_eq!(e.to_vec_f64().unwrap(), expected);
        }
    }
}

#[test]
fn from_vec_to_vec_roundtrip_and_typed_access() {
    let v: Vec<i64> = (0..6).map(|i| i * i - 3).collect();
    let t = Tensor::from_vec(v.clone(), &[2, 3]).unwrap();
    assert_eq!((t.dtype(), t.shape()), (DType::I64, &[2usize, 3][..]));
    assert_eq!(t.to_vec::<i64>().unwrap(), v);
    assert_eq!(t.t().unwrap().to_vec::<i64>().unwrap(), [-3, 6, -2, 13, 1, 22]);
    assert_eq!(Tensor::from_slice(&[1u8, 0, 1], &[3]).unwrap().to_vec::<u8>().unwrap(), [1, 0, 1]);
    assert_eq!(Tensor::from_vec(vec![4.5f32], &[]).unwrap().item().unwrap(), 4.5);
    assert_eq!(Tensor::from_vec(vec![4.5f32], &[1, 1, 1]).unwrap().item().unwrap(), 4.5);
    assert!(Tensor::from_vec(Vec::<f32>::new(), &[0, 5]).unwrap().to_vec::<f32>().unwrap().is_empty());
    // Reading with the wrong Rust type is an error, not a reinterpretation.
    assert!(t.to_vec::<f64>().is_err());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arange_matches_naive(start in -10.0..10.0f64, step in prop_oneof![-3.0..-0.1f64, 0.1..3.0f64], n in -3i32..30) {
        // `end` half a step past the last value, so the count has no rounding ambiguity.
        let end = start + (n as f64 - 0.5) * step;
        let got = Tensor::arange(start, end, step, DType::F64).unwrap().to_vec::<f64>().unwrap();
        let expected: Vec<f64> = (0..n.max(0)).map(|i| start + i as f64 * step).collect();
        assert_close_slices("arange", &got, &expected, 1e-12, 1e-12);
    }

    #[test]
    fn linspace_matches_naive(start in -10.0..10.0f64, end in -10.0..10.0f64, n in 0usize..40) {
        let got = Tensor::linspace(start, end, n, DType::F64).unwrap().to_vec::<f64>().unwrap();
        let expected: Vec<f64> = (0..n).map(|i| if n == 1 { start } else { start + (end - start) * i as f64 / (n - 1) as f64 }).collect();
        assert_close_slices("linspace", &got, &expected, 1e-12, 1e-12);
        if n > 1 {
            prop_assert_eq!(got[n - 1], end);
            prop_assert_eq!(got[0], start);
        }
    }

    #[test]
    fn casts_from_floats(shape in shape(3, 4), seed: u64) {
        // Values with fractions of both signs, exact integers and zeros.
        let o = operand_with(&shape, DType::F64, seed, |r| match r.below(4) {
            0 => 0.0,
            1 => r.below(200) as f64 - 100.0,
            _ => r.range(-300.0, 300.0),
        });
        let cast = |d| o.t.to_dtype(d).unwrap();
        assert_exact("f64 -> f32", &cast(DType::F32), &o.a.map(|x| x as f32 as f64));
        assert_exact("f64 -> i64 truncates toward zero", &cast(DType::I64), &o.a.map(|x| x.trunc()));
        assert_exact("f64 -> u8 is x != 0", &cast(DType::U8), &o.a.map(|x| (x != 0.0) as u8 as f64));
        for d in ALL {
            let c = cast(d);
            prop_assert_eq!(c.dtype(), d);
            prop_assert!(c.is_contiguous() || d == DType::F64);
        }
        let f = cast(DType::F32);
        assert_exact("f32 -> f64", &f.to_dtype(DType::F64).unwrap(), &o.a.map(|x| x as f32 as f64));
        assert_exact("f32 -> i64", &f.to_dtype(DType::I64).unwrap(), &o.a.map(|x| (x as f32).trunc() as f64));
        // Casting to the same dtype is free.
        prop_assert!(o.t.to_dtype(DType::F64).unwrap().shares_storage(&o.t));
    }

    #[test]
    fn casts_from_integers(v in prop::collection::vec(-1000i64..1000, 0..20)) {
        let t = Tensor::from_vec(v.clone(), &[v.len()]).unwrap().flip(&[0]).unwrap();
        let rev: Vec<i64> = v.iter().rev().copied().collect();
        prop_assert_eq!(t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap(), rev.iter().map(|&x| x as f64).collect::<Vec<_>>());
        prop_assert_eq!(t.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap(), rev.iter().map(|&x| x as f32).collect::<Vec<_>>());
        let mask = t.to_dtype(DType::U8).unwrap();
        prop_assert_eq!(mask.to_vec::<u8>().unwrap(), rev.iter().map(|&x| (x != 0) as u8).collect::<Vec<_>>());
        prop_assert_eq!(mask.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(), rev.iter().map(|&x| (x != 0) as i64).collect::<Vec<_>>());
        prop_assert_eq!(mask.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap(), rev.iter().map(|&x| (x != 0) as u8 as f32).collect::<Vec<_>>());
    }
}

#[test]
fn cast_edge_values() {
    let t = Tensor::from_vec(vec![-2.7f64, -0.5, 0.5, 2.7, 1e30, -1e30], &[6]).unwrap();
    assert_eq!(t.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(), [-2, 0, 0, 2, i64::MAX, i64::MIN]);
    assert_eq!(t.to_dtype(DType::U8).unwrap().to_vec::<u8>().unwrap(), [1; 6]);
    let f = t.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(f[..4], [-2.7f32, -0.5, 0.5, 2.7]);
    assert_eq!(f[4], 1e30f32);
}
