//! One property per differentiable op: random shapes (broadcast and non-contiguous inputs
//! included), values kept away from kinks, and `gradcheck` in f64 against central
//! differences. `autograd_coverage.rs` fails when an op in `DIFFERENTIABLE_OPS` has no
//! `grad_check!(grad_<op>, ...)` here.

use proptest::prelude::*;
use tessera::autograd::{fused, gradcheck, Var};
use tessera::engine::{DType, Generator, Tensor, UnaryOp};

const EPS: f64 = 1e-6;
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-5;

/// Uniform values in `[lo, hi)`, f64.
fn rand(shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
    Generator::new(seed).uniform(shape, lo, hi, DType::F64).unwrap()
}

/// Values with `|x| ∈ [0.2, 1.2)` and random signs: away from the kinks at 0.
fn away(shape: &[usize], seed: u64) -> Tensor {
    let u = rand(shape, seed, 0.2, 1.2);
    let s = Generator::new(seed ^ 1)
        .bernoulli(shape, 0.5)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .mul_scalar(2.0)
        .unwrap()
        .sub_scalar(1.0)
        .unwrap();
    u.mul(&s).unwrap()
}

/// A non-contiguous f64 view of `shape`: a transposed tensor seen through `t()`.
fn noncontig(shape: &[usize], seed: u64) -> Tensor {
    let mut s = shape.to_vec();
    let r = s.len();
    if r < 2 {
        return rand(&[shape[0] * 2], seed, -1.0, 1.0).slice(0, 0, shape[0] * 2, 2).unwrap();
    }
    s.swap(r - 2, r - 1);
    rand(&s, seed, -1.0, 1.0).t().unwrap()
}

fn shape_strategy(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..4, 1..=max_rank)
}

/// A shape and a second shape that broadcasts against it (some dims set to 1 or dropped).
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (shape_strategy(3), prop::collection::vec(any::<bool>(), 3), any::<bool>()).prop_map(|(a, ones, drop_lead)| {
        let mut b: Vec<usize> = a.iter().zip(&ones).map(|(&d, &o)| if o { 1 } else { d }).collect();
        if drop_lead && b.len() > 1 {
            b.remove(0);
        }
        (a, b)
    })
}

fn check(f: impl Fn(&[Var]) -> tessera::autograd::Result<Var>, inputs: &[Tensor]) -> Result<(), TestCaseError> {
    gradcheck(f, inputs, EPS, ATOL, RTOL).map_err(|e| TestCaseError::fail(e.to_string()))
}

macro_rules! grad_check {
    ($name:ident, $strategy:expr, |$args:pat_param| $body:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(6))]
            #[test]
            fn $name($args in $strategy) { $body? }
        }
    };
}

// ---- binary, broadcasting ----------------------------------------------------------------
grad_check!(grad_add, (broadcast_pair(), any::<u64>()), |((a, b), s)| check(|v| v[0].add(&v[1]), &[away(&a, s), away(&b, s + 1)]));
grad_check!(grad_sub, (broadcast_pair(), any::<u64>()), |((a, b), s)| check(|v| v[0].sub(&v[1]), &[away(&b, s), noncontig(&a, s + 1)]));
grad_check!(grad_mul, (broadcast_pair(), any::<u64>()), |((a, b), s)| check(|v| v[0].mul(&v[1]), &[noncontig(&a, s), away(&b, s + 1)]));
grad_check!(grad_div, (broadcast_pair(), any::<u64>()), |((a, b), s)| check(|v| v[0].div(&v[1]), &[away(&a, s), away(&b, s + 1)]));
grad_check!(grad_pow, (broadcast_pair(), any::<u64>()), |((a, b), s)| check(
    |v| v[0].pow(&v[1]),
    &[rand(&a, s, 0.5, 2.0), rand(&b, s + 1, -1.5, 1.5)]
));
grad_check!(grad_maximum, (broadcast_pair(), any::<u64>()), |((a, b), s)| check(
    |v| v[0].maximum(&v[1]),
    &[away(&a, s), away(&b, s + 1).mul_scalar(1.01).unwrap()]
));
grad_check!(grad_minimum, (broadcast_pair(), any::<u64>()), |((a, b), s)| check(
    |v| v[0].minimum(&v[1]),
    &[away(&a, s), away(&b, s + 1).mul_scalar(0.99).unwrap()]
));
grad_check!(grad_where, (broadcast_pair(), any::<u64>()), |((a, b), s)| {
    let cond = Generator::new(s).bernoulli(&a, 0.5).unwrap();
    check(move |v| Var::where_(&cond, &v[0], &v[1]), &[away(&a, s), away(&b, s + 1)])
});

