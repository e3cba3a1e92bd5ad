//! Times tessera's ops and prints one JSON line per case, for `scripts/compare-torch`, which
//! runs `scripts/torch/bench_ops.py` (the same cases in PyTorch) beside it and joins the two
//! on `key`.
//!
//! Run: `RAYON_NUM_THREADS=2 MATMUL_NUM_THREADS=2 cargo run --release --example bench_ops -- [FILTER...]`
//! (a case runs when its key contains one of the filters, or always without filters).
//!
//! Adding a row: push a [`Case`] in `cases()` and add a case with the same key, shapes and
//! work to `scripts/torch/bench_ops.py`. Both sides use the same timing protocol: one warm-up
//! call, calibrate the calls per sample so a sample lasts at least 50 ms, then up to 15
//! samples within about 2 s (at least 5); report the median and the minimum per call.

use std::hint::black_box;
use std::time::{Duration, Instant};
use tessera::autograd::{fused, Var};
use tessera::engine::{cuda, peak_cpu_bytes, reset_peak_cpu_bytes, DType, Device, Generator, Tensor};

#[path = "../benches/support/memory.rs"]
mod memory;
use memory::peak_rss;

/// What one call of a case costs, to turn times into rates.
enum Work {
    /// Floating-point operations (multiply and add count one each).
    Flops(f64),
    /// Bytes that must be read and written at least once.
    Bytes(f64),
}

/// One timed case. Training cases (forward + backward) also report their peak memory
/// (`--peak KEY`).
struct Case {
    key: String,
    op: &'static str,
    shape: String,
    work: Work,
    run: Box<dyn FnMut()>,
}

/// Where the cases run: `DEVICE=cuda` puts every input on the first GPU (default: cpu).
fn device() -> Device {
    std::env::var("DEVICE").ok().map_or(Device::Cpu, |d| d.parse().expect("DEVICE is cpu, cuda or cuda:N"))
}

fn randn(g: &mut Generator, shape: &[usize]) -> Tensor {
    g.normal_on(shape, 0.0, 1.0, DType::F32, device()).expect("random tensor")
}

/// A parameter initialized like PyTorch's default for a layer with `fan_in` inputs.
fn param(g: &mut Generator, shape: &[usize], fan_in: usize) -> Var {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Var::param(g.uniform_on(shape, -bound, bound, DType::F32, device()).expect("random tensor")).expect("param")
}

