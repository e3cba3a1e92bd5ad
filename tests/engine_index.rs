//! Indexing (index_select / index_add, gather / scatter_add, masked_fill, one_hot) and
//! sorting (argsort, topk) against plain references over multi-indices (f64), plus
//! dot-product (adjoint) checks of their backward kernels (see tests/common/adjoint.rs), and
//! the same ops on a GPU. The layout ops that copy (cat, pad, repeat, ...): tests/engine_shape.rs.

mod common;

use common::adjoint::{assert_adjoint, assert_close, dot, rand, randint, ravel, relayout, shape_strategy, unravel, vals};
use common::{gpu, numel, operand, operand_with};
use proptest::prelude::*;
use tessera::engine::{DType, Generator, Tensor};

// ---- index_select / index_add -----------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn index_select_matches_reference_and_backward_is_adjoint(
        shape in shape_strategy(4),
        axis_pick in any::<prop::sample::Index>(),
        k in 0usize..6,
        (variant, seed) in (0u8..4, any::<u64>()),
    ) {
        let a = axis_pick.index(shape.len());
        let x = rand(seed, &shape);
        let idx = randint(seed ^ 1, &[k], shape[a]);
        let got = relayout(&x, variant).index_select(a as isize - shape.len() as isize, &idx).unwrap();
        let mut out_shape = shape.clone();
        out_shape[a] = k;
        prop_assert_eq!(got.shape(), &out_shape[..]);
        let (xv, iv) = (vals(&x), idx.to_vec::<i64>().unwrap());
        let want: Vec<f64> = (0..numel(&out_shape)).map(|o| {
            let mut m = unravel(o, &out_shape);
            m[a] = iv[m[a]] as usize;
            xv[ravel(&m, &shape)]
        }).collect();
        assert_close(&vals(&got), &want, 0.0, "index_select");
        let g = relayout(&rand(seed ^ 2, &out_shape), variant);
        let dx = g.index_select_backward(a as isize, &idx, shape[a]).unwrap();
        prop_assert_eq!(dx.shape(), &shape[..]);
        assert_adjoint(dot(&got, &g), dot(&x, &dx), "index_select");
        // index_add on a non-zero base adds on top of it.
        let base = rand(seed ^ 3, &shape);
        let added = base.index_add(a as isize, &idx, &g).unwrap();
        assert_close(&vals(&added), &vals(&base.add(&dx).unwrap()), 1e-12, "index_add");
    }
}

#[test]
fn index_select_large_and_integer() {
    // Large enough for the parallel path; an i64 source; a 0-d index.
    let x = rand(1, &[64, 700]);
    let idx = Tensor::from_vec(vec![63i64, 0, 5, 5], &[4]).unwrap();
    let got = x.index_select(0, &idx).unwrap();
    assert_eq!(vals(&got)[..700], vals(&x.select(0, 63).unwrap())[..]);
    let big = x.index_select(1, &randint(2, &[500], 700)).unwrap();
    assert_eq!(big.shape(), &[64, 500]);
    let ints = Tensor::from_vec(vec![1i64, 2, 3, 4, 5, 6], &[2, 3]).unwrap();
    let got = ints.index_select(1, &Tensor::scalar(2i64)).unwrap();
    assert_eq!(got.to_vec::<i64>().unwrap(), vec![3, 6]);
}