// ---- unary -------------------------------------------------------------------------------
macro_rules! unary_check {
    ($name:ident, $method:ident, $input:expr) => {
        grad_check!($name, (shape_strategy(3), any::<u64>()), |(sh, s)| check(|v| v[0].$method(), &[$input(&sh, s)]));
    };
}
unary_check!(grad_neg, neg, noncontig);
unary_check!(grad_abs, abs, away);
unary_check!(grad_exp, exp, noncontig);
unary_check!(grad_log, log, |sh: &[usize], s| rand(sh, s, 0.3, 3.0));
unary_check!(grad_sqrt, sqrt, |sh: &[usize], s| rand(sh, s, 0.3, 3.0));
unary_check!(grad_rsqrt, rsqrt, |sh: &[usize], s| rand(sh, s, 0.3, 3.0));
unary_check!(grad_sin, sin, noncontig);
unary_check!(grad_cos, cos, noncontig);
unary_check!(grad_tanh, tanh, noncontig);
unary_check!(grad_sigmoid, sigmoid, |sh: &[usize], s| rand(sh, s, -4.0, 4.0));
unary_check!(grad_relu, relu, away);
unary_check!(grad_gelu, gelu, |sh: &[usize], s| rand(sh, s, -3.0, 3.0));
unary_check!(grad_gelu_tanh, gelu_tanh, |sh: &[usize], s| rand(sh, s, -3.0, 3.0));
unary_check!(grad_silu, silu, |sh: &[usize], s| rand(sh, s, -3.0, 3.0));
unary_check!(grad_softplus, softplus, |sh: &[usize], s| rand(sh, s, -3.0, 3.0));
unary_check!(grad_square, square, noncontig);
unary_check!(grad_recip, recip, away);
grad_check!(grad_clamp, (shape_strategy(3), any::<u64>()), |(sh, s)| {
    // Keep values away from the bounds ±0.5 themselves.
    let x = away(&sh, s).mul_scalar(0.9).unwrap();
    let x = Tensor::where_(
        &x.abs().unwrap().sub_scalar(0.5).unwrap().abs().unwrap().lt(&Tensor::scalar(0.05f64)).unwrap(),
        &x.mul_scalar(1.3).unwrap(),
        &x,
    )
    .unwrap();
    check(|v| v[0].clamp(-0.5, 0.5), &[x])
});
grad_check!(grad_pow_scalar, (shape_strategy(3), any::<u64>(), -2.0f64..3.0), |(sh, s, p)| check(
    move |v| v[0].powf(p),
    &[rand(&sh, s, 0.3, 2.0)]
));
grad_check!(grad_add_scalar, (shape_strategy(3), any::<u64>()), |(sh, s)| check(|v| v[0].add_scalar(1.7), &[noncontig(&sh, s)]));
grad_check!(grad_mul_scalar, (shape_strategy(3), any::<u64>()), |(sh, s)| check(|v| v[0].mul_scalar(-2.5), &[noncontig(&sh, s)]));

