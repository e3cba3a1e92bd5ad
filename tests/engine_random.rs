//! Seeded random tensors: ranges, moments and rates, permutations, reproducibility (same
//! seed same bits, different seeds or successive draws differ) and the counter design.

mod common;

use tessera::engine::{DType, Device, Generator, Tensor};

/// Large enough for the parallel generation path and for tight statistical bounds.
const N: usize = 200_000;

fn stats(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec_f64().unwrap().iter().map(|x| x.to_bits()).collect()
}

/// Every kind of draw, in order, from one generator.
fn draws(g: &mut Generator) -> Vec<Tensor> {
    vec![
        g.uniform(&[N], -1.0, 2.0, DType::F32).unwrap(),
        g.uniform(&[3, 5], 0.0, 1.0, DType::F64).unwrap(),
        g.normal(&[N], 0.0, 1.0, DType::F64).unwrap(),
        g.trunc_normal(&[1000], 0.0, 1.0, -2.0, 2.0, DType::F32).unwrap(),
        g.bernoulli(&[N], 0.3).unwrap(),
        g.randint(&[N], -5, 17).unwrap(),
        g.randperm(1000),
    ]
}

#[test]
fn same_seed_gives_the_same_bits() {
    let (a, b) = (draws(&mut Generator::new(42)), draws(&mut Generator::new(42)));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(bits(x), bits(y), "draw {i}");
        assert_eq!((x.shape(), x.dtype()), (y.shape(), y.dtype()));
    }
}

#[test]
fn different_seeds_and_successive_draws_differ() {
    let (a, b) = (draws(&mut Generator::new(1)), draws(&mut Generator::new(2)));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_ne!(bits(x), bits(y), "draw {i} under seeds 1 and 2");
    }
    let mut g = Generator::new(7);
    let (x, y) = (g.normal(&[64], 0.0, 1.0, DType::F64).unwrap(), g.normal(&[64], 0.0, 1.0, DType::F64).unwrap());
    assert_ne!(bits(&x), bits(&y));
    let (p, q) = (g.randperm(50), g.randperm(50));
    assert_ne!(p.to_vec::<i64>().unwrap(), q.to_vec::<i64>().unwrap());
}

#[test]
fn draws_are_counter_based() {
    // Element i of a draw depends only on (seed, counter + i): two draws of 10 and 5 values
    // are one draw of 15, and a clone replays the stream.
    let mut g = Generator::new(99);
    let mut h = g.clone();
    let (a, b) = (g.uniform(&[10], 0.0, 1.0, DType::F64).unwrap(), g.uniform(&[5], 0.0, 1.0, DType::F64).unwrap());
    let whole = h.uniform(&[15], 0.0, 1.0, DType::F64).unwrap().to_vec::<f64>().unwrap();
    assert_eq!([a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap()].concat(), whole);
    assert_eq!(g, h);
    // Forks are independent of each other and of the parent, and reproducible.
    let base = Generator::new(5);
    let f = |s| base.fork(s).uniform(&[32], 0.0, 1.0, DType::F64).unwrap();
    assert_eq!(bits(&f(1)), bits(&f(1)));
    assert_ne!(bits(&f(1)), bits(&f(2)));
    assert_ne!(bits(&f(0)), bits(&base.clone().uniform(&[32], 0.0, 1.0, DType::F64).unwrap()));
}

#[test]
fn uniform_range_and_moments() {
    let (lo, hi) = (-2.0, 5.0);
    for dtype in [DType::F64, DType::F32] {
        let t = Generator::new(3).uniform(&[N], lo, hi, dtype).unwrap();
        assert_eq!((t.shape(), t.dtype()), (&[N][..], dtype));
        let v = t.to_vec_f64().unwrap();
        // f64 values lie in [lo, hi); in f32 a value within rounding of `hi` may round to it.
        assert!(v.iter().all(|&x| x >= lo && (x < hi || dtype == DType::F32 && x == hi)));
        let (mean, std) = stats(&v);
        let (m0, s0) = ((lo + hi) / 2.0, (hi - lo) / 12f64.sqrt());
        assert!((mean - m0).abs() < 5.0 * s0 / (N as f64).sqrt(), "mean {mean}");
        assert!((std - s0).abs() < 0.01 * s0, "std {std}");
        // Each tenth of the range gets a tenth of the values.
        for b in 0..10 {
            let frac = v.iter().filter(|&&x| ((x - lo) / (hi - lo) * 10.0).floor() as usize == b).count() as f64 / N as f64;
            assert!((frac - 0.1).abs() < 0.004, "bin {b}: {frac}");
        }
    }
    assert!(Generator::new(0).uniform(&[10], 1.5, 1.5, DType::F64).unwrap().to_vec::<f64>().unwrap().iter().all(|&x| x == 1.5));
}