#[test]
fn index_errors_name_the_op_index_and_size() {
    let x = Tensor::zeros(&[2, 3], DType::F64).unwrap();
    let e = x.index_select(1, &Tensor::from_vec(vec![0i64, 3], &[2]).unwrap()).unwrap_err().to_string();
    assert!(e.contains("index_select") && e.contains("index 3") && e.contains("size 3") && e.contains("[2, 3]"), "{e}");
    let e = x.index_select(1, &Tensor::from_vec(vec![-1i64], &[1]).unwrap()).unwrap_err().to_string();
    assert!(e.contains("index -1"), "{e}");
    let e = x.index_select(1, &Tensor::zeros(&[2], DType::F32).unwrap()).unwrap_err().to_string();
    assert!(e.contains("index_select") && e.contains("i64"), "{e}");
    let e = x.index_select(2, &Tensor::zeros(&[1], DType::I64).unwrap()).unwrap_err().to_string();
    assert!(e.contains("index_select") && e.contains("axis 2"), "{e}");
    let e = x.index_select(0, &Tensor::zeros(&[1, 1], DType::I64).unwrap()).unwrap_err().to_string();
    assert!(e.contains("index_select") && e.contains("1-D"), "{e}");
    let e =
        x.index_add(0, &Tensor::zeros(&[1], DType::I64).unwrap(), &Tensor::zeros(&[2, 3], DType::F64).unwrap()).unwrap_err().to_string();
    assert!(e.contains("index_add") && e.contains("[1, 3]"), "{e}");
    let e = x.gather(1, &Tensor::from_vec(vec![0i64, 7], &[1, 2]).unwrap()).unwrap_err().to_string();
    assert!(e.contains("gather") && e.contains("index 7") && e.contains("size 3"), "{e}");
    let e = x.gather(1, &Tensor::zeros(&[3, 1], DType::I64).unwrap()).unwrap_err().to_string();
    assert!(e.contains("gather") && e.contains("[2, 3]") && e.contains("[3, 1]"), "{e}");
    let e = x.gather(1, &Tensor::zeros(&[2], DType::I64).unwrap()).unwrap_err().to_string();
    assert!(e.contains("gather") && e.contains("rank"), "{e}");
    let e = x
        .scatter_add(0, &Tensor::zeros(&[2, 3], DType::I64).unwrap(), &Tensor::zeros(&[2, 2], DType::F64).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("scatter_add") && e.contains("[2, 2]") && e.contains("[2, 3]"), "{e}");
    let e = x.scatter_add(0, &Tensor::full(&[1, 1], 2.0, DType::I64).unwrap(), &x).unwrap_err().to_string();
    assert!(e.contains("scatter_add") && e.contains("index 2") && e.contains("size 2"), "{e}");
    let e = x.masked_fill(&Tensor::zeros(&[3], DType::F64).unwrap(), 1.0).unwrap_err().to_string();
    assert!(e.contains("masked_fill") && e.contains("u8"), "{e}");
    let e = x.masked_fill(&Tensor::zeros(&[3, 3], DType::U8).unwrap(), 1.0).unwrap_err().to_string();
    assert!(e.contains("masked_fill") && e.contains("[2, 3]") && e.contains("[3, 3]"), "{e}");
    let e = x.masked_fill(&Tensor::zeros(&[2, 2, 3], DType::U8).unwrap(), 1.0).unwrap_err().to_string();
    assert!(e.contains("masked_fill") && e.contains("[2, 2, 3]"), "{e}");
}

// ---- gather / scatter_add ---------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn gather_matches_reference_and_scatter_add_is_its_adjoint(
        shape in shape_strategy(4),
        shrink in prop::collection::vec(0usize..3, 4),
        axis_pick in any::<prop::sample::Index>(),
        extra in 0usize..3,
        (variant, seed) in (0u8..4, any::<u64>()),
    ) {
        let a = axis_pick.index(shape.len());
        // The index may be smaller than the input on every axis but `a`, and any length on `a`.
        let ishape: Vec<usize> = shape.iter().enumerate().map(|(d, &n)| if d == a { n + extra } else { n - shrink[d].min(n - 1) }).collect();
        let x = rand(seed, &shape);
        let idx = relayout(&randint(seed ^ 1, &ishape, shape[a]), variant);
        let got = relayout(&x, variant).gather(a as isize, &idx).unwrap();
        prop_assert_eq!(got.shape(), &ishape[..]);
        let (xv, iv) = (vals(&x), idx.to_vec::<i64>().unwrap());
        let want: Vec<f64> = (0..numel(&ishape)).map(|o| {
            let mut m = unravel(o, &ishape);
            m[a] = iv[o] as usize;
            xv[ravel(&m, &shape)]
        }).collect();
        assert_close(&vals(&got), &want, 0.0, "gather");

        let g = relayout(&rand(seed ^ 2, &ishape), (variant + 1) % 4);
        let zero = Tensor::zeros(&shape, DType::F64).unwrap();
        let dx = zero.scatter_add(a as isize, &idx, &g).unwrap();
        assert_adjoint(dot(&got, &g), dot(&x, &dx), "gather/scatter_add");

        // scatter_add with a larger source uses only the index's extent, on top of self.
        let mut src_shape = ishape.clone();
        src_shape[0] += 1;
        let src = rand(seed ^ 3, &src_shape);
        let base = rand(seed ^ 4, &shape);
        let got = base.scatter_add(a as isize, &idx, &src).unwrap();
        let mut want = vals(&base);
        let sv = vals(&src);
        for (o, &i) in iv.iter().enumerate() {
            let m = unravel(o, &ishape);
            let mut t = m.clone();
            t[a] = i as usize;
            want[ravel(&t, &shape)] += sv[ravel(&m, &src_shape)];
        }
        assert_close(&vals(&got), &want, 1e-12, "scatter_add");
    }
}