/// Forward + backward of the two training cases of the autograd issue: a 3-layer MLP
/// (784-512-512-10, ReLU, cross-entropy) and a small conv net (conv 1→32 3×3 pad 1, ReLU,
/// max-pool 2; conv 32→64 3×3 pad 1, ReLU, max-pool 2; linear 3136→10; cross-entropy), both
/// on a batch of 256. `scripts/torch/bench_ops.py` builds the same two in PyTorch.
fn training_cases(g: &mut Generator, out: &mut Vec<Case>) {
    let batch = 256usize;
    let labels = g.randint(&[batch], 0, 10).expect("labels");
    {
        let x = randn(g, &[batch, 784]);
        let layers: Vec<(Var, Var)> =
            [(784usize, 512usize), (512, 512), (512, 10)].iter().map(|&(i, o)| (param(g, &[i, o], i), param(g, &[o], i))).collect();
        let y = labels.clone();
        let macs = batch * (784 * 512 + 512 * 512 + 512 * 10);
        out.push(Case {
            key: "mlp_784_512_512_10_fwd_bwd".into(),
            op: "MLP fwd+bwd f32",
            shape: "batch 256, 784-512-512-10".into(),
            work: Work::Flops(3.0 * 2.0 * macs as f64),
            run: Box::new(move || {
                let mut h = Var::constant(x.clone());
                for (i, (w, b)) in layers.iter().enumerate() {
                    h = h.matmul(w).and_then(|h| h.add(b)).expect("linear");
                    if i + 1 < layers.len() {
                        h = h.relu().expect("relu");
                    }
                }
                fused::cross_entropy(&h, &y, 0.0).expect("loss").backward().expect("backward");
                for (w, b) in &layers {
                    w.zero_grad();
                    b.zero_grad();
                }
            }),
        });
    }
    {
        let x = randn(g, &[batch, 1, 28, 28]);
        let (w1, b1) = (param(g, &[32, 1, 3, 3], 9), param(g, &[32], 9));
        let (w2, b2) = (param(g, &[64, 32, 3, 3], 288), param(g, &[64], 288));
        let (w3, b3) = (param(g, &[3136, 10], 3136), param(g, &[10], 3136));
        let y = labels;
        let macs = batch * (32 * 9 * 784 + 64 * 288 * 196 + 3136 * 10);
        out.push(Case {
            key: "convnet_b256_1x28x28_fwd_bwd".into(),
            op: "conv net fwd+bwd f32",
            shape: "batch 256, 1x28x28, conv32-pool-conv64-pool-fc10".into(),
            work: Work::Flops(3.0 * 2.0 * macs as f64),
            run: Box::new(move || {
                let block = |h: &Var, w: &Var, b: &Var| -> Var {
                    let h = h.conv2d(w, Some(b), (1, 1), (1, 1), (1, 1), 1).and_then(|h| h.relu()).expect("conv");
                    h.max_pool2d((2, 2), (2, 2), (0, 0)).expect("pool")
                };
                let h = block(&block(&Var::constant(x.clone()), &w1, &b1), &w2, &b2);
                let logits = h.flatten(1, -1).and_then(|h| h.matmul(&w3)).and_then(|h| h.add(&b3)).expect("fc");
                fused::cross_entropy(&logits, &y, 0.0).expect("loss").backward().expect("backward");
                for p in [&w1, &b1, &w2, &b2, &w3, &b3] {
                    p.zero_grad();
                }
            }),
        });
    }
}

/// `--peak KEY`: the memory one first call of a training case takes, in a fresh process
/// (nothing cached yet): the growth of the peak resident set, comparable with PyTorch's,
/// and tessera's own count of tensor bytes alive at the peak.
fn report_peak(key: &str) {
    let mut case = cases().into_iter().find(|c| c.key == key).unwrap_or_else(|| panic!("no case {key}"));
    let rss = peak_rss(true);
    reset_peak_cpu_bytes();
    let live = tessera::engine::live_cpu_bytes();
    (case.run)();
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "{{\"key\": \"{key}\", \"peak_rss_growth_mib\": {:.1}, \"peak_tensor_mib\": {:.1}}}",
        mib(peak_rss(false).saturating_sub(rss)),
        mib(peak_cpu_bytes().saturating_sub(live))
    );
}

