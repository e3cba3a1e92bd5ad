//! GPU matmul throughput: an n×n by n×n product (n = 4096) in f32 under each matmul
//! precision (exact FP32, TF32 and bf16 tensor cores), of bf16 and of f16 tensors
//! (`bf16-native`, `f16-native`: their tensor cores, result in their dtype; cuBLAS's
//! counterparts are scripts/torch/gemm.py's `bf16` and `f16`), and in f64, one line each:
//!
//!     gemm 4096 fp32 <TFLOP/s>
//!
//! Each is timed over `GEMM_ITERS` products (default 20) after 3 warm-up ones, between two
//! device synchronizations. On stderr, how far the TF32, bf16, bf16-native and f16-native
//! results are from the exact one (that of the f32 inputs, which the half tensors round).
//! Where no GPU is found it prints a skip line and exits 0.
//!
//! Run: `cargo bench --bench gpu_gemm` (`GEMM_N` changes the size; `GEMM_VARIANTS=_s4,_w8`
//! adds the TF32 / bf16 kernel shapes that are tuning candidates).

use std::time::Instant;
use tessera::engine::cuda::{self, MatmulPrecision};
use tessera::engine::{DType, Device, Generator, Tensor};

const WARM_UP: usize = 3;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Seconds per `a @ b`, averaged over `iters` queued products.
fn seconds_per_matmul(a: &Tensor, b: &Tensor, iters: usize) -> f64 {
    for _ in 0..WARM_UP {
        a.matmul(b).expect("matmul");
    }
    cuda::synchronize(0).expect("synchronize");
    let start = Instant::now();
    for _ in 0..iters {
        a.matmul(b).expect("matmul");
    }
    cuda::synchronize(0).expect("synchronize");
    start.elapsed().as_secs_f64() / iters as f64
}

/// The largest |x - exact| over all elements, and the largest |exact|.
fn max_error(x: &Tensor, exact: &[f32]) -> (f64, f64) {
    let x = x.to_vec::<f32>().expect("download");
    let err = x.iter().zip(exact).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
    (err, exact.iter().map(|v| v.abs() as f64).fold(0.0, f64::max))
}

fn main() {
    if !cuda::is_available() {
        println!("gemm skipped: no CUDA driver or GPU was found on this machine");
        return;
    }
    let (n, iters) = (env_usize("GEMM_N", 4096), env_usize("GEMM_ITERS", 20).max(1));
    let name = cuda::device_name(0).unwrap_or_default();
    eprintln!("{name}: {n}×{n} @ {n}×{n}, {iters} iterations");
    let dev = Device::Cuda(0);
    let mut g = Generator::new(0);
    let mut uniform = || g.uniform(&[n, n], -1.0, 1.0, DType::F32).expect("random tensor").to_device(dev).expect("upload");
    let (a, b) = (uniform(), uniform());
    let flops = 2.0 * (n as f64).powi(3);

    let mut exact: Vec<f32> = Vec::new();
    for (label, precision) in [("fp32", MatmulPrecision::Highest), ("tf32", MatmulPrecision::High), ("bf16", MatmulPrecision::Bf16)] {
        cuda::set_matmul_precision(precision);
        let secs = seconds_per_matmul(&a, &b, iters);
        println!("gemm {n} {label} {:.2}", flops / secs / 1e12);
        let c = a.matmul(&b).expect("matmul");
        if precision == MatmulPrecision::Highest {
            exact = c.to_vec::<f32>().expect("download");
        } else {
            let (err, scale) = max_error(&c, &exact);
            eprintln!("{label}: max |{label} - fp32| = {err:.3e} (max |fp32| = {scale:.3e})");
        }
    }
    // bf16 / f16 tensors, rounded from the f32 ones on the GPU. Both row-major: A is read
    // in place, B (N-contiguous) is packed K-contiguous in each product, as part of its time.
    for (label, dtype) in [("bf16-native", DType::BF16), ("f16-native", DType::F16)] {
        let (ah, bh) = (a.to_dtype(dtype).expect("to half"), b.to_dtype(dtype).expect("to half"));
        let secs = seconds_per_matmul(&ah, &bh, iters);
        println!("gemm {n} {label} {:.2}", flops / secs / 1e12);
        let c = ah.matmul(&bh).expect("matmul").to_dtype(DType::F32).expect("to f32");
        let (err, scale) = max_error(&c, &exact);
        eprintln!("{label}: max |{label} - fp32| = {err:.3e} (max |fp32| = {scale:.3e})");
    }
    // Other tensor-core kernel shapes (engine/src/cuda/matmul.rs, TcKernel), for tuning:
    // GEMM_VARIANTS=_s4,_w8 adds a line per shape and precision.
    if let Ok(variants) = std::env::var("GEMM_VARIANTS") {
        for v in variants.split(',') {
            std::env::set_var("TESSERA_GEMM_VARIANT", v);
            for (label, precision) in [("tf32", MatmulPrecision::High), ("bf16", MatmulPrecision::Bf16)] {
                cuda::set_matmul_precision(precision);
                let secs = seconds_per_matmul(&a, &b, iters);
                println!("gemm {n} {label}{v} {:.2}", flops / secs / 1e12);
            }
        }
        std::env::remove_var("TESSERA_GEMM_VARIANT");
    }
    cuda::set_matmul_precision(MatmulPrecision::Highest);

    let (a64, b64) = (a.to_dtype(DType::F64).expect("to f64"), b.to_dtype(DType::F64).expect("to f64"));
    let secs = seconds_per_matmul(&a64, &b64, iters);
    println!("gemm {n} fp64 {:.2}", flops / secs / 1e12);
}
