//! Property gradchecks (f64, central differences) of every differentiable op and loss that
//! lives in `ssl` rather than in the autograd crate. `autograd_coverage.rs` fails when an op
//! recorded in `ssl/src` or a loss in `methods::LOSSES` has no `grad_check!(grad_<name>, ...)`
//! here.

use proptest::prelude::*;
use tessera::autograd::{gradcheck, Var};
use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::methods::{clip_loss, colorization_loss, contrastive_loss, mae_loss, moco_infonce, nt_xent, simmim_loss};
use tessera::ssl::nn::functional::batch_norm_eval;

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

/// A 0/1 mask `[n, l]` with at least one 1 per row, as masked image modelling draws.
fn patch_mask(n: usize, l: usize, seed: u64) -> Tensor {
    let mut g = Generator::new(seed);
    let v: Vec<f64> = (0..n * l).map(|i| if i % l == 0 || g.next_f64() < 0.5 { 1.0 } else { 0.0 }).collect();
    Tensor::from_vec(v, &[n, l]).unwrap()
}

// MAE's loss by the predictions and by the images (whose normalized patches are the target),
// with and without per-patch normalization; patch 2 on 4×4 (or 2×4) images of 1–2 channels.
grad_check!(grad_mae_loss, (1usize..3, 1usize..3, 1usize..3, any::<bool>(), any::<u64>()), |(n, c, rows, norm, s)| {
    let (h, w, p) = (2 * rows, 4, 2);
    let l = (h / p) * (w / p);
    let mask = patch_mask(n, l, s + 2);
    check(|v| mae_loss(&v[0], &v[1], &mask, p, norm), &[normal(&[n, c, h, w], s), normal(&[n, l, p * p * c], s + 1)])
});

grad_check!(grad_simmim_loss, (1usize..3, 1usize..3, 1usize..4, any::<u64>()), |(n, c, side, s)| {
    let mask = patch_mask(n, side * side, s + 2).reshape(&[n as isize, 1, side as isize, side as isize]).unwrap();
    // Away from |x − x̂| = 0, where L1 has no derivative.
    let x = normal(&[n, c, side, side], s);
    let recon = x.add(&normal(&[n, c, side, side], s + 1).sign().unwrap().mul_scalar(0.5).unwrap()).unwrap();
    check(|v| simmim_loss(&v[0], &v[1], &mask), &[x.clone(), recon.clone()])
});

// The log scale is an input too: its gradient is checked with the features'.
grad_check!(grad_clip_loss, (1usize..5, 1usize..5, -1.0f64..4.6, any::<u64>()), |(n, d, s_value, s)| {
    check(|v| clip_loss(&v[0], &v[1], &v[2]), &[normal(&[n, d], s), normal(&[n, d], s + 1), Tensor::scalar(s_value)])
});

grad_check!(grad_colorization_loss, (1usize..5, 2usize..6, any::<u64>()), |(n, q, s)| {
    // Soft targets (rows summing to 1) and positive per-pixel weights, as colorization makes them.
    let targets = normal(&[n, q], s + 1).softmax(-1).unwrap();
    let weights = normal(&[n], s + 2).exp().unwrap();
    check(|v| colorization_loss(&v[0], &targets, &weights), &[normal(&[n, q], s)])
});