// ---- reductions --------------------------------------------------------------------------
/// A shape and a non-empty subset of its axes.
fn shape_axes() -> impl Strategy<Value = (Vec<usize>, Vec<isize>, bool)> {
    shape_strategy(3).prop_flat_map(|sh| {
        let r = sh.len();
        (Just(sh), prop::collection::vec(any::<bool>(), r), any::<bool>()).prop_map(|(sh, pick, keep)| {
            let mut axes: Vec<isize> = pick.iter().enumerate().filter(|(_, &p)| p).map(|(i, _)| i as isize).collect();
            if axes.is_empty() {
                axes.push(-1);
            }
            (sh, axes, keep)
        })
    })
}
grad_check!(grad_sum, (shape_axes(), any::<u64>()), |((sh, ax, k), s)| check(move |v| v[0].sum(&ax, k), &[noncontig(&sh, s)]));
grad_check!(grad_mean, (shape_axes(), any::<u64>()), |((sh, ax, k), s)| check(move |v| v[0].mean(&ax, k), &[noncontig(&sh, s)]));
grad_check!(grad_max, (shape_axes(), any::<u64>()), |((sh, ax, k), s)| check(move |v| v[0].max(&ax, k), &[noncontig(&sh, s)]));
grad_check!(grad_min, (shape_axes(), any::<u64>()), |((sh, ax, k), s)| check(move |v| v[0].min(&ax, k), &[noncontig(&sh, s)]));
grad_check!(grad_var, (shape_axes(), any::<u64>(), any::<bool>()), |((sh, ax, k), s, unbiased)| {
    let n: usize = ax.iter().map(|&a| sh[(a.rem_euclid(sh.len() as isize)) as usize]).product();
    let unbiased = unbiased && n > 1;
    check(move |v| v[0].var(&ax, unbiased, k), &[noncontig(&sh, s)])
});
grad_check!(grad_logsumexp, (shape_axes(), any::<u64>()), |((sh, ax, k), s)| check(move |v| v[0].logsumexp(&ax, k), &[noncontig(&sh, s)]));
grad_check!(grad_softmax, (shape_strategy(3), any::<u64>()), |(sh, s)| check(|v| v[0].softmax(0), &[noncontig(&sh, s)]));
grad_check!(grad_log_softmax, (shape_strategy(3), any::<u64>()), |(sh, s)| check(|v| v[0].log_softmax(-1), &[noncontig(&sh, s)]));

// ---- matmul ------------------------------------------------------------------------------
grad_check!(grad_matmul, (1usize..4, 1usize..4, 1usize..4, 0usize..4, any::<u64>()), |(m, k, n, kind, s)| match kind {
    0 => check(|v| v[0].matmul(&v[1]), &[noncontig(&[m, k], s), rand(&[k, n], s + 1, -1.0, 1.0)]),
    1 => check(|v| v[0].matmul(&v[1]), &[rand(&[2, 1, m, k], s, -1.0, 1.0), noncontig(&[3, k, n], s + 1)]),
    2 => check(|v| v[0].matmul(&v[1]), &[rand(&[k], s, -1.0, 1.0), rand(&[2, k, n], s + 1, -1.0, 1.0)]),
    _ => check(|v| v[0].matmul(&v[1]), &[rand(&[m, k], s, -1.0, 1.0), rand(&[k], s + 1, -1.0, 1.0)]),
});

// ---- views -------------------------------------------------------------------------------
grad_check!(grad_reshape, (shape_strategy(3), any::<u64>()), |(sh, s)| check(|v| v[0].reshape(&[-1]), &[noncontig(&sh, s)]));
grad_check!(grad_permute, (shape_strategy(3), any::<u64>()), |(sh, s)| {
    let perm: Vec<usize> = (0..sh.len()).rev().collect();
    check(move |v| v[0].permute(&perm), &[rand(&sh, s, -1.0, 1.0)])
});
grad_check!(grad_narrow, (shape_strategy(3), any::<u64>()), |(sh, s)| {
    let len = sh[0].max(2) - 1;
    let mut sh = sh;
    sh[0] = sh[0].max(2);
    check(move |v| v[0].narrow(0, 1, len), &[noncontig(&sh, s)])
});
grad_check!(grad_slice, (shape_strategy(3), any::<u64>()), |(sh, s)| {
    let mut sh = sh;
    *sh.last_mut().unwrap() += 3;
    let end = *sh.last().unwrap();
    check(move |v| v[0].slice(-1, 1, end, 2), &[rand(&sh, s, -1.0, 1.0)])
});
grad_check!(grad_select, (shape_strategy(3), any::<u64>()), |(sh, s)| check(|v| v[0].select(0, 0), &[noncontig(&sh, s)]));
grad_check!(grad_expand, (shape_strategy(2), any::<u64>()), |(sh, s)| {
    let mut target = vec![2];
    target.extend(sh.iter().map(|_| 3));
    let src: Vec<usize> = sh.iter().map(|&d| if d == 1 { 1 } else { 3 }).collect();
    check(move |v| v[0].expand(&target), &[rand(&src, s, -1.0, 1.0)])
});
grad_check!(grad_flip, (shape_strategy(3), any::<u64>()), |(sh, s)| check(|v| v[0].flip(&[0, -1]), &[noncontig(&sh, s)]));
grad_check!(grad_contiguous, (shape_strategy(3), any::<u64>()), |(sh, s)| check(|v| v[0].contiguous(), &[noncontig(&sh, s)]));
// Through f32 and back: inputs that f32 holds exactly and a step of 2^-12 keep every
// evaluation exact (up to a rare binade crossing, far inside the tolerance), so the finite
// differences see the identity the cast's gradient claims.
grad_check!(grad_to_dtype, (shape_strategy(3), any::<u64>()), |(sh, s)| {
    let x = rand(&sh, s, -1.0, 1.0).to_dtype(DType::F32).unwrap().to_dtype(DType::F64).unwrap();
    let f = |v: &[Var]| v[0].to_dtype(DType::F32)?.to_dtype(DType::F64)?.square();
    gradcheck(f, &[x], 2f64.powi(-12), 1e-6, 1e-4).map_err(|e| TestCaseError::fail(e.to_string()))
});

