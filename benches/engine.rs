//! Engine kernels on the CPU: f32 matmul (256³, 512³, 1024³); the f32 GEMM itself under
//! each implementation this CPU runs (tessera's AVX-512 kernel and `matrixmultiply`, side by
//! side in one run) at 1024³ and at the products ViT-Tiny and the ResNets' im2col make;
//! conv2d forward
//! ([64, 64, 32, 32] input, 64 filters of 3×3, padding 1), softmax over [4096, 1024] and the
//! broadcast add [256, 1024] + [1024]; and the forward, input-gradient and weight-gradient
//! convolutions of the narrow ResNet (batch 256, 28×28 inputs, widths 16–128).
//!
//! Throughput: matmul and conv2d report FLOPs as "elements" (so `Gelem/s` reads GFLOP/s);
//! softmax and add report the bytes they must read and write (GB/s).
//!
//! Run: `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`
//! Threads: rayon's pool (`RAYON_NUM_THREADS`) and matrixmultiply's (`MATMUL_NUM_THREADS`,
//! read once per process) default to the machine's cores.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tessera::engine::cpu::gemm::{self, Gemm, GemmIsa, MatRef};
use tessera::engine::half;
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

/// An operand of a GEMM case: row-major, or stored transposed (a linear layer's `x·Wᵀ`
/// reads its weight that way, its weight gradient `dyᵀ·x` the output gradient).
#[derive(Clone, Copy)]
enum Stored {
    Rows,
    Transposed,
}

impl Stored {
    /// The `rows × cols` matrix stored in `data` this way.
    fn view<T>(self, data: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
        match self {
            Stored::Rows => MatRef { data, offset: 0, rs: cols as isize, cs: 1 },
            Stored::Transposed => MatRef { data, offset: 0, rs: 1, cs: rows as isize },
        }
    }
}