#[test]
fn normal_mean_and_std() {
    let t = Generator::new(11).normal(&[N], 1.5, 2.0, DType::F32).unwrap();
    let v = t.to_vec_f64().unwrap();
    let (mean, std) = stats(&v);
    assert!((mean - 1.5).abs() < 5.0 * 2.0 / (N as f64).sqrt(), "mean {mean}");
    assert!((std - 2.0).abs() < 0.02, "std {std}");
    let within_one = v.iter().filter(|&&x| (x - 1.5).abs() < 2.0).count() as f64 / N as f64;
    assert!((within_one - 0.682_689).abs() < 0.005, "P(|z| < 1) = {within_one}");
    let within_two = v.iter().filter(|&&x| (x - 1.5).abs() < 4.0).count() as f64 / N as f64;
    assert!((within_two - 0.954_500).abs() < 0.003, "P(|z| < 2) = {within_two}");
    assert!(v.iter().all(|x| x.is_finite()));
}

#[test]
fn trunc_normal_stays_in_bounds() {
    let (mean, std, a, b) = (0.5, 2.0, -1.0, 1.5);
    let v = Generator::new(4).trunc_normal(&[20_000], mean, std, a, b, DType::F64).unwrap().to_vec::<f64>().unwrap();
    let (lo, hi) = (mean + a * std, mean + b * std);
    assert!(v.iter().all(|&x| x >= lo && x <= hi), "values outside [{lo}, {hi}]");
    let (min, max) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(m, n), &x| (m.min(x), n.max(x)));
    assert!(min < lo + 0.01 && max > hi - 0.01, "the whole interval is reached: {min}..{max}");
    // Truncating to [-1, 1.5] std keeps the mean slightly above the untruncated one.
    let (m, _) = stats(&v);
    assert!(m > mean && m < mean + 0.5, "mean {m}");
}

#[test]
fn bernoulli_rate() {
    for p in [0.0, 0.05, 0.3, 0.5, 1.0] {
        let t = Generator::new(8).bernoulli(&[N], p).unwrap();
        assert_eq!(t.dtype(), DType::U8);
        let v = t.to_vec::<u8>().unwrap();
        assert!(v.iter().all(|&x| x <= 1));
        let rate = v.iter().map(|&x| x as f64).sum::<f64>() / N as f64;
        let sigma = (p * (1.0 - p) / N as f64).sqrt();
        assert!((rate - p).abs() <= 5.0 * sigma, "p {p}: rate {rate}");
    }
}

#[test]
fn randint_range_and_frequencies() {
    let (lo, hi) = (-3i64, 4i64);
    let t = Generator::new(12).randint(&[N], lo, hi).unwrap();
    assert_eq!(t.dtype(), DType::I64);
    let v = t.to_vec::<i64>().unwrap();
    assert!(v.iter().all(|&x| (lo..hi).contains(&x)));
    for k in lo..hi {
        let frac = v.iter().filter(|&&x| x == k).count() as f64 / N as f64;
        assert!((frac - 1.0 / 7.0).abs() < 0.004, "value {k}: {frac}");
    }
    assert_eq!(Generator::new(0).randint(&[5], 9, 10).unwrap().to_vec::<i64>().unwrap(), [9; 5]);
    let wide = Generator::new(1).randint(&[1000], i64::MIN / 2, i64::MAX / 2).unwrap().to_vec::<i64>().unwrap();
    assert!(wide.iter().any(|&x| x < 0) && wide.iter().any(|&x| x > 0));
}

#[test]
fn randperm_is_a_permutation() {
    let mut g = Generator::new(13);
    for n in [0usize, 1, 2, 10, 1000] {
        let p = g.randperm(n);
        assert_eq!((p.shape(), p.dtype()), (&[n][..], DType::I64));
        let mut v = p.to_vec::<i64>().unwrap();
        let moved = v.iter().enumerate().filter(|&(i, &x)| i as i64 != x).count();
        v.sort_unstable();
        assert_eq!(v, (0..n as i64).collect::<Vec<_>>());
        if n == 1000 {
            assert!(moved > 900, "a random permutation moves most elements, moved {moved}");
        }
        let q = g.permutation(n);
        let mut s = q.clone();
        s.sort_unstable();
        assert_eq!(s, (0..n).collect::<Vec<_>>());
    }
    // Every position receives each value about equally often.
    let mut counts = [[0usize; 4]; 4];
    for _ in 0..4000 {
        for (i, &x) in g.permutation(4).iter().enumerate() {
            counts[i][x] += 1;
        }
    }
    assert!(counts.iter().flatten().all(|&c| (c as f64 - 1000.0).abs() < 150.0), "{counts:?}");
}