// ---- fused -------------------------------------------------------------------------------
grad_check!(grad_cross_entropy, (1usize..5, 2usize..6, any::<u64>(), prop_oneof![Just(0.0), Just(0.1)]), |(n, c, s, ls)| {
    let t = Generator::new(s).randint(&[n], 0, c as i64).unwrap();
    check(move |v| fused::cross_entropy(&v[0], &t, ls), &[noncontig(&[n, c], s)])
});
grad_check!(grad_cross_entropy_soft, (1usize..5, 2usize..6, any::<u64>()), |(n, c, s)| {
    let q = rand(&[n, c], s + 7, 0.0, 1.0).softmax(-1).unwrap();
    check(move |v| fused::cross_entropy_soft(&v[0], &q), &[rand(&[n, c], s, -2.0, 2.0)])
});
grad_check!(grad_mse_loss, (shape_strategy(3), any::<u64>(), any::<bool>()), |(sh, s, masked)| {
    let mask = masked.then(|| {
        let mut m = Generator::new(s).bernoulli(&sh, 0.6).unwrap().to_vec::<u8>().unwrap();
        m[0] = 1;
        Tensor::from_vec(m, &sh).unwrap()
    });
    check(move |v| fused::mse_loss(&v[0], &v[1], mask.as_ref()), &[noncontig(&sh, s), rand(&sh, s + 1, -1.0, 1.0)])
});
grad_check!(grad_l1_loss, (shape_strategy(3), any::<u64>()), |(sh, s)| {
    let mut m = Generator::new(s).bernoulli(&sh, 0.6).unwrap().to_vec::<u8>().unwrap();
    m[0] = 1;
    let mask = Tensor::from_vec(m, &sh).unwrap();
    let target = rand(&sh, s + 1, -1.0, 1.0);
    let pred = target.add(&away(&sh, s)).unwrap();
    check(move |v| fused::l1_loss(&v[0], &v[1], Some(&mask)), &[pred, target])
});
grad_check!(grad_layer_norm, (1usize..4, 2usize..6, any::<u64>()), |(n, d, s)| check(
    |v| fused::layer_norm(&v[0], Some(&v[1]), Some(&v[2]), 1e-5),
    &[noncontig(&[n, d], s), rand(&[d], s + 1, 0.5, 1.5), rand(&[d], s + 2, -1.0, 1.0)]
));
grad_check!(grad_batch_norm, (2usize..4, 1usize..4, 1usize..3, any::<u64>()), |(n, c, hw, s)| check(
    |v| Ok(fused::batch_norm(&v[0], Some(&v[1]), Some(&v[2]), 1e-5)?.output),
    &[rand(&[n, c, hw, hw], s, -1.0, 1.0), rand(&[c], s + 1, 0.5, 1.5), rand(&[c], s + 2, -1.0, 1.0)]
));
grad_check!(grad_batch_norm_relu, (2usize..4, 1usize..4, 1usize..3, any::<u64>()), |(n, c, hw, s)| {
    let inputs = [rand(&[n, c, hw, hw], s, -1.0, 1.0), rand(&[c], s + 1, 0.5, 1.5), rand(&[c], s + 2, -0.5, 0.5)];
    // Finite differences are meaningless across the ReLU's kink: keep the pre-activations away.
    let st = inputs[0].batch_norm_stats(1e-5).unwrap();
    let pre = inputs[0].batch_norm_apply(&st.mean, &st.rstd, Some(&inputs[1]), Some(&inputs[2])).unwrap();
    prop_assume!(pre.to_vec::<f64>().unwrap().iter().all(|v| v.abs() > 1e-3));
    check(|v| Ok(fused::batch_norm_relu(&v[0], Some(&v[1]), Some(&v[2]), 1e-5)?.output), &inputs)
});

