//! Elementwise ops against naive f64 references: binary ops with broadcasting (and scalar
//! forms), comparisons, `where_`, every unary op, and `unary_backward` against a central
//! finite difference of `unary`.

mod common;

use common::*;
use proptest::prelude::*;
use tessera::engine::{BinaryOp, CmpOp, DType, Tensor, UnaryOp};

/// erf by its Maclaurin series: plain, and accurate to ~1e-13 for |x| <= 3.
fn erf(x: f64) -> f64 {
    let (mut term, mut sum, mut n) = (x, x, 0.0);
    while term.abs() > 1e-17 * sum.abs().max(1e-300) && n < 200.0 {
        n += 1.0;
        term *= -x * x / n;
        sum += term / (2.0 * n + 1.0);
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn naive_binary(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Maximum => {
            if b > a {
                b
            } else {
                a
            }
        }
        BinaryOp::Minimum => {
            if b < a {
                b
            } else {
                a
            }
        }
    }
}

const BINARY: [BinaryOp; 7] =
    [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Minimum];

fn naive_unary(op: UnaryOp, x: f64) -> f64 {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::GeluErf => 0.5 * x * (1.0 + erf(x / 2f64.sqrt())),
        UnaryOp::GeluTanh => 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh()),
        UnaryOp::Silu => x * sigmoid(x),
        UnaryOp::Softplus => x.exp().ln_1p(),
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        UnaryOp::Floor => x.floor(),
        UnaryOp::Round => x.round_ties_even(),
        UnaryOp::Square => x * x,
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Clamp(lo, hi) => x.max(lo).min(hi),
        UnaryOp::PowScalar(p) => x.powf(p),
        UnaryOp::AddScalar(c) => x + c,
        UnaryOp::MulScalar(c) => x * c,
    }
}

/// Every unary op with the input range its reference is checked on.
fn unary_ops() -> Vec<(UnaryOp, f64, f64)> {
    use UnaryOp::*;
    let any = |op| (op, -4.0, 4.0);
    let pos = |op| (op, 0.05, 5.0);
    vec![
        any(Neg),
        any(Abs),
        any(Exp),
        pos(Log),
        pos(Sqrt),
        pos(Rsqrt),
        any(Sin),
        any(Cos),
        any(Tanh),
        any(Sigmoid),
        any(Relu),
        any(GeluErf),
        any(GeluTanh),
        any(Silu),
        any(Softplus),
        any(Sign),
        any(Floor),
        any(Round),
        any(Square),
        pos(Recip),
        any(Clamp(-1.3, 0.7)),
        pos(PowScalar(2.5)),
        any(PowScalar(3.0)),
        pos(PowScalar(-1.5)),
        any(AddScalar(-0.75)),
        any(MulScalar(3.5)),
    ]
}

/// Moves `x` away from 0, integers, half-integers and the clamp bounds above, where the
/// piecewise ops have kinks or jumps and a finite difference means nothing.
fn off_kinks(x: f64) -> f64 {
    let near = |k: f64| (x - k).abs() < 1e-3;
    let frac = x - x.floor();
    if near(-1.3) || near(0.7) || !(1e-3..=1.0 - 1e-3).contains(&frac) || (frac - 0.5).abs() < 1e-3 {
        x + 0.0123
    } else {
        x
    }
}