#[test]
fn scatter_add_parallel_path_and_determinism() {
    // Big enough for the parallel split over the first axis; compare with one thread.
    let x = Tensor::zeros(&[64, 40, 30], DType::F32).unwrap();
    let idx = randint(7, &[64, 60, 30], 40);
    let src = rand(8, &[64, 60, 30]).to_dtype(DType::F32).unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| x.scatter_add(1, &idx, &src).unwrap().to_vec::<f32>().unwrap())
    };
    let one = run(1);
    assert_eq!(run(3), one);
    let total: f64 = one.iter().map(|&v| v as f64).sum();
    let want: f64 = src.to_vec::<f32>().unwrap().iter().map(|&v| v as f64).sum();
    assert!((total - want).abs() < 1e-2);
    let back = Tensor::from_vec(one, &[64, 40, 30]).unwrap().gather(1, &idx).unwrap();
    assert_eq!(back.shape(), &[64, 60, 30]);
}

// ---- masked_fill / one_hot --------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn masked_fill_matches_reference(
        shape in shape_strategy(4),
        keep in prop::collection::vec(any::<bool>(), 4),
        (variant, seed, value) in (0u8..4, any::<u64>(), -3.0f64..3.0),
    ) {
        // A mask broadcast along the axes where `keep` is false (size 1 there), and possibly
        // with fewer leading dims.
        let mshape: Vec<usize> = shape.iter().enumerate().map(|(d, &n)| if keep[d] { n } else { 1 }).collect();
        let drop_lead = if mshape[0] == 1 && mshape.len() > 1 { 1 } else { 0 };
        let mask = Generator::new(seed).bernoulli(&mshape, 0.5).unwrap();
        let mask_used = mask.reshape_to(&mshape[drop_lead..]).unwrap();
        let x = rand(seed ^ 1, &shape);
        let got = relayout(&x, variant).masked_fill(&mask_used, value).unwrap();
        let (xv, mv) = (vals(&x), mask.to_vec::<u8>().unwrap());
        let want: Vec<f64> = (0..numel(&shape)).map(|o| {
            let m: Vec<usize> = unravel(o, &shape).iter().zip(&mshape).map(|(&i, &n)| if n == 1 { 0 } else { i }).collect();
            if mv[ravel(&m, &mshape)] != 0 { value } else { xv[o] }
        }).collect();
        assert_close(&vals(&got), &want, 0.0, "masked_fill");
    }
}