/// The fused op is an optimization only: the same values and gradients as the two ops.
#[test]
fn batch_norm_relu_equals_batch_norm_then_relu() {
    for (shape, seed) in [([4usize, 3, 5, 5], 1u64), ([2, 8, 1, 1], 2), ([3, 2, 4, 6], 3)] {
        let c = shape[1];
        let vals = [rand(&shape, seed, -2.0, 2.0), rand(&[c], seed + 1, 0.5, 1.5), rand(&[c], seed + 2, -1.0, 1.0)];
        let head = rand(&shape, seed + 3, -1.0, 1.0);
        assert_fused_matches_composed(&format!("{shape:?}"), &vals, &head, |v, fused_op| {
            if fused_op {
                fused::batch_norm_relu(&v[0], Some(&v[1]), Some(&v[2]), 1e-5).unwrap().output
            } else {
                fused::batch_norm(&v[0], Some(&v[1]), Some(&v[2]), 1e-5).unwrap().output.relu().unwrap()
            }
        });
    }
}

/// Runs `op(params, fused)` with the fused op and with the composed ops it replaces, each
/// weighted by `head` and summed, and checks that the outputs and every gradient agree.
fn assert_fused_matches_composed(case: &str, vals: &[Tensor], head: &Tensor, op: impl Fn(&[Var], bool) -> Var) {
    let run = |fused_op: bool| {
        let v: Vec<Var> = vals.iter().map(|t| Var::param(t.clone()).unwrap()).collect();
        let y = op(&v, fused_op);
        y.mul(&Var::constant(head.clone())).unwrap().sum_all().unwrap().backward().unwrap();
        let mut out = vec![y.value().to_vec::<f64>().unwrap()];
        out.extend(v.iter().map(|p| p.grad().unwrap().to_vec::<f64>().unwrap()));
        out
    };
    for (i, (a, b)) in run(true).iter().zip(run(false)).enumerate() {
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{case} output/grad {i}: fused {x} vs composed {y}");
        }
    }
}
grad_check!(grad_dropout, (shape_strategy(3), any::<u64>()), |(sh, s)| check(
    move |v| fused::dropout(&v[0], 0.3, &mut Generator::new(s)),
    &[noncontig(&sh, s)]
));
grad_check!(grad_linear, (1usize..5, 1usize..5, 1usize..5, any::<bool>(), any::<u64>()), |(rows, din, dout, with_bias, s)| {
    let inputs = [noncontig(&[rows, din], s), noncontig(&[dout, din], s + 1), rand(&[dout], s + 2, -1.0, 1.0)];
    let n = if with_bias { 3 } else { 2 };
    check(move |v| fused::linear(&v[0], &v[1], v.get(2)), &inputs[..n])
});

/// The fused linear is `x @ wᵀ + b`: the same values and gradients as the two ops (the bias
/// enters the GEMM before the products, so they agree to rounding, not bit for bit).
#[test]
fn linear_equals_matmul_then_add() {
    for (rows, din, dout, seed) in [(7usize, 5usize, 3usize, 1u64), (1, 40, 33, 2), (64, 48, 130, 3)] {
        let vals = [rand(&[rows, din], seed, -2.0, 2.0), rand(&[dout, din], seed + 1, -1.0, 1.0), rand(&[dout], seed + 2, -1.0, 1.0)];
        let head = rand(&[rows, dout], seed + 3, -1.0, 1.0);
        assert_fused_matches_composed(&format!("{rows}x{din}->{dout}"), &vals, &head, |v, fused_op| {
            if fused_op {
                fused::linear(&v[0], &v[1], Some(&v[2])).unwrap()
            } else {
                v[0].matmul(&v[1].t().unwrap()).unwrap().add(&v[2]).unwrap()
            }
        });
    }
}