fn cases() -> Vec<Case> {
    let mut g = Generator::new(0);
    let mut out = Vec::new();
    training_cases(&mut g, &mut out);
    for (key, n) in [("matmul_256", 256usize), ("matmul_512", 512), ("matmul_1024", 1024)] {
        let (a, b) = (randn(&mut g, &[n, n]), randn(&mut g, &[n, n]));
        out.push(Case {
            key: key.into(),
            op: "matmul f32",
            shape: format!("{n}x{n} @ {n}x{n}"),
            work: Work::Flops(2.0 * (n * n * n) as f64),
            run: Box::new(move || {
                black_box(a.matmul(&b).expect("matmul"));
            }),
        });
    }
    {
        let (n, cin, h, w, cout, k) = (64usize, 64usize, 32usize, 32usize, 64usize, 3usize);
        let (x, wt, bias) = (randn(&mut g, &[n, cin, h, w]), randn(&mut g, &[cout, cin, k, k]), randn(&mut g, &[cout]));
        out.push(Case {
            key: "conv2d_64x64x32x32_k3".into(),
            op: "conv2d f32 fwd",
            shape: format!("[{n},{cin},{h},{w}] * [{cout},{cin},{k},{k}], pad 1"),
            work: Work::Flops(2.0 * (n * cout * h * w * cin * k * k) as f64),
            run: Box::new(move || {
                black_box(x.conv2d(&wt, Some(&bias), (1, 1), (1, 1), (1, 1), 1).expect("conv2d"));
            }),
        });
    }
    resnet18_conv_cases(&mut g, &mut out);
    narrow_conv_cases(&mut g, &mut out);
    {
        let x = randn(&mut g, &[4096, 1024]);
        out.push(Case {
            key: "softmax_4096x1024".into(),
            op: "softmax f32 (last axis)",
            shape: "[4096,1024]".into(),
            work: Work::Bytes(2.0 * 4.0 * x.numel() as f64),
            run: Box::new(move || {
                black_box(x.softmax(-1).expect("softmax"));
            }),
        });
    }
    {
        let (x, row) = (randn(&mut g, &[256, 1024]), randn(&mut g, &[1024]));
        out.push(Case {
            key: "add_256x1024_1024".into(),
            op: "broadcast add f32",
            shape: "[256,1024] + [1024]".into(),
            work: Work::Bytes(4.0 * (2 * x.numel() + row.numel()) as f64),
            run: Box::new(move || {
                black_box(x.add(&row).expect("add"));
            }),
        });
    }
    out
}

/// The convolutions of ResNet-18 with the CIFAR stem (batch 64, 3×32×32 inputs): the 3×3 conv
/// of each stage, the stride-2 entry of stage 2 and its 1×1 downsample, each forward, input
/// gradient (`dx`) and weight gradient (`dw`). Stages 3 and 4 have 8×8 and 4×4 images, so
/// few output pixels per sample share each weight: how a kernel batches samples shows here.
fn resnet18_conv_cases(g: &mut Generator, out: &mut Vec<Case>) {
    // (input channels, size, output channels, kernel, stride, padding)
    let shapes = [
        (64usize, 32usize, 64usize, 3usize, 1usize, 1usize),
        (64, 32, 128, 3, 2, 1),
        (64, 32, 128, 1, 2, 0),
        (128, 16, 128, 3, 1, 1),
        (256, 8, 256, 3, 1, 1),
        (512, 4, 512, 3, 1, 1),
    ];
    conv_cases(g, out, "r18conv", 64, &shapes);
}

/// The convolutions of the default SimCLR model, the narrow ResNet on 1×28×28 images (widths
/// 16/32/64/128, one basic block per stage), at the default batch of 256 pairs (512 images):
/// the stem, each stage's 3×3 convs and its stride-2 entry with its 1×1 downsample.
fn narrow_conv_cases(g: &mut Generator, out: &mut Vec<Case>) {
    let shapes = [
        (1usize, 28usize, 16usize, 3usize, 1usize, 1usize),
        (16, 28, 16, 3, 1, 1),
        (16, 28, 32, 3, 2, 1),
        (16, 28, 32, 1, 2, 0),
        (32, 14, 32, 3, 1, 1),
        (32, 14, 64, 3, 2, 1),
        (32, 14, 64, 1, 2, 0),
        (64, 7, 64, 3, 1, 1),
        (64, 7, 128, 3, 2, 1),
        (64, 7, 128, 1, 2, 0),
        (128, 4, 128, 3, 1, 1),
    ];
    conv_cases(g, out, "narrowconv", 512, &shapes);
}