/// `[m, k] × [k, n]` in f32 through `Gemm::gemm_with` for each implementation, so the
/// figures of one run compare them directly (`gemm_f32/<shape>/<isa>`), and beside them the
/// same product of the operands rounded to bf16 on each bf16 kernel the CPU has (`…/bf16amx`
/// on AMX tiles, `…/bf16dot` on AVX-512 BF16 dot products; f32 output). Shapes: 1024³; ViT-Tiny
/// at batch 64 (3136 = 64·49 tokens; 768 = 64·12, the quarter MAE's encoder sees) in its
/// linear layers forward (`x·Wᵀ`) and weight gradients (`dyᵀ·x`: the projection's and both
/// MLP layers'); one attention head (49
/// tokens, head dim 16: `q·kᵀ` and `p·v`); the narrow ResNet's 3×3 convolutions as im2col
/// GEMMs `[C_out, C_in·9] × [C_in·9, H·W]` of one sample.
fn gemm_isas(c: &mut Criterion) {
    use Stored::*;
    let cases: [(&str, usize, usize, usize, Stored, Stored); 15] = [
        ("square", 1024, 1024, 1024, Rows, Rows),
        ("vit_qkv", 3136, 192, 576, Rows, Transposed),
        ("vit_mlp_up", 3136, 192, 768, Rows, Transposed),
        ("vit_mlp_down", 3136, 768, 192, Rows, Transposed),
        ("vit_proj_dw", 192, 3136, 192, Transposed, Rows),
        ("vit_mlp_up_dw", 768, 3136, 192, Transposed, Rows),
        ("vit_mlp_down_dw", 192, 3136, 768, Transposed, Rows),
        ("vit_mlp_dx", 3136, 768, 192, Rows, Rows),
        ("mae_qkv", 768, 192, 576, Rows, Transposed),
        ("attn_qk", 49, 16, 49, Rows, Transposed),
        ("attn_pv", 49, 49, 16, Rows, Rows),
        ("im2col_c16", 16, 144, 784, Rows, Rows),
        ("im2col_c32", 32, 288, 196, Rows, Rows),
        ("im2col_c64", 64, 576, 49, Rows, Rows),
        ("im2col_c128", 128, 1152, 16, Rows, Rows),
    ];
    let mut g = Generator::new(5);
    let mut group = c.benchmark_group("gemm_f32");
    group.sample_size(10);
    for (name, m, k, n, sa, sb) in cases {
        let (a, b) = (randn(&mut g, &[m * k]).to_vec::<f32>().expect("a"), randn(&mut g, &[k * n]).to_vec::<f32>().expect("b"));
        let mut out = vec![0f32; m * n];
        group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        for isa in GemmIsa::available() {
            let id = BenchmarkId::new(format!("{name}_{m}x{k}x{n}"), format!("{isa:?}").to_lowercase());
            group.bench_function(id, |bch| {
                bch.iter(|| f32::gemm_with(isa, m, k, n, 1.0, sa.view(&a, m, k), sb.view(&b, k, n), 0.0, black_box(&mut out), n))
            });
        }
        let half = |v: &[f32]| v.iter().map(|&x| half::bf16::from_f32(x)).collect::<Vec<_>>();
        let (ah, bh) = (half(&a), half(&b));
        for &kernel in gemm::Bf16Kernel::available() {
            let id = BenchmarkId::new(format!("{name}_{m}x{k}x{n}"), format!("bf16{kernel:?}").to_lowercase());
            // SAFETY: f32 and MaybeUninit<f32> share their layout.
            let out = unsafe { &mut *(&mut out[..] as *mut [f32] as *mut [std::mem::MaybeUninit<f32>]) };
            group.bench_function(id, |bch| {
                bch.iter(|| gemm::gemm_bf16_on(kernel, m, k, n, sa.view(&ah, m, k), sb.view(&bh, k, n), black_box(&mut *out), n))
            });
        }
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

/// The convolutions of the narrow ResNet the SimCLR preset trains on 28×28 Fashion-MNIST
/// (batch 256): forward, input gradient and weight gradient of each 3×3 conv shape, and the
/// 1×1 stride-2 downsample of stage 2.
fn conv2d_resnet_narrow(c: &mut Criterion) {
    let mut g = Generator::new(4);
    let n = 256usize;
    // (input channels, size, output channels, kernel, stride, padding)
    let shapes = [
        (16usize, 28usize, 16usize, 3usize, 1usize, 1usize),
        (16, 28, 32, 3, 2, 1),
        (16, 28, 32, 1, 2, 0),
        (32, 14, 32, 3, 1, 1),
        (64, 7, 64, 3, 1, 1),
        (128, 4, 128, 3, 1, 1),
    ];
    let mut group = c.benchmark_group("conv2d_resnet_narrow_f32");
    group.sample_size(10);
    for (cin, hw, cout, k, s, p) in shapes {
        let x = randn(&mut g, &[n, cin, hw, hw]);
        let wt = randn(&mut g, &[cout, cin, k, k]);
        let y = x.conv2d(&wt, None, (s, s), (p, p), (1, 1), 1).expect("conv2d");
        let gy = randn(&mut g, y.shape());
        let ohw = y.shape()[2] * y.shape()[3];
        group.throughput(Throughput::Elements(2 * (n * cout * ohw * cin * k * k) as u64));
        let name = format!("{cin}x{hw}x{hw}_k{cout}x{k}x{k}_s{s}");
        group.bench_function(format!("fwd/{name}"), |b| {
            b.iter(|| black_box(x.conv2d(&wt, None, (s, s), (p, p), (1, 1), 1).expect("conv2d")))
        });
        group.bench_function(format!("dx/{name}"), |b| {
            b.iter(|| black_box(gy.conv2d_backward_input(&wt, x.shape(), (s, s), (p, p), (1, 1), 1).expect("dx")))
        });
        group.bench_function(format!("dw/{name}"), |b| {
            b.iter(|| black_box(gy.conv2d_backward_weight(&x, wt.shape(), (s, s), (p, p), (1, 1), 1).expect("dw")))
        });
    }
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

/// Training-mode batch norm (+ ReLU) at the narrow ResNet's shapes (two views of 64 images):
/// statistics and the normalized output, and the fused backward (dx, dweight, dbias).
fn batch_norm(c: &mut Criterion) {
    let mut g = Generator::new(4);
    let mut group = c.benchmark_group("batch_norm_relu_f32");
    group.sample_size(20);
    for shape in [[128, 16, 28, 28], [128, 64, 7, 7]] {
        let (x, grad) = (randn(&mut g, &shape), randn(&mut g, &shape));
        let (w, b) = (randn(&mut g, &shape[1..2]), randn(&mut g, &shape[1..2]));
        let label = format!("{}x{}x{}x{}", shape[0], shape[1], shape[2], shape[3]);
        group.throughput(Throughput::Bytes((x.numel() * 4) as u64));
        group.bench_function(format!("forward/{label}"), |bch| {
            bch.iter(|| {
                let st = x.batch_norm_stats(1e-5).expect("stats");
                black_box(x.batch_norm_relu_apply(&st.mean, &st.rstd, Some(&w), Some(&b)).expect("apply"))
            })
        });
        let st = x.batch_norm_stats(1e-5).expect("stats");
        group.bench_function(format!("backward/{label}"), |bch| {
            bch.iter(|| black_box(x.batch_norm_relu_backward(&grad, &st.mean, &st.rstd, Some(&w), Some(&b)).expect("backward")))
        });
    }
    group.finish();
}

/// Layer norm over ViT-Tiny's width at its token count (256 images × 50 tokens × 192),
/// forward and backward (dx and x̂).
fn layer_norm(c: &mut Criterion) {
    let mut g = Generator::new(5);
    let shape = [256 * 50, 192];
    let (x, grad) = (randn(&mut g, &shape), randn(&mut g, &shape));
    let (w, b) = (randn(&mut g, &shape[1..]), randn(&mut g, &shape[1..]));
    let mut group = c.benchmark_group("layer_norm_f32");
    group.sample_size(20);
    group.throughput(Throughput::Bytes((x.numel() * 4) as u64));
    group.bench_function("forward/12800x192", |bch| bch.iter(|| black_box(x.layer_norm(Some(&w), Some(&b), 1e-6).expect("layer_norm"))));
    let (_, mean, rstd) = x.layer_norm(Some(&w), Some(&b), 1e-6).expect("layer_norm");
    group.bench_function("backward/12800x192", |bch| {
        bch.iter(|| black_box(x.layer_norm_backward(&grad, &mean, &rstd, Some(&w)).expect("layer_norm_backward")))
    });
    group.finish();
}

/// A linear layer's bias gradient at the MAE decoder's MLP (256 images × 49 tokens, 1,024
/// features): the sum over the rows, which runs down the columns in memory order, against the
/// same sum over the last axis of the transposed matrix (contiguous rows).
fn sum_rows(c: &mut Criterion) {
    let mut g = Generator::new(6);
    let x = randn(&mut g, &[256 * 49, 1024]);
    let xt = x.t().expect("t").contiguous().expect("contiguous");
    let mut group = c.benchmark_group("sum_f32");
    group.sample_size(20);
    group.throughput(Throughput::Bytes((x.numel() * 4) as u64));
    group.bench_function("12544x1024_over_rows", |b| b.iter(|| black_box(x.sum(&[0], false).expect("sum"))));
    group.bench_function("1024x12544_over_last_axis", |b| b.iter(|| black_box(xt.sum(&[1], false).expect("sum"))));
    group.finish();
}

criterion_group!(benches, matmul, gemm_isas, conv2d, conv2d_resnet_narrow, softmax, broadcast_add, batch_norm, layer_norm, sum_rows);
criterion_main!(benches);