grad_check!(grad_linear_of_activation, (1usize..5, 1usize..5, 1usize..5, any::<bool>(), 0usize..3, any::<u64>()), |(
    rows,
    din,
    dout,
    with_bias,
    act,
    s,
)| {
    let op = [UnaryOp::GeluErf, UnaryOp::Tanh, UnaryOp::Silu][act];
    let inputs = [noncontig(&[rows, din], s), noncontig(&[dout, din], s + 1), rand(&[dout], s + 2, -1.0, 1.0)];
    let n = if with_bias { 3 } else { 2 };
    check(move |v| fused::linear_of_activation(&v[0], op, &v[1], v.get(2)), &inputs[..n])
});

/// A linear layer of an activation that recomputes the activation in its backward gives
/// the values and gradients of the activation then the linear layer, bit for bit (the same
/// kernels on the same inputs), for an activation whose derivative reads its input (GELU)
/// and one whose derivative reads its output (tanh), in f64 and in f32 (where GELU and its
/// derivative come from one fused pass; 256 × 160 crosses the parallel split).
#[test]
fn linear_of_activation_equals_activation_then_linear() {
    let cases =
        [(7usize, 5usize, 3usize, 1u64, DType::F64), (64, 48, 130, 3, DType::F64), (7, 5, 3, 5, DType::F32), (256, 160, 40, 7, DType::F32)];
    for (rows, din, dout, seed, dtype) in cases {
        let rand = |shape: &[usize], seed, lo, hi| rand(shape, seed, lo, hi).to_dtype(dtype).unwrap();
        for op in [UnaryOp::GeluErf, UnaryOp::Tanh] {
            let vals = [rand(&[rows, din], seed, -2.0, 2.0), rand(&[dout, din], seed + 1, -1.0, 1.0), rand(&[dout], seed + 2, -1.0, 1.0)];
            let head = rand(&[rows, dout], seed + 3, -1.0, 1.0);
            let run = |recompute: bool| {
                let v: Vec<Var> = vals.iter().map(|t| Var::param(t.clone()).unwrap()).collect();
                let y = if recompute {
                    fused::linear_of_activation(&v[0], op, &v[1], Some(&v[2])).unwrap()
                } else {
                    fused::linear(&v[0].unary(op).unwrap(), &v[1], Some(&v[2])).unwrap()
                };
                y.mul(&Var::constant(head.clone())).unwrap().sum_all().unwrap().backward().unwrap();
                let mut out = vec![y.value().to_vec_f64().unwrap()];
                out.extend(v.iter().map(|p| p.grad().unwrap().to_vec_f64().unwrap()));
                out
            };
            assert_eq!(run(true), run(false), "{op:?} {dtype:?} {rows}x{din}->{dout}");
        }
    }
}

/// A linear layer's shapes are checked, naming both.
#[test]
fn linear_rejects_mismatched_shapes() {
    let x = Var::param(rand(&[4, 3], 1, -1.0, 1.0)).unwrap();
    let w = Var::param(rand(&[2, 5], 2, -1.0, 1.0)).unwrap();
    let err = fused::linear(&x, &w, None).unwrap_err().to_string();
    assert!(err.contains("linear") && err.contains("[4, 3]") && err.contains("[2, 5]"), "{err}");
    let w = Var::param(rand(&[2, 3], 2, -1.0, 1.0)).unwrap();
    let b = Var::param(rand(&[3], 3, -1.0, 1.0)).unwrap();
    let err = fused::linear(&x, &w, Some(&b)).unwrap_err().to_string();
    assert!(err.contains("bias") && err.contains("[2]"), "{err}");
}
grad_check!(grad_embedding, (2usize..6, 1usize..4, 1usize..5, any::<u64>()), |(vocab, d, n, s)| {
    let idx = Generator::new(s).randint(&[n, 2], 0, vocab as i64).unwrap();
    check(move |v| fused::embedding(&idx, &v[0]), &[rand(&[vocab, d], s, -1.0, 1.0)])
});
grad_check!(grad_scaled_dot_product_attention, (1usize..3, 1usize..4, 1usize..4, any::<bool>(), any::<bool>(), any::<u64>()), |(
    b,
    l,
    d,
    causal,
    pad,
    s,
)| {
    let mask = pad.then(|| {
        let mut m = vec![0u8; b * l];
        if l > 1 {
            m[l - 1] = 1; // pad the last key of the first sequence
        }
        Tensor::from_vec(m, &[b, l]).unwrap()
    });
    check(
        move |v| fused::scaled_dot_product_attention(&v[0], &v[1], &v[2], causal, mask.as_ref()),
        &[rand(&[b, 2, l, d], s, -1.0, 1.0), rand(&[b, 2, l, d], s + 1, -1.0, 1.0), noncontig(&[b, 2, l, d], s + 2)],
    )
});

