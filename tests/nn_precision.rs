//! Whole models' f32 gradients against the same weights in f64. The gradient checks run in
//! f64, so they never reach the f32-only kernels (SIMD loops, blocked GEMM panels); a model
//! wide enough to use those, differentiated in both precisions, must agree to f32 rounding.

use tessera::autograd::Var;
use tessera::engine::{DType, Generator};
use tessera::ssl::nn::{Module, Pool, VisionTransformer, VitConfig};

/// ‖a − b‖ / ‖b‖.
fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

#[test]
fn vit_gradients_in_f32_match_f64_for_both_pools() {
    for pool in [Pool::Token, Pool::Mean] {
        let cfg = VitConfig { depth: 2, pool, ..VitConfig::tiny(28, 4).with_in_channels(1) };
        let x = Generator::new(1).normal(&[4, 1, 28, 28], 0.0, 1.0, DType::F64).unwrap();
        let weights = Generator::new(2).normal(&[4, 192], 0.0, 1.0, DType::F64).unwrap();
        let grads = |dtype: DType| {
            let vit = VisionTransformer::new(&cfg, &mut Generator::new(3)).unwrap();
            vit.to_dtype(dtype).unwrap();
            let y = vit.forward(&Var::constant(x.to_dtype(dtype).unwrap())).unwrap();
            let loss = y.mul(&Var::constant(weights.to_dtype(dtype).unwrap())).unwrap().sum_all().unwrap();
            loss.backward().unwrap();
            vit.named_parameters().into_iter().map(|(n, p)| (n, p.grad().unwrap().to_vec_f64().unwrap())).collect::<Vec<_>>()
        };
        for ((name, g32), (_, g64)) in grads(DType::F32).iter().zip(grads(DType::F64)) {
            let e = relative_error(g32, &g64);
            assert!(e < 1e-5, "{pool:?} {name}: f32 gradient differs from f64 by {e:.2e}");
        }
    }
}