#[test]
fn masked_fill_integer_and_one_hot() {
    let x = Tensor::from_vec(vec![1i64, 2, 3, 4], &[2, 2]).unwrap();
    let m = Tensor::from_vec(vec![1u8, 0], &[2]).unwrap();
    assert_eq!(x.masked_fill(&m, -5.0).unwrap().to_vec::<i64>().unwrap(), vec![-5, 2, -5, 4]);

    let labels = Tensor::from_vec(vec![2i64, 0, 1, 2], &[2, 2]).unwrap();
    let oh = labels.one_hot(3).unwrap();
    assert_eq!(oh.dtype(), DType::F32);
    assert_eq!(oh.shape(), &[2, 2, 3]);
    assert_eq!(oh.to_vec::<f32>().unwrap(), vec![0., 0., 1., 1., 0., 0., 0., 1., 0., 0., 0., 1.]);
    let many = randint(3, &[5000], 10).one_hot(10).unwrap();
    assert_eq!(many.sum_all().unwrap().item().unwrap(), 5000.0);
    let e = labels.one_hot(2).unwrap_err().to_string();
    assert!(e.contains("one_hot") && e.contains("label 2") && e.contains("2 classes") && e.contains("[2, 2]"), "{e}");
    let e = Tensor::from_vec(vec![-1i64], &[1]).unwrap().one_hot(4).unwrap_err().to_string();
    assert!(e.contains("label -1"), "{e}");
    let e = Tensor::zeros(&[2], DType::F32).unwrap().one_hot(4).unwrap_err().to_string();
    assert!(e.contains("one_hot") && e.contains("i64"), "{e}");
    assert_eq!(Tensor::zeros(&[0], DType::I64).unwrap().one_hot(0).unwrap().shape(), &[0, 0]);
}

// ---- argsort / topk ---------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn argsort_and_topk_match_a_stable_sort(
        shape in shape_strategy(3),
        axis_pick in any::<prop::sample::Index>(),
        (descending, k_pick) in (any::<bool>(), any::<prop::sample::Index>()),
        (variant, seed) in (0u8..4, any::<u64>()),
    ) {
        let a = axis_pick.index(shape.len());
        // Few distinct values, so ties are common.
        let x = randint(seed, &shape, 4).to_dtype(DType::F64).unwrap();
        let xv = vals(&x);
        let n = shape[a];
        let k = k_pick.index(n + 1);
        let got = relayout(&x, variant).argsort(a as isize, descending).unwrap();
        let (tv, ti) = relayout(&x, variant).topk(k, a as isize, descending).unwrap();
        prop_assert_eq!(got.shape(), &shape[..]);
        let mut kshape = shape.clone();
        kshape[a] = k;
        prop_assert_eq!(tv.shape(), &kshape[..]);
        let (gi, tvv, tiv) = (got.to_vec::<i64>().unwrap(), vals(&tv), ti.to_vec::<i64>().unwrap());
        // Every row along `a`: sort positions stably by value.
        for o in 0..numel(&shape) {
            let m = unravel(o, &shape);
            if m[a] != 0 {
                continue;
            }
            let at = |i: usize| { let mut q = m.clone(); q[a] = i; q };
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&p, &q| {
                let (u, v) = (xv[ravel(&at(p), &shape)], xv[ravel(&at(q), &shape)]);
                if descending { v.partial_cmp(&u).unwrap() } else { u.partial_cmp(&v).unwrap() }
            });
            for (i, &want) in order.iter().enumerate() {
                prop_assert_eq!(gi[ravel(&at(i), &shape)], want as i64);
                if i < k {
                    let pos = { let mut q = m.clone(); q[a] = i; ravel(&q, &kshape) };
                    prop_assert_eq!(tiv[pos], want as i64);
                    prop_assert_eq!(tvv[pos], xv[ravel(&at(want), &shape)]);
                }
            }
        }
    }
}

#[test]
fn sort_nan_integers_and_errors() {
    let x = Tensor::from_vec(vec![1.0, f64::NAN, -1.0, 3.0], &[4]).unwrap();
    assert_eq!(x.argsort(0, false).unwrap().to_vec::<i64>().unwrap(), vec![2, 0, 3, 1]);
    assert_eq!(x.argsort(0, true).unwrap().to_vec::<i64>().unwrap(), vec![1, 3, 0, 2]);
    let (v, i) = x.topk(2, 0, false).unwrap();
    assert_eq!(vals(&v), vec![-1.0, 1.0]);
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![2, 0]);
    let ints = Tensor::from_vec(vec![5i64, 1, 5, 0], &[2, 2]).unwrap();
    let (v, i) = ints.topk(1, 0, true).unwrap();
    assert_eq!((v.to_vec::<i64>().unwrap(), i.to_vec::<i64>().unwrap()), (vec![5, 1], vec![0, 0]));
    let e = ints.topk(3, 1, true).unwrap_err().to_string();
    assert!(e.contains("topk") && e.contains("k = 3") && e.contains("[2, 2]"), "{e}");
    let e = ints.argsort(2, false).unwrap_err().to_string();
    assert!(e.contains("argsort") && e.contains("axis 2"), "{e}");
    // A large tensor (parallel rows) sorts every row.
    let big = rand(9, &[300, 128]);
    let idx = big.argsort(1, false).unwrap();
    let sorted = big.gather(1, &idx).unwrap();
    let sv = vals(&sorted);
    assert!(sv.chunks(128).all(|r| r.windows(2).all(|w| w[0] <= w[1])));
    let (tv, _) = big.topk(5, 1, true).unwrap();
    assert_eq!(vals(&tv)[..5], vals(&sorted)[123..128].iter().rev().copied().collect::<Vec<_>>()[..]);
}

