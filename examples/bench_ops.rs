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
use tessera::engine::{DType, Generator, Tensor};

/// What one call of a case costs, to turn times into rates.
enum Work {
    /// Floating-point operations (multiply and add count one each).
    Flops(f64),
    /// Bytes that must be read and written at least once.
    Bytes(f64),
}

struct Case {
    key: &'static str,
    op: &'static str,
    shape: String,
    work: Work,
    run: Box<dyn FnMut()>,
}

fn randn(g: &mut Generator, shape: &[usize]) -> Tensor {
    g.normal(shape, 0.0, 1.0, DType::F32).expect("random tensor")
}

fn cases() -> Vec<Case> {
    let mut g = Generator::new(0);
    let mut out = Vec::new();
    for (key, n) in [("matmul_256", 256usize), ("matmul_512", 512), ("matmul_1024", 1024)] {
        let (a, b) = (randn(&mut g, &[n, n]), randn(&mut g, &[n, n]));
        out.push(Case {
            key,
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
            key: "conv2d_64x64x32x32_k3",
            op: "conv2d f32 fwd",
            shape: format!("[{n},{cin},{h},{w}] * [{cout},{cin},{k},{k}], pad 1"),
            work: Work::Flops(2.0 * (n * cout * h * w * cin * k * k) as f64),
            run: Box::new(move || {
                black_box(x.conv2d(&wt, Some(&bias), (1, 1), (1, 1), (1, 1), 1).expect("conv2d"));
            }),
        });
    }
    {
        let x = randn(&mut g, &[4096, 1024]);
        out.push(Case {
            key: "softmax_4096x1024",
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
            key: "add_256x1024_1024",
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

/// Median and minimum seconds per call, by the protocol in the file comment.
fn time(run: &mut dyn FnMut()) -> (f64, f64) {
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
    let filters: Vec<String> = std::env::args().skip(1).collect();
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
