//! Property gradchecks (f64, central differences) of every differentiable op and loss that
//! lives in `ssl` rather than in the autograd crate. `autograd_coverage.rs` fails when an op
//! recorded in `ssl/src` or a loss in `methods::LOSSES` has no `grad_check!(grad_<name>, ...)`
//! here.

use proptest::prelude::*;
use tessera::autograd::{gradcheck, Var};
use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::methods::{colorization_loss, contrastive_loss, moco_infonce, nt_xent};
use tessera::ssl::nn::functional::{batch_norm_eval, cat};

fn normal(shape: &[usize], seed: u64) -> Tensor {
    Generator::new(seed).normal(shape, 0.0, 1.0, DType::F64).unwrap()
}

/// Rows of unit length, as MoCo's keys and queue entries are.
fn unit_rows(shape: &[usize], seed: u64) -> Tensor {
    let t = normal(shape, seed);
    t.div(&t.square().unwrap().sum(&[1], true).unwrap().sqrt().unwrap()).unwrap()
}

fn check(f: impl Fn(&[Var]) -> tessera::autograd::Result<Var>, inputs: &[Tensor]) -> Result<(), TestCaseError> {
    gradcheck(f, inputs, 1e-6, 1e-6, 1e-5).map_err(|e| TestCaseError::fail(e.to_string()))
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

grad_check!(grad_cat, (1usize..4, 1usize..4, 1usize..4, 0isize..2, any::<u64>()), |(a, b, c, axis, s)| {
    let (sa, sb) = if axis == 0 { ([a, c], [b, c]) } else { ([c, a], [c, b]) };
    check(|v| cat(&[&v[0], &v[1]], axis), &[normal(&sa, s), normal(&sb, s + 1)])
});

grad_check!(grad_batch_norm_eval, (1usize..4, 1usize..4, any::<u64>()), |(n, c, s)| {
    let mean = normal(&[c], s + 3);
    let var = normal(&[c], s + 4).square().unwrap().add_scalar(0.5).unwrap();
    check(
        |v| batch_norm_eval(&v[0], &mean, &var, Some(&v[1]), Some(&v[2]), 1e-5),
        &[normal(&[n, c, 2], s), normal(&[c], s + 1), normal(&[c], s + 2)],
    )
});

grad_check!(grad_nt_xent, (1usize..4, 1usize..5, 0.1f64..1.0, any::<u64>()), |(n, d, tau, s)| {
    check(|v| nt_xent(&v[0], tau), &[normal(&[2 * n, d], s)])
});

grad_check!(grad_moco_infonce, (1usize..4, 1usize..5, 1usize..6, 0.1f64..1.0, any::<u64>()), |(n, d, k, tau, s)| {
    let (keys, queue) = (unit_rows(&[n, d], s + 1), unit_rows(&[k, d], s + 2));
    check(|v| moco_infonce(&v[0], &keys, &queue, tau), &[normal(&[n, d], s)])
});

grad_check!(grad_contrastive_loss, (1usize..5, 1usize..5, 0.1f64..1.0, any::<u64>()), |(n, d, tau, s)| {
    let keys = normal(&[n, d], s + 1);
    check(|v| contrastive_loss(&v[0], &keys, tau), &[normal(&[n, d], s)])
});

grad_check!(grad_colorization_loss, (1usize..5, 2usize..6, any::<u64>()), |(n, q, s)| {
    // Soft targets (rows summing to 1) and positive per-pixel weights, as colorization makes them.
    let targets = normal(&[n, q], s + 1).softmax(-1).unwrap();
    let weights = normal(&[n], s + 2).exp().unwrap();
    check(|v| colorization_loss(&v[0], &targets, &weights), &[normal(&[n, q], s)])
});