grad_check!(grad_scaled_dot_product_attention_packed, (1usize..3, 1usize..4, 1usize..4, any::<bool>(), any::<u64>()), |(
    b,
    l,
    d,
    causal,
    s,
)| {
    // q, k and v stacked on axis 0 as a permuted view, the layout timm's attention splits.
    check(
        move |v| fused::scaled_dot_product_attention_packed(&v[0].permute(&[2, 0, 3, 1, 4])?, causal, None),
        &[rand(&[b, l, 3, 2, d], s, -1.0, 1.0)],
    )
});
grad_check!(grad_multi_head_attention, (1usize..3, 1usize..5, 1usize..3, 1usize..4, any::<bool>(), any::<u64>()), |(
    b,
    l,
    heads,
    d,
    causal,
    s,
)| {
    // The rows of a fused projection, [B, L, 3·D] with D = heads · d; f64 runs the host kernel.
    check(move |v| fused::multi_head_attention(&v[0], heads, causal), &[rand(&[b, l, 3 * heads * d], s, -1.0, 1.0)])
});
// ---- convolution and pooling ---------------------------------------------------------------
/// (N, Cin, H, W, Cout, k, stride, pad, dilation, groups) small enough for gradcheck.
fn conv_case() -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize, usize, usize, usize)> {
    (1usize..3, 1usize..3, 3usize..6, 1usize..3, 1usize..4, 1usize..3, 0usize..2, 1usize..3, 1usize..3)
}
grad_check!(grad_conv2d, (conv_case(), any::<u64>(), any::<bool>()), |((n, cg, h, cog, k, s, p, d, g), seed, with_bias)| {
    let (cin, cout) = (cg * g, cog * g);
    let h = h.max(d * (k - 1) + 1);
    let mut inputs = vec![rand(&[n, cin, h, h + 1], seed, -1.0, 1.0), noncontig(&[cout, cg, k, k], seed + 1)];
    if with_bias {
        inputs.push(rand(&[cout], seed + 2, -1.0, 1.0));
    }
    check(move |v| v[0].conv2d(&v[1], v.get(2), (s, s), (p, p), (d, d), g), &inputs)
});
grad_check!(grad_conv_transpose2d, (conv_case(), any::<u64>()), |((n, cg, h, cog, k, s, p, d, g), seed)| {
    let (cin, cout) = (cg * g, cog * g);
    let op = (s - 1).min(d.max(s) - 1); // output padding must be below stride or dilation
    check(
        move |v| v[0].conv_transpose2d(&v[1], Some(&v[2]), (s, s), (p.min(k - 1), 0), (op, 0), (d, d), g),
        &[rand(&[n, cin, h, h], seed, -1.0, 1.0), rand(&[cin, cog, k, k], seed + 1, -1.0, 1.0), rand(&[cout], seed + 2, -1.0, 1.0)],
    )
});
grad_check!(grad_max_pool2d, (1usize..3, 1usize..3, 2usize..6, 2usize..4, 1usize..3, any::<u64>()), |(n, c, h, k, s, seed)| {
    let h = h.max(k);
    // Distinct values (a shuffled ramp) so no window has a tie at its maximum.
    let numel = n * c * h * h;
    let perm =
        Generator::new(seed).randperm(numel).to_dtype(DType::F64).unwrap().mul_scalar(0.1).unwrap().reshape_to(&[n, c, h, h]).unwrap();
    check(move |v| v[0].max_pool2d((k, k), (s, s), (k / 2, k / 2)), &[perm])
});
grad_check!(grad_avg_pool2d, (1usize..3, 1usize..3, 2usize..6, 1usize..4, 1usize..3, any::<bool>(), any::<u64>()), |(
    n,
    c,
    h,
    k,
    s,
    cip,
    seed,
)| {
    let h = h.max(k);
    check(move |v| v[0].avg_pool2d((k, k), (s, s), (k / 2, k / 2), cip), &[noncontig(&[n, c, h, h], seed)])
});
grad_check!(grad_adaptive_avg_pool2d, (1usize..3, 1usize..3, 1usize..7, 1usize..4, any::<u64>()), |(n, c, h, o, seed)| {
    check(move |v| v[0].adaptive_avg_pool2d((o, o.max(1))), &[rand(&[n, c, h, h + 1], seed, -1.0, 1.0)])
});
grad_check!(grad_unfold, (1usize..3, 1usize..3, 2usize..6, 1usize..3, 1usize..3, 0usize..2, any::<u64>()), |(n, c, h, k, s, p, seed)| {
    let h = h.max(k);
    check(move |v| v[0].unfold((k, k), (s, s), (p, p), (1, 1)), &[noncontig(&[n, c, h, h], seed)])
});
grad_check!(grad_fold, (1usize..3, 1usize..3, 2usize..6, 1usize..3, 1usize..3, any::<u64>()), |(n, c, h, k, s, seed)| {
    let h = h.max(k);
    let l = ((h - k) / s + 1) * ((h - k) / s + 1);
    check(move |v| v[0].fold((h, h), (k, k), (s, s), (0, 0), (1, 1)), &[rand(&[n, c * k * k, l], seed, -1.0, 1.0)])
});

