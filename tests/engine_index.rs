//! Indexing and layout ops against plain references over multi-indices (f64), plus
//! dot-product (adjoint) checks of their backward kernels.

mod common;

use approx::relative_eq;
use common::{gpu, operand, operand_with};
use proptest::prelude::*;
use tessera::engine::{DType, Generator, PadMode, Tensor};

// ---- helpers ----------------------------------------------------------------------------

fn rand(seed: u64, shape: &[usize]) -> Tensor {
    Generator::new(seed).uniform(shape, -1.0, 1.0, DType::F64).unwrap()
}

fn randint(seed: u64, shape: &[usize], high: usize) -> Tensor {
    Generator::new(seed).randint(shape, 0, high as i64).unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    vals(a).iter().zip(vals(b)).map(|(x, y)| x * y).sum()
}

/// The same logical values in another layout (see tests/engine_conv.rs).
fn relayout(t: &Tensor, variant: u8) -> Tensor {
    let r = t.rank() as isize;
    let out = match variant {
        1 if r >= 2 => t.transpose(r - 2, r - 1).unwrap().contiguous().unwrap().transpose(r - 2, r - 1).unwrap(),
        2 if r >= 1 => {
            let axes: Vec<isize> = (0..r).collect();
            t.flip(&axes).unwrap().contiguous().unwrap().flip(&axes).unwrap()
        }
        3 if t.dtype().is_float() => {
            let junk = t.mul_scalar(-7.0).unwrap();
            Tensor::stack(&[t, &junk], -1).unwrap().select(-1, 0).unwrap()
        }
        _ => t.clone(),
    };
    assert_eq!(vals(&out), vals(t));
    out
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(relative_eq!(*g, *w, epsilon = tol, max_relative = tol), "{what}: element {i}: got {g}, want {w}");
    }
}

fn assert_adjoint(lhs: f64, rhs: f64, what: &str) {
    assert!(relative_eq!(lhs, rhs, epsilon = 1e-9, max_relative = 1e-9), "{what}: <Ax, y> = {lhs} but <x, A'y> = {rhs}");
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn shape_strategy(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 1..=max_rank)
}

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
        gpu::same_on_gpu(&format!("rot90 {dtype:?}"), &[x.clone()], |t| {
            Ok(vec![t[0].rot90(1, (0, 1))?.contiguous()?, t[0].rot90(2, (1, 2))?, t[0].rot90(-1, (-1, 0))?.contiguous()?])
        });
        for reps in [&[2, 1, 3][..], &[1, 1, 1], &[0, 2, 1], &[3, 2, 2], &[2, 1, 2, 3]] {
            gpu::same_on_gpu(&format!("repeat {dtype:?} {reps:?}"), &[x.clone()], |t| Ok(vec![t[0].repeat(reps)?]));
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
