//! Engine kernels on the CPU: f32 matmul (256³, 512³, 1024³), conv2d forward
//! ([64, 64, 32, 32] input, 64 filters of 3×3, padding 1), softmax over [4096, 1024] and the
//! broadcast add [256, 1024] + [1024].
//!
//! Throughput: matmul and conv2d report FLOPs as "elements" (so `Gelem/s` reads GFLOP/s);
//! softmax and add report the bytes they must read and write (GB/s).
//!
//! Run: `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`
//! Threads: rayon's pool (`RAYON_NUM_THREADS`) and matrixmultiply's (`MATMUL_NUM_THREADS`,
//! read once per process) default to the machine's cores.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tessera::engine::{DType, Generator, Tensor};

fn randn(g: &mut Generator, shape: &[usize]) -> Tensor {
    g.normal(shape, 0.0, 1.0, DType::F32).expect("random tensor")
}

fn matmul(c: &mut Criterion) {
    let mut g = Generator::new(0);
    let mut group = c.benchmark_group("matmul_f32");
    for n in [256usize, 512, 1024] {
        let (a, b) = (randn(&mut g, &[n, n]), randn(&mut g, &[n, n]));
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        group.sample_size(if n >= 1024 { 10 } else { 30 });
        group.bench_with_input(BenchmarkId::from_parameter(format!("{n}x{n}x{n}")), &n, |bch, _| {
            bch.iter(|| black_box(a.matmul(&b).expect("matmul")))
        });
    }
    group.finish();
}

fn conv2d(c: &mut Criterion) {
    let mut g = Generator::new(1);
    let (n, cin, h, w, cout, k) = (64usize, 64usize, 32usize, 32usize, 64usize, 3usize);
    let x = randn(&mut g, &[n, cin, h, w]);
    let wt = randn(&mut g, &[cout, cin, k, k]);
    let bias = randn(&mut g, &[cout]);
    let mut group = c.benchmark_group("conv2d_f32");
    // Output is [n, cout, h, w] with padding 1: one multiply-add per output element per
    // input channel and tap.
    group.throughput(Throughput::Elements(2 * (n * cout * h * w * cin * k * k) as u64));
    group.sample_size(10);
    group.bench_function("64x64x32x32_k64x3x3_pad1", |b| {
        b.iter(|| black_box(x.conv2d(&wt, Some(&bias), (1, 1), (1, 1), (1, 1), 1).expect("conv2d")))
    });
    group.finish();
}

fn softmax(c: &mut Criterion) {
    let x = randn(&mut Generator::new(2), &[4096, 1024]);
    let mut group = c.benchmark_group("softmax_f32");
    // Read the input once and write the output once.
    group.throughput(Throughput::Bytes(2 * (x.numel() * 4) as u64));
    group.sample_size(30);
    group.bench_function("4096x1024_last_axis", |b| b.iter(|| black_box(x.softmax(-1).expect("softmax"))));
    group.finish();
}

fn broadcast_add(c: &mut Criterion) {
    let mut g = Generator::new(3);
    let (x, row) = (randn(&mut g, &[256, 1024]), randn(&mut g, &[1024]));
    let mut group = c.benchmark_group("add_f32");
    group.throughput(Throughput::Bytes(((2 * x.numel() + row.numel()) * 4) as u64));
    group.bench_function("256x1024_plus_1024", |b| b.iter(|| black_box(x.add(&row).expect("add"))));
    group.finish();
}

criterion_group!(benches, matmul, conv2d, softmax, broadcast_add);
criterion_main!(benches);