/// Forward, input gradient (`dx`) and weight gradient (`dw`) of each convolution shape
/// `(input channels, size, output channels, kernel, stride, padding)` on a batch of `n`
/// square images, keyed `{prefix}_{pass}_{cin}x{size}_k{cout}x{kernel}_s{stride}`.
fn conv_cases(g: &mut Generator, out: &mut Vec<Case>, prefix: &str, n: usize, shapes: &[(usize, usize, usize, usize, usize, usize)]) {
    for &(cin, hw, cout, k, s, p) in shapes {
        let x = randn(g, &[n, cin, hw, hw]);
        let wt = randn(g, &[cout, cin, k, k]);
        let oh = (hw + 2 * p - k) / s + 1;
        let gy = randn(g, &[n, cout, oh, oh]);
        let flops = 2.0 * (n * cout * oh * oh * cin * k * k) as f64;
        let name = format!("{cin}x{hw}_k{cout}x{k}_s{s}");
        let shape = format!("[{n},{cin},{hw},{hw}] * [{cout},{cin},{k},{k}], stride {s}, pad {p}");
        let (xa, wa) = (x.clone(), wt.clone());
        out.push(Case {
            key: format!("{prefix}_fwd_{name}"),
            op: "conv2d f32 fwd",
            shape: shape.clone(),
            work: Work::Flops(flops),
            run: Box::new(move || {
                black_box(xa.conv2d(&wa, None, (s, s), (p, p), (1, 1), 1).expect("conv2d"));
            }),
        });
        let (ga, wa, xs) = (gy.clone(), wt.clone(), x.shape().to_vec());
        out.push(Case {
            key: format!("{prefix}_dx_{name}"),
            op: "conv2d f32 input grad",
            shape: shape.clone(),
            work: Work::Flops(flops),
            run: Box::new(move || {
                black_box(ga.conv2d_backward_input(&wa, &xs, (s, s), (p, p), (1, 1), 1).expect("dx"));
            }),
        });
        let ws = wt.shape().to_vec();
        out.push(Case {
            key: format!("{prefix}_dw_{name}"),
            op: "conv2d f32 weight grad",
            shape,
            work: Work::Flops(flops),
            run: Box::new(move || {
                black_box(gy.conv2d_backward_weight(&x, &ws, (s, s), (p, p), (1, 1), 1).expect("dw"));
            }),
        });
    }
}

/// Median and minimum seconds per call, by the protocol in the file comment.
fn time(run: &mut dyn FnMut()) -> (f64, f64) {
    // GPU work is queued: each sample ends by waiting for it, so samples time the kernels.
    let sync = || {
        if let Device::Cuda(i) = device() {
            cuda::synchronize(i).expect("synchronize");
        }
    };
    let run = &mut || {
        run();
        sync();
    };
    run();
    let mut calls = 1usize;
    let sample = |run: &mut dyn FnMut(), calls: usize| {
        let t = Instant::now();
        for _ in 0..calls {
            run();
        }
        t.elapsed()
    };
    let mut first = sample(run, calls);
    while first < Duration::from_millis(50) {
        calls *= 2;
        first = sample(run, calls);
    }
    let samples = ((2.0 / first.as_secs_f64()) as usize).clamp(5, 15);
    let mut per_call: Vec<f64> = (0..samples).map(|_| sample(run, calls).as_secs_f64() / calls as f64).collect();
    per_call.sort_by(f64::total_cmp);
    (per_call[per_call.len() / 2], per_call[0])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, key] = args.as_slice() {
        if flag == "--peak" {
            return report_peak(key);
        }
    }
    let filters = args;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| rayon::current_num_threads().to_string());
    for mut case in cases() {
        if !filters.is_empty() && !filters.iter().any(|f| case.key.contains(f.as_str())) {
            continue;
        }
        let (median, min) = time(&mut case.run);
        let (kind, amount) = match case.work {
            Work::Flops(f) => ("flops", f),
            Work::Bytes(b) => ("bytes", b),
        };
        println!(
            "{{\"key\": \"{}\", \"op\": \"{}\", \"shape\": \"{}\", \"work\": \"{kind}\", \"amount\": {amount}, \"median_ms\": {:.4}, \"min_ms\": {:.4}, \"threads\": \"{threads}\", \"impl\": \"tessera\"}}",
            case.key,
            case.op,
            case.shape,
            median * 1e3,
            min * 1e3
        );
    }
}