// ---- GPU parity -------------------------------------------------------------------------
// The same ops on GPU copies of the same (often strided) inputs; `gpu::same_on_gpu` skips
// where there is no GPU. Accumulations run in the CPU's order on the GPU, so floats agree
// to the bit, well within the dtype tolerance the helper applies.

const ALL_DTYPES: [DType; 6] = DType::ALL;
const FLOAT_DTYPES: [DType; 4] = gpu::GPU_FLOATS;

/// An i64 index of `shape` with values in `0..n` (repeats common), laid out by a random recipe.
fn gpu_index(shape: &[usize], n: usize, seed: u64) -> Tensor {
    operand_with(shape, DType::I64, seed, |r| r.below(n.max(1)) as f64).t
}

fn axis_of(axis: isize, rank: usize) -> usize {
    if axis < 0 {
        (axis + rank as isize) as usize
    } else {
        axis as usize
    }
}

#[test]
fn gpu_index_select_and_index_add_match_cpu() {
    let cases: [(u64, &[usize], isize, usize); 6] =
        [(1, &[5], 0, 7), (2, &[3, 4, 5], 1, 9), (3, &[3, 4, 5], -1, 2), (4, &[2, 0, 3], 2, 4), (5, &[4, 3], 0, 0), (6, &[6, 1, 3], 1, 3)];
    for (seed, shape, axis, k) in cases {
        let a = axis_of(axis, shape.len());
        let idx = gpu_index(&[k], shape[a], seed + 50);
        for dtype in ALL_DTYPES {
            let x = operand(shape, dtype, seed).t;
            gpu::same_on_gpu(&format!("index_select {dtype:?} {shape:?} axis {axis} k {k}"), &[x.clone(), idx.clone()], |t| {
                Ok(vec![t[0].index_select(axis, &t[1])?])
            });
        }
        for dtype in FLOAT_DTYPES {
            let x = operand(shape, dtype, seed).t;
            let mut src_shape = shape.to_vec();
            src_shape[a] = k;
            let src = operand(&src_shape, dtype, seed + 1).t;
            gpu::same_on_gpu(&format!("index_add {dtype:?} {shape:?} axis {axis} k {k}"), &[x, idx.clone(), src], |t| {
                Ok(vec![t[0].index_add(axis, &t[1], &t[2])?, t[2].index_select_backward(axis, &t[1], shape[a])?])
            });
        }
    }
    // A 0-d index counts as length 1; many repeats of a few rows (an embedding backward).
    let x = operand(&[4, 3], DType::F32, 7).t;
    gpu::same_on_gpu("index_select 0-d index", &[x, Tensor::scalar(2i64)], |t| Ok(vec![t[0].index_select(0, &t[1])?]));
    let g = operand(&[300, 16], DType::F32, 8).t;
    let idx = gpu_index(&[300], 5, 9);
    gpu::same_on_gpu("index_select_backward with repeats", &[g, idx], |t| Ok(vec![t[0].index_select_backward(0, &t[1], 5)?]));
}