/// A 3-way NumPy broadcast of reference arrays.
fn broadcast3(a: &Arr, b: &Arr, c: &Arr) -> Vec<usize> {
    broadcast_shape(&broadcast_shape(&a.shape, &b.shape).unwrap(), &c.shape).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn binary_ops_broadcast(out in shape(4, 4), seed: u64) {
        let mut rng = Rng64::new(seed);
        let (sa, sb) = (broadcast_from(&out, &mut rng), broadcast_from(&out, &mut rng));
        for dtype in FLOATS {
            let a = operand(&sa, dtype, seed ^ 1);
            // Keep divisors and pow bases away from 0 so f32 and f64 agree to a tolerance.
            let b = operand_with(&sb, dtype, seed ^ 2, |r| r.range(0.25, 2.5) * if r.coin(0.5) { -1.0 } else { 1.0 });
            let (rtol, atol) = tol(dtype);
            for op in BINARY {
                let got = a.t.binary(&b.t, op).unwrap();
                prop_assert_eq!(got.dtype(), dtype);
                assert_tensor(&format!("{op:?} {dtype:?}\na = {a:?}\nb = {b:?}"), &got, &a.a.zip(&b.a, |x, y| naive_binary(op, x, y)), rtol * 10.0, atol);
            }
            // The named methods are the same ops, and broadcasting is symmetric in shape.
            assert_tensor("add", &b.t.add(&a.t).unwrap(), &b.a.zip(&a.a, |x, y| x + y), rtol, atol);
            assert_tensor("sub", &a.t.sub(&b.t).unwrap(), &a.a.zip(&b.a, |x, y| x - y), rtol, atol);
            assert_tensor("mul", &a.t.mul(&b.t).unwrap(), &a.a.zip(&b.a, |x, y| x * y), rtol, atol);
            assert_tensor("div", &a.t.div(&b.t).unwrap(), &a.a.zip(&b.a, |x, y| x / y), rtol, atol);
            assert_tensor("pow", &b.t.abs().unwrap().pow(&a.t).unwrap(), &b.a.zip(&a.a, |x, y| x.abs().powf(y)), rtol * 10.0, atol);
            assert_tensor("maximum", &a.t.maximum(&b.t).unwrap(), &a.a.zip(&b.a, f64::max), rtol, atol);
            assert_tensor("minimum", &a.t.minimum(&b.t).unwrap(), &a.a.zip(&b.a, f64::min), rtol, atol);
        }
    }

    #[test]
    fn scalar_forms(shape in shape(3, 5), seed: u64, c in -3.0..3.0f64) {
        for dtype in FLOATS {
            let o = operand(&shape, dtype, seed);
            let (rtol, atol) = tol(dtype);
            let cd = if dtype == DType::F32 { c as f32 as f64 } else { c };
            let s = tensor(&Arr::new(&[], vec![cd]), dtype);
            assert_tensor("add_scalar", &o.t.add_scalar(c).unwrap(), &o.a.map(|x| x + cd), rtol, atol);
            assert_tensor("sub_scalar", &o.t.sub_scalar(c).unwrap(), &o.a.map(|x| x - cd), rtol, atol);
            assert_tensor("mul_scalar", &o.t.mul_scalar(c).unwrap(), &o.a.map(|x| x * cd), rtol, atol);
            assert_tensor("div_scalar", &o.t.div_scalar(c).unwrap(), &o.a.map(|x| x / c), rtol * 10.0, atol);
            assert_tensor("maximum_scalar", &o.t.maximum_scalar(c).unwrap(), &o.a.map(|x| x.max(cd)), rtol, atol);
            assert_tensor("minimum_scalar", &o.t.minimum_scalar(c).unwrap(), &o.a.map(|x| x.min(cd)), rtol, atol);
            // A 0-d tensor broadcasts against anything, on either side.
            assert_tensor("x - scalar tensor", &o.t.sub(&s).unwrap(), &o.a.map(|x| x - cd), rtol, atol);
            assert_tensor("scalar tensor / x", &s.div(&o.t).unwrap(), &o.a.map(|x| cd / x), rtol * 10.0, atol);
        }
    }

    #[test]
    fn comparisons(out in shape(4, 4), seed: u64) {
        let mut rng = Rng64::new(seed);
        let (sa, sb) = (broadcast_from(&out, &mut rng), broadcast_from(&out, &mut rng));
        // Small integers, so that ties are common.
        let small = |r: &mut Rng64| r.below(3) as f64 - 1.0;
        for dtype in [DType::F64, DType::F32, DType::I64, DType::U8] {
            let a = operand_with(&sa, dtype, seed ^ 1, small);
            let b = operand_with(&sb, dtype, seed ^ 2, small);
            let conv = |v: &Arr| if dtype == DType::U8 { v.map(|x| (x != 0.0) as u8 as f64) } else { v.clone() };
            let (ea, eb) = (conv(&a.a), conv(&b.a));
            type Naive = fn(f64, f64) -> bool;
            let cases: [(CmpOp, Naive); 6] =
                [(CmpOp::Eq, |x, y| x == y), (CmpOp::Ne, |x, y| x != y), (CmpOp::Lt, |x, y| x < y), (CmpOp::Le, |x, y| x <= y), (CmpOp::Gt, |x, y| x > y), (CmpOp::Ge, |x, y| x >= y)];
            for (op, f) in cases {
                let got = a.t.compare(&b.t, op).unwrap();
                prop_assert_eq!(got.dtype(), DType::U8);
                assert_exact(&format!("{op:?} {dtype:?}"), &got, &ea.zip(&eb, |x, y| f(x, y) as u8 as f64));
                assert_exact(&format!("{op:?} {dtype:?} scalar"), &a.t.compare_scalar(0.0, op).unwrap(), &ea.map(|x| f(x, 0.0) as u8 as f64));
            }
            assert_exact("eq", &a.t.eq(&b.t).unwrap(), &ea.zip(&eb, |x, y| (x == y) as u8 as f64));
            assert_exact("ne", &a.t.ne(&b.t).unwrap(), &ea.zip(&eb, |x, y| (x != y) as u8 as f64));
            assert_exact("lt", &a.t.lt(&b.t).unwrap(), &ea.zip(&eb, |x, y| (x < y) as u8 as f64));
            assert_exact("le", &a.t.le(&b.t).unwrap(), &ea.zip(&eb, |x, y| (x <= y) as u8 as f64));
            assert_exact("gt", &a.t.gt(&b.t).unwrap(), &ea.zip(&eb, |x, y| (x > y) as u8 as f64));
            assert_exact("ge", &a.t.ge(&b.t).unwrap(), &ea.zip(&eb, |x, y| (x >= y) as u8 as f64));
        }
    }

    #[test]
    fn where_selects_with_three_way_broadcast(out in shape(4, 4), seed: u64) {
        let mut rng = Rng64::new(seed);
        let (sc, sa, sb) = (broadcast_from(&out, &mut rng), broadcast_from(&out, &mut rng), broadcast_from(&out, &mut rng));
        let c = operand_with(&sc, DType::U8, seed ^ 3, |r| r.below(2) as f64);
        for dtype in [DType::F64, DType::F32, DType::I64] {
            let a = operand_with(&sa, dtype, seed ^ 1, |r| r.below(100) as f64);
            let b = operand_with(&sb, dtype, seed ^ 2, |r| -(r.below(100) as f64));
            let shape = broadcast3(&c.a, &a.a, &b.a);
            let (ce, ae, be) = (c.a.expand(&shape), a.a.expand(&shape), b.a.expand(&shape));
            let expected = Arr::from_fn(&shape, |i| if ce.at(i) != 0.0 { ae.at(i) } else { be.at(i) });
            let got = Tensor::where_(&c.t, &a.t, &b.t).unwrap();
            prop_assert_eq!(got.dtype(), dtype);
            assert_exact(&format!("where {dtype:?}\ncond = {c:?}"), &got, &expected);
        }
    }

    #[test]
    fn unary_ops_match_naive(shape in shape(3, 5), seed: u64) {
        for (op, lo, hi) in unary_ops() {
            for dtype in FLOATS {
                let o = operand_with(&shape, dtype, seed, |r| r.range(lo, hi));
                let got = o.t.unary(op).unwrap();
                let (rtol, atol) = if dtype == DType::F64 { (1e-10, 1e-12) } else { (2e-5, 1e-6) };
                let expected = o.a.map(|x| naive_unary(op, x));
                prop_assert_eq!(got.dtype(), dtype);
                if dtype == DType::F32 && matches!(op, UnaryOp::Floor | UnaryOp::Round | UnaryOp::Sign) {
                    assert_exact(&format!("{op:?} {dtype:?}"), &got, &expected);
                } else {
                    assert_tensor(&format!("{op:?} {dtype:?} on {o:?}"), &got, &expected, rtol, atol);
                }
            }
        }
    }

    #[test]
    fn unary_backward_matches_finite_differences(shape in shape(3, 4), seed: u64) {
        let h = 1e-6;
        for (op, lo, hi) in unary_ops() {
            let x = operand_with(&shape, DType::F64, seed, |r| off_kinks(r.range(lo + 0.01, hi)));
            let g = operand(&shape, DType::F64, seed ^ 7);
            let y = x.t.unary(op).unwrap();
            let got = x.t.unary_backward(op, &y, &g.t).unwrap();
            // Central difference of the engine's own forward.
            let up = x.t.add_scalar(h).unwrap().unary(op).unwrap().to_vec_f64().unwrap();
            let down = x.t.add_scalar(-h).unwrap().unary(op).unwrap().to_vec_f64().unwrap();
            let fd: Vec<f64> = up.iter().zip(&down).zip(&g.a.data).map(|((u, d), g)| g * (u - d) / (2.0 * h)).collect();
            assert_tensor(&format!("{op:?}' at {x:?}"), &got, &Arr::new(&shape, fd), 1e-5, 1e-6);
            if !op.is_differentiable() {
                prop_assert!(got.to_vec_f64().unwrap().iter().all(|&v| v == 0.0));
            }
        }
    }

    /// Autograd keeps only what `UnaryOp::derivative_needs` names and passes it in both
    /// operand slots: the backward kernel must give the same bits that way as with both x
    /// and y (f64 and f32, zeros included: the kinks of ReLU and abs).
    #[test]
    fn unary_backward_reads_only_what_derivative_needs_names(shape in shape(3, 4), seed: u64) {
        use tessera::engine::DerivativeNeeds;
        for dtype in FLOATS {
            for (op, lo, hi) in unary_ops() {
                let x = operand_with(&shape, dtype, seed, |r| if r.coin(0.2) { 0.0 } else { r.range(lo, hi) }).t;
                let g = operand(&shape, dtype, seed ^ 7).t;
                let y = x.unary(op).unwrap();
                let both = x.unary_backward(op, &y, &g).unwrap();
                let kept = match op.derivative_needs() {
                    DerivativeNeeds::Nothing => g.clone(),
                    DerivativeNeeds::Input => x.clone(),
                    DerivativeNeeds::Output => y.clone(),
                };
                let alone = kept.unary_backward(op, &kept, &g).unwrap();
                let bits = |t: &Tensor| t.to_vec_f64().unwrap().iter().map(|v| if v.is_nan() { u64::MAX } else { v.to_bits() }).collect::<Vec<_>>();
                prop_assert_eq!(bits(&alone), bits(&both), "{:?} {:?}", op, dtype);
            }
        }
    }

    /// The forward and backward together give the bits of the two calls, for every op and
    /// float dtype (f32 GELU runs as one fused pass, the rest as the two calls).
    #[test]
    fn unary_with_backward_gives_the_bits_of_the_two_calls(shape in shape(3, 4), seed: u64) {
        for dtype in FLOATS {
            for (op, lo, hi) in unary_ops() {
                let x = operand_with(&shape, dtype, seed, |r| r.range(lo, hi)).t;
                let g = operand(&shape, dtype, seed ^ 7).t;
                let (y, dx) = x.unary_with_backward(op, &g).unwrap();
                let want_y = x.unary(op).unwrap();
                let want_dx = x.unary_backward(op, &want_y, &g).unwrap();
                prop_assert_eq!(bits(&y), bits(&want_y), "{:?} {:?}", op, dtype);
                prop_assert_eq!(bits(&dx), bits(&want_dx), "{:?} {:?}", op, dtype);
            }
        }
    }

    #[test]
    fn clamp_matches_naive(shape in shape(3, 5), seed: u64, lo in -2.0..1.0f64, width in 0.0..2.0f64) {
        let o = operand(&shape, DType::F64, seed);
        let hi = lo + width;
        assert_exact("clamp", &o.t.clamp(lo, hi).unwrap(), &o.a.map(|x| x.max(lo).min(hi)));
    }
}