// ---- indexing ------------------------------------------------------------------------------
grad_check!(grad_index_select, (shape_strategy(3), 1usize..5, any::<u64>()), |(sh, k, seed)| {
    let idx = Generator::new(seed).randint(&[k], 0, sh[0] as i64).unwrap();
    check(move |v| v[0].index_select(0, &idx), &[noncontig(&sh, seed)])
});
grad_check!(grad_gather, (1usize..4, 1usize..4, 1usize..4, any::<u64>()), |(a, b, k, seed)| {
    let idx = Generator::new(seed).randint(&[a, k], 0, b as i64).unwrap();
    check(move |v| v[0].gather(1, &idx), &[noncontig(&[a, b], seed)])
});
grad_check!(grad_scatter_add, (1usize..4, 1usize..4, 1usize..4, any::<u64>()), |(a, b, k, seed)| {
    let idx = Generator::new(seed).randint(&[a, k], 0, b as i64).unwrap();
    check(move |v| v[0].scatter_add(1, &idx, &v[1]), &[rand(&[a, b], seed, -1.0, 1.0), rand(&[a, k], seed + 1, -1.0, 1.0)])
});
grad_check!(grad_masked_fill, (broadcast_pair(), any::<u64>()), |((a, b), seed)| {
    let mask = Generator::new(seed).bernoulli(&b, 0.4).unwrap();
    check(move |v| v[0].masked_fill(&mask, -3.0), &[noncontig(&a, seed)])
});

// ---- joining, padding, rotation, tiling -------------------------------------------------------
grad_check!(grad_cat, (shape_strategy(3), 1usize..3, any::<u64>()), |(sh, extra, seed)| {
    let mut other = sh.clone();
    other[0] = extra;
    check(|v| Var::cat(&[&v[0], &v[1]], 0), &[noncontig(&sh, seed), rand(&other, seed + 1, -1.0, 1.0)])
});
grad_check!(grad_stack, (shape_strategy(3), any::<u64>()), |(sh, seed)| check(
    |v| Var::stack(&[&v[0], &v[1]], -1),
    &[noncontig(&sh, seed), rand(&sh, seed + 1, -1.0, 1.0)]
));
grad_check!(grad_pad, (1usize..3, 2usize..5, 2usize..5, 0usize..2, any::<bool>(), any::<u64>()), |(n, h, w, p, reflect, seed)| {
    use tessera::engine::ops::shape::PadMode;
    let mode = if reflect { PadMode::Reflect } else { PadMode::Constant(0.5) };
    check(move |v| v[0].pad(&[(p, 1), (1, p)], mode), &[noncontig(&[n, h, w], seed)])
});
grad_check!(grad_rot90, (shape_strategy(3), -3i64..4, any::<u64>()), |(mut sh, k, seed)| {
    while sh.len() < 2 {
        sh.push(2);
    }
    check(move |v| v[0].rot90(k, (-2, -1)), &[noncontig(&sh, seed)])
});
grad_check!(grad_repeat, (shape_strategy(2), any::<u64>()), |(sh, seed)| {
    let reps: Vec<usize> = std::iter::once(2).chain(sh.iter().map(|_| 2)).collect();
    check(move |v| v[0].repeat(&reps), &[noncontig(&sh, seed)])
});