#[test]
fn gpu_gather_and_scatter_add_match_cpu() {
    let cases: [(u64, &[usize], &[usize], isize); 7] = [
        (1, &[4, 5], &[4, 3], 1),
        (2, &[4, 5], &[2, 5], 0),
        (3, &[3, 4, 5], &[2, 6, 3], 1),
        (4, &[3, 4, 5], &[3, 4, 5], -1),
        (5, &[6], &[9], 0),
        (6, &[3, 4], &[0, 2], 1),
        (7, &[2, 3, 4], &[1, 1, 1], 2),
    ];
    for (seed, shape, ishape, axis) in cases {
        let a = axis_of(axis, shape.len());
        let idx = gpu_index(ishape, shape[a], seed + 50);
        for dtype in ALL_DTYPES {
            let x = operand(shape, dtype, seed).t;
            gpu::same_on_gpu(&format!("gather {dtype:?} {shape:?} index {ishape:?} axis {axis}"), &[x, idx.clone()], |t| {
                Ok(vec![t[0].gather(axis, &t[1])?])
            });
        }
        // The source may be larger than the index.
        let src_shape: Vec<usize> = ishape.iter().map(|&d| d + (seed as usize % 2)).collect();
        for dtype in FLOAT_DTYPES {
            let x = operand(shape, dtype, seed).t;
            let src = operand(&src_shape, dtype, seed + 1).t;
            gpu::same_on_gpu(&format!("scatter_add {dtype:?} {shape:?} index {ishape:?} axis {axis}"), &[x, idx.clone(), src], |t| {
                Ok(vec![t[0].scatter_add(axis, &t[1], &t[2])?])
            });
        }
    }
}

#[test]
fn gpu_masked_fill_and_one_hot_match_cpu() {
    for dtype in ALL_DTYPES {
        let x = operand(&[3, 4, 5], dtype, 1).t;
        let mask = operand_with(&[4, 1], DType::U8, 2, |r| r.coin(0.4) as u8 as f64).t;
        let full = operand_with(&[3, 4, 5], DType::U8, 3, |r| r.coin(0.5) as u8 as f64).t;
        gpu::same_on_gpu(&format!("masked_fill {dtype:?}"), &[x, mask, full], |t| {
            Ok(vec![t[0].masked_fill(&t[1], -2.5)?, t[0].masked_fill(&t[2], 1e20)?])
        });
    }
    let labels = gpu_index(&[3, 4], 5, 4);
    gpu::same_on_gpu("one_hot", &[labels], |t| Ok(vec![t[0].one_hot(5)?, t[0].one_hot(7)?]));
    let edge = [Tensor::scalar(2i64), Tensor::from_vec(Vec::<i64>::new(), &[0]).unwrap()];
    gpu::same_on_gpu("one_hot 0-d and empty", &edge, |t| Ok(vec![t[0].one_hot(3)?, t[1].one_hot(0)?]));
}

#[test]
fn gpu_index_errors_match_cpu() {
    let Some(dev) = gpu::gpu() else { return };
    let x = rand(1, &[3, 4]);
    let bad = Tensor::from_vec(vec![1i64, 4, -1, 7], &[4]).unwrap();
    // Transposed, so the first bad index in logical order is not the first in storage.
    let bad2 = Tensor::from_vec(vec![0i64, 1, -3, 3, 9, 2], &[2, 3]).unwrap().t().unwrap();
    let src = rand(2, &[3, 4]);
    let labels = Tensor::from_vec(vec![0i64, 2, 5, -1], &[2, 2]).unwrap();
    type Case = fn(&[Tensor]) -> tessera::engine::Result<Tensor>;
    let cases: [(&str, Case); 6] = [
        ("index_select", |t| t[0].index_select(1, &t[1])),
        ("index_add", |t| t[0].index_add(1, &t[1], &t[3])),
        ("index_select_backward", |t| t[3].index_select_backward(1, &t[1], 4)),
        ("gather", |t| t[0].gather(1, &t[2])),
        ("scatter_add", |t| t[0].scatter_add(1, &t[2], &t[3])),
        ("one_hot", |t| t[4].one_hot(3)),
    ];
    let cpu = [x, bad, bad2, src, labels];
    let on_gpu: Vec<Tensor> = cpu.iter().map(|t| gpu::to_device_keeping_layout(t, dev)).collect();
    for (what, f) in cases {
        let (want, got) = (f(&cpu).unwrap_err().to_string(), f(&on_gpu).unwrap_err().to_string());
        assert_eq!(got, want, "{what}");
    }
}