#[test]
fn round_is_half_to_even() {
    let x = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, 2.4, 2.6, -2.6, 1e15 + 0.5, 3.0];
    let expected = [0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 0.0, 2.0, 3.0, -3.0, 1e15, 3.0];
    let got = Tensor::from_slice(&x, &[x.len()]).unwrap().round().unwrap().to_vec::<f64>().unwrap();
    assert_eq!(got, expected);
    assert!(got[3].is_sign_negative(), "round(-0.5) is -0");
    let x32: Vec<f32> = [0.5f32, 1.5, 2.5, -3.5, 4.5, 2.5000002].to_vec();
    let got32 = Tensor::from_vec(x32, &[6]).unwrap().round().unwrap().to_vec::<f32>().unwrap();
    assert_eq!(got32, [0.0, 2.0, 2.0, -4.0, 4.0, 3.0]);
}

#[test]
fn gelu_forms_and_stability_at_large_inputs() {
    let x = Tensor::linspace(-6.0, 6.0, 121, DType::F64).unwrap();
    let (erf_form, tanh_form) = (x.gelu().unwrap().to_vec::<f64>().unwrap(), x.gelu_tanh().unwrap().to_vec::<f64>().unwrap());
    let max_gap = erf_form.iter().zip(&tanh_form).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(max_gap > 1e-5 && max_gap < 1e-3, "the two GELU forms differ slightly, got {max_gap}");
    // Known values: GELU(1) = Φ(1) = 0.8413447460685429.
    let one = Tensor::scalar(1.0f64);
    assert!((one.gelu().unwrap().item().unwrap() - 0.841_344_746_068_542_9).abs() < 1e-12);

    let big = Tensor::from_slice(&[-1000.0f32, -80.0, 80.0, 1000.0], &[4]).unwrap();
    let s = big.sigmoid().unwrap().to_vec::<f32>().unwrap();
    assert_eq!(s, [0.0, s[1], 1.0, 1.0]);
    assert!(s[1] >= 0.0 && s[1] < 1e-30);
    let sp = big.softplus().unwrap().to_vec::<f32>().unwrap();
    assert_eq!((sp[0], sp[2], sp[3]), (0.0, 80.0, 1000.0));
    assert_eq!(big.tanh().unwrap().to_vec::<f32>().unwrap(), [-1.0, -1.0, 1.0, 1.0]);
    assert_eq!(big.silu().unwrap().to_vec::<f32>().unwrap()[3], 1000.0);
    assert!(big.silu().unwrap().to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()));
    assert_eq!(big.gelu().unwrap().to_vec::<f32>().unwrap(), [-0.0, -0.0, 80.0, 1000.0]);
}