#[test]
fn scalar_draws() {
    let mut g = Generator::new(21);
    let u: Vec<f64> = (0..10_000).map(|_| g.next_f64()).collect();
    assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
    assert!((stats(&u).0 - 0.5).abs() < 0.02);
    let k: Vec<u64> = (0..10_000).map(|_| g.next_below(6)).collect();
    assert!(k.iter().all(|&x| x < 6) && (0..6).all(|v| k.contains(&v)));
    let z: Vec<f64> = (0..10_000).map(|_| g.next_normal()).collect();
    let (m, s) = stats(&z);
    assert!(m.abs() < 0.05 && (s - 1.0).abs() < 0.05);
}

// ---- GPU draws --------------------------------------------------------------------------

/// Each draw, made on the GPU by one generator and on the CPU by its clone: the same bits,
/// and the two generators stay in step (successive draws continue the same stream).
#[test]
fn gpu_draws_have_the_cpu_bits() {
    let Some(dev) = common::gpu::gpu() else { return };
    let (mut on_gpu, mut on_cpu) = (Generator::new(1234), Generator::new(1234));
    type Draw = fn(&mut Generator, Device) -> Tensor;
    let draws: [(&str, Draw); 12] = [
        ("uniform f32", |g, d| g.uniform_on(&[N], -1.0, 2.0, DType::F32, d).unwrap()),
        ("uniform f64", |g, d| g.uniform_on(&[3, 5], 0.0, 1.0, DType::F64, d).unwrap()),
        ("uniform empty", |g, d| g.uniform_on(&[0, 4], 0.0, 1.0, DType::F32, d).unwrap()),
        ("normal f64", |g, d| g.normal_on(&[N], 0.0, 1.0, DType::F64, d).unwrap()),
        ("normal f32", |g, d| g.normal_on(&[7, 33], 1.5, 2.0, DType::F32, d).unwrap()),
        ("normal 0-d", |g, d| g.normal_on(&[], -3.0, 0.5, DType::F64, d).unwrap()),
        ("uniform bf16", |g, d| g.uniform_on(&[N], -1.0, 2.0, DType::BF16, d).unwrap()),
        ("normal f16", |g, d| g.normal_on(&[5, 41], 0.0, 3.0, DType::F16, d).unwrap()),
        ("trunc_normal", |g, d| g.trunc_normal_on(&[1000], 0.0, 1.0, -2.0, 2.0, DType::F32, d).unwrap()),
        ("bernoulli", |g, d| g.bernoulli_on(&[N], 0.3, d).unwrap()),
        ("randint", |g, d| g.randint_on(&[N], -5, 17, d).unwrap()),
        ("randint wide", |g, d| g.randint_on(&[999], i64::MIN / 2, i64::MAX / 2, d).unwrap()),
    ];
    for (what, draw) in draws {
        let (g, c) = (draw(&mut on_gpu, dev), draw(&mut on_cpu, Device::Cpu));
        assert_eq!(g.device(), dev, "{what}");
        assert_eq!((g.shape(), g.dtype()), (c.shape(), c.dtype()), "{what}");
        assert_eq!(bits(&g), bits(&c), "{what}: GPU and CPU bits differ");
        assert_eq!(on_gpu, on_cpu, "{what}: the generators went out of step");
    }
    // Integers are compared as themselves, not through f64.
    let (g, c) =
        (on_gpu.randint_on(&[64], i64::MIN / 2, i64::MAX / 2, dev).unwrap(), on_cpu.randint(&[64], i64::MIN / 2, i64::MAX / 2).unwrap());
    assert_eq!(g.to_vec::<i64>().unwrap(), c.to_vec::<i64>().unwrap());
}

#[test]
fn gpu_draw_errors_match_cpu_and_leave_the_generator_alone() {
    let Some(dev) = common::gpu::gpu() else { return };
    let mut g = Generator::new(3);
    let before = g.clone();
    let e = g.uniform_on(&[2], 1.0, 0.0, DType::F32, dev).unwrap_err().to_string();
    assert_eq!(e, Generator::new(3).uniform(&[2], 1.0, 0.0, DType::F32).unwrap_err().to_string());
    let e = g.normal_on(&[2], 0.0, 1.0, DType::I64, dev).unwrap_err().to_string();
    assert_eq!(e, Generator::new(3).normal(&[2], 0.0, 1.0, DType::I64).unwrap_err().to_string());
    assert!(g.bernoulli_on(&[2], 1.5, dev).is_err() && g.randint_on(&[2], 3, 3, dev).is_err());
    assert_eq!(g, before);
}