// ---- the same ops on a GPU ------------------------------------------------------------------

#[test]
fn gpu_unary_ops_and_their_backward_match_cpu() {
    for dtype in gpu::GPU_FLOATS {
        for (seed, shape) in [(1u64, vec![37usize]), (2, vec![3, 4, 5]), (3, vec![2, 1, 6, 3]), (4, vec![])] {
            let x = operand_with(&shape, dtype, seed, |r| r.range(0.1, 3.0) * if r.coin(0.5) { 1.0 } else { -1.0 }).t;
            let g = operand(&shape, dtype, seed + 100).t;
            for op in UnaryOp::ALL {
                let what = format!("{} {dtype:?} {shape:?}", op.name());
                gpu::same_on_gpu(&what, &[x.clone(), g.clone()], |t| {
                    let y = t[0].unary(op)?;
                    let dx = t[0].unary_backward(op, &y, &t[1])?;
                    Ok(vec![y, dx])
                });
            }
        }
    }
}

#[test]
fn gpu_binary_compare_where_cast_match_cpu() {
    let ops = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Minimum];
    let cmps = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge];
    for dtype in gpu::GPU_FLOATS {
        for (seed, sa, sb) in
            [(5u64, vec![4usize, 5], vec![4, 5]), (6, vec![3, 1, 5], vec![4, 1]), (7, vec![], vec![2, 3]), (8, vec![0, 3], vec![3])]
        {
            let a = operand_with(&sa, dtype, seed, |r| r.range(0.2, 2.0)).t;
            let b = operand_with(&sb, dtype, seed + 1, |r| (r.range(0.2, 2.0) * 4.0).round() / 4.0).t;
            for op in ops {
                gpu::same_on_gpu(&format!("{} {dtype:?} {sa:?} {sb:?}", op.name()), &[a.clone(), b.clone()], |t| {
                    Ok(vec![t[0].binary(&t[1], op)?])
                });
            }
            for op in cmps {
                gpu::same_on_gpu(&format!("{op:?} {dtype:?} {sa:?} {sb:?}"), &[a.clone(), b.clone()], |t| {
                    Ok(vec![t[0].compare(&t[1], op)?])
                });
            }
            gpu::same_on_gpu(&format!("where {dtype:?}"), &[a.clone(), b.clone()], |t| {
                let c = t[0].compare_scalar(1.0, CmpOp::Gt)?;
                Ok(vec![Tensor::where_(&c, &t[0], &t[1])?])
            });
            for to in [DType::F32, DType::F64, DType::I64, DType::U8] {
                gpu::same_on_gpu(&format!("cast {dtype:?} -> {to:?}"), std::slice::from_ref(&a), |t| {
                    Ok(vec![t[0].mul_scalar(3.0)?.to_dtype(to)?])
                });
            }
        }
    }
    // Copies of strided views, integer comparisons and device-side fills.
    let i = Tensor::arange(0.0, 24.0, 1.0, DType::I64).unwrap().reshape(&[4, 6]).unwrap().t().unwrap();
    gpu::same_on_gpu("contiguous i64 transpose", &[i], |t| {
        Ok(vec![t[0].contiguous()?, t[0].compare_scalar(7.0, CmpOp::Le)?, t[0].zeros_like()?])
    });
}

#[test]
fn gpu_tensors_round_trip_and_refuse_mixed_devices() {
    let Some(dev) = gpu::gpu() else { return };
    let a = Tensor::from_vec(vec![1.5f32, -2.0, 3.25], &[3]).unwrap();
    let g = a.to_device(dev).unwrap();
    assert_eq!(g.device(), dev);
    assert_eq!(g.to_vec::<f32>().unwrap(), vec![1.5, -2.0, 3.25]);
    let err = a.add(&g).unwrap_err().to_string();
    assert!(err.contains("add") && err.contains("cpu") && err.contains("cuda:0"), "{err}");
}

/// Bit patterns of a tensor's values (NaNs as one pattern).
fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec_f64().unwrap().iter().map(|v| if v.is_nan() { u64::MAX } else { v.to_bits() }).collect()
}

/// The fused f32 GELU pass splits large tensors into parallel chunks: the bits stay those of
/// the two calls whatever the thread count, and a gradient of another shape is refused with
/// both shapes named.
#[test]
fn fused_gelu_with_backward_is_exact_and_checked() {
    let x = operand_with(&[301, 129], DType::F32, 3, |r| r.range(-6.0, 6.0)).t;
    let g = operand(&[301, 129], DType::F32, 4).t;
    let want_y = x.gelu().unwrap();
    let want_dx = x.unary_backward(UnaryOp::GeluErf, &want_y, &g).unwrap();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (y, dx) = pool.install(|| x.unary_with_backward(UnaryOp::GeluErf, &g)).unwrap();
        assert_eq!(bits(&y), bits(&want_y), "{threads} threads");
        assert_eq!(bits(&dx), bits(&want_dx), "{threads} threads");
    }
    let err = x.unary_with_backward(UnaryOp::GeluErf, &g.reshape(&[129, 301]).unwrap()).unwrap_err().to_string();
    assert!(err.contains("[301, 129]") && err.contains("[129, 301]") && err.contains("gelu"), "{err}");
}
