//! The 16-bit float dtypes, bf16 and f16: rounding on the way in (nearest even, through f32
//! from f64 and i64), exact widening on the way out, casts to integers and masks, and the
//! CPU rule that GPU kernels share: compute in f32, round each op's result once. The GPU
//! parity checks of the half kernels sit with the f32 ones, in each op family's test file.

mod common;

use tessera::autograd::Var;
use tessera::engine::half::{bf16, f16};
use tessera::engine::{DType, Error, Generator, Pair, ReduceOp, Tensor, UnaryOp};

fn bf16_bits(xs: &[f32]) -> Vec<u16> {
    let t = Tensor::from_vec(xs.to_vec(), &[xs.len()]).unwrap().to_dtype(DType::BF16).unwrap();
    t.to_vec::<bf16>().unwrap().iter().map(|h| h.to_bits()).collect()
}

fn f16_bits(xs: &[f32]) -> Vec<u16> {
    let t = Tensor::from_vec(xs.to_vec(), &[xs.len()]).unwrap().to_dtype(DType::F16).unwrap();
    t.to_vec::<f16>().unwrap().iter().map(|h| h.to_bits()).collect()
}

#[test]
fn f32_to_bf16_rounds_to_nearest_even() {
    let p = |e: i32| 2f32.powi(e);
    let cases: &[(f32, u16, &str)] = &[
        (1.0, 0x3F80, "exact"),
        (1.0 + p(-8), 0x3F80, "halfway, down to the even mantissa"),
        (1.0 + 3.0 * p(-8), 0x3F82, "halfway, up to the even mantissa"),
        (1.0 + p(-8) + p(-20), 0x3F81, "just above halfway"),
        (-2.5, 0xC020, "negative"),
        (f32::MAX, 0x7F80, "overflow to infinity"),
        (f32::INFINITY, 0x7F80, "infinity"),
        (f32::NEG_INFINITY, 0xFF80, "minus infinity"),
        (-0.0, 0x8000, "signed zero"),
    ];
    let got = bf16_bits(&cases.iter().map(|c| c.0).collect::<Vec<_>>());
    for (c, g) in cases.iter().zip(got) {
        assert_eq!(g, c.1, "{} ({}): got {g:#06x}, want {:#06x}", c.2, c.0, c.1);
    }
    let nan = bf16_bits(&[f32::NAN])[0];
    assert!(bf16::from_bits(nan).is_nan(), "NaN stays NaN, got {nan:#06x}");
}

#[test]
fn f32_to_f16_rounds_to_nearest_even_with_subnormals_and_overflow() {
    let p = |e: i32| 2f32.powi(e);
    let cases: &[(f32, u16, &str)] = &[
        (1.0, 0x3C00, "exact"),
        (65504.0, 0x7BFF, "largest finite"),
        (65519.0, 0x7BFF, "below the halfway point to 65536"),
        (65520.0, 0x7C00, "halfway to 65536: rounds to even, which is infinity"),
        (p(-24), 0x0001, "smallest subnormal"),
        (p(-25), 0x0000, "half the smallest subnormal: to even (zero)"),
        (3.0 * p(-25), 0x0002, "1.5 subnormal steps: to even (two)"),
        (-1.5, 0xBE00, "negative"),
    ];
    let got = f16_bits(&cases.iter().map(|c| c.0).collect::<Vec<_>>());
    for (c, g) in cases.iter().zip(got) {
        assert_eq!(g, c.1, "{} ({}): got {g:#06x}, want {:#06x}", c.2, c.0, c.1);
    }
}

#[test]
fn every_half_value_survives_widening_and_rounding_back() {
    for dtype in [DType::BF16, DType::F16] {
        let bits: Vec<u16> = (0..=u16::MAX).collect();
        let t = match dtype {
            DType::BF16 => Tensor::from_vec(bits.iter().map(|&b| bf16::from_bits(b)).collect(), &[bits.len()]),
            _ => Tensor::from_vec(bits.iter().map(|&b| f16::from_bits(b)).collect(), &[bits.len()]),
        }
        .unwrap();
        let wide = t.to_dtype(DType::F32).unwrap();
        let back = wide.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
        for (i, (a, b)) in wide.to_vec::<f32>().unwrap().iter().zip(&back).enumerate() {
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{dtype:?} pattern {i:#06x}: {a} came back as {b}");
        }
        // f64 widening is exact too.
        let f64s = t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
        for (a, b) in wide.to_vec::<f32>().unwrap().iter().zip(&f64s) {
            assert!(*a as f64 == *b || (a.is_nan() && b.is_nan()));
        }
    }
}

/// The f32 ↔ bf16 casts have a vectorized path of their own (`engine::cpu::bf16_cast`): it
/// must give `half`'s bits for every bf16 (widening) and for f32 patterns around every
/// rounding boundary, the specials and a sweep of random ones (narrowing), NaN payloads
/// included.
#[test]
fn fast_bf16_casts_match_half_bit_for_bit() {
    let all: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
    let wide = Tensor::from_vec(all.clone(), &[all.len()]).unwrap().to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
    for (h, w) in all.iter().zip(&wide) {
        assert_eq!(h.to_f32().to_bits(), w.to_bits(), "bf16 {:#06x} widened", h.to_bits());
    }
    let mut rng = common::Rng64::new(17);
    let mut bits: Vec<u32> = (0..200_000).map(|_| rng.next_u64() as u32).collect();
    for hi in (0..=u16::MAX as u32).step_by(7) {
        // Below, at and above the halfway point of each kept pattern, and the ends.
        bits.extend([0x0000, 0x7fff, 0x8000, 0x8001, 0xffff].map(|lo| hi << 16 | lo));
    }
    bits.extend([0x7f80_0000, 0xff80_0000, 0x7f7f_ffff, 0x7fc0_0001, 0x7f80_0001, 0xffff_ffff, 0x0000_0001, 0x8000_0000]);
    let xs: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    let fast = bf16_bits(&xs);
    for (x, got) in xs.iter().zip(fast) {
        assert_eq!(got, bf16::from_f32(*x).to_bits(), "f32 {:#010x} narrowed", x.to_bits());
    }
}

#[test]
fn f64_and_i64_reach_the_halves_through_f32() {
    // 1 + 2^-8 + 2^-40 is above the bf16 halfway point, but it is 1 + 2^-8 once in f32 (a
    // tie, which goes to the even 1.0): the GPU kernels round through f32, so the CPU does.
    let x = Tensor::from_vec(vec![1.0 + 2f64.powi(-8) + 2f64.powi(-40)], &[1]).unwrap();
    assert_eq!(x.to_dtype(DType::BF16).unwrap().to_vec::<bf16>().unwrap()[0].to_bits(), 0x3F80);
    // 257 needs 9 significant bits: a tie between 256 and 258, to the even 256.
    let i = Tensor::from_vec(vec![257i64, -3, 1 << 40], &[3]).unwrap();
    let got: Vec<f32> = i.to_dtype(DType::BF16).unwrap().to_vec::<bf16>().unwrap().iter().map(|h| h.to_f32()).collect();
    assert_eq!(got, vec![256.0, -3.0, 2f32.powi(40)]);
}

#[test]
fn halves_cast_to_integers_toward_zero_and_to_masks_by_nonzero() {
    for dtype in [DType::BF16, DType::F16] {
        let x = Tensor::from_vec(vec![-2.5f32, 2.5, 0.75, -0.0, 3.0], &[5]).unwrap().to_dtype(dtype).unwrap();
        assert_eq!(x.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(), vec![-2, 2, 0, 0, 3], "{dtype:?}");
        assert_eq!(x.to_dtype(DType::U8).unwrap().to_vec::<u8>().unwrap(), vec![1, 1, 1, 0, 1], "{dtype:?}");
        let other = if dtype == DType::BF16 { DType::F16 } else { DType::BF16 };
        assert_eq!(x.to_dtype(other).unwrap().to_vec_f64().unwrap(), vec![-2.5, 2.5, 0.75, 0.0, 3.0]);
    }
}

#[test]
fn half_sums_accumulate_in_f32() {
    // In bf16 arithmetic 256 + 1 == 256, so a bf16 accumulator would stop at 256; summing
    // in f32 and rounding once gives the exact 1000 (a bf16 value).
    let ones = Tensor::ones(&[1000], DType::BF16).unwrap();
    assert_eq!(ones.sum_all().unwrap().to_vec_f64().unwrap(), vec![1000.0]);
    assert_eq!(ones.sum_all().unwrap().dtype(), DType::BF16);
    // Each op rounds its own result: 1 + 2^-8 is a tie that rounds to 1 in bf16.
    let a = Tensor::full(&[1], 1.0, DType::BF16).unwrap();
    let b = Tensor::full(&[1], 2f64.powi(-8), DType::BF16).unwrap();
    assert_eq!(a.add(&b).unwrap().to_vec_f64().unwrap(), vec![1.0]);
}

/// Every float op family on half tensors equals the f32 op on the widened values, rounded
/// once: the contract the CUDA kernels are tested against.
#[test]
fn half_ops_on_the_cpu_are_the_f32_ops_rounded_once() {
    let mut g = Generator::new(7);
    for dtype in [DType::BF16, DType::F16] {
        let mut rand = |shape: &[usize]| g.normal(shape, 0.0, 1.0, DType::F32).unwrap().to_dtype(dtype).unwrap();
        let (x, w, v) = (rand(&[2, 3, 6, 6]), rand(&[4, 3, 3, 3]), rand(&[6]));
        let (m, k) = (rand(&[5, 7]), rand(&[7, 3]));
        let one: Pair = (1, 1);
        type Case<'a> = (&'a str, Box<dyn Fn(&[Tensor]) -> tessera::engine::Result<Tensor> + 'a>, Vec<Tensor>);
        let cases: Vec<Case> = vec![
            ("exp", Box::new(|t| t[0].exp()), vec![m.clone()]),
            (
                "gelu backward",
                Box::new(|t| t[0].unary_backward(UnaryOp::GeluErf, &t[0].unary(UnaryOp::GeluErf)?, &t[1])),
                vec![m.clone(), m.clone()],
            ),
            ("broadcast mul", Box::new(|t| t[0].mul(&t[1])), vec![x.clone(), v.clone()]),
            ("matmul", Box::new(|t| t[0].matmul(&t[1])), vec![m.clone(), k.clone()]),
            ("softmax", Box::new(|t| t[0].softmax(-1)), vec![m.clone()]),
            ("mean", Box::new(|t| t[0].reduce(ReduceOp::Mean, &[0, 2, 3], false)), vec![x.clone()]),
            ("conv2d", Box::new(move |t| t[0].conv2d(&t[1], None, one, one, one, 1)), vec![x.clone(), w.clone()]),
            ("layer_norm", Box::new(|t| Ok(t[0].layer_norm(Some(&t[1]), None, 1e-5)?.0)), vec![x.clone(), v.clone()]),
            ("batch_norm", Box::new(|t| Ok(t[0].batch_norm_stats(1e-5)?.rstd)), vec![x.clone()]),
            ("max_pool2d", Box::new(move |t| Ok(t[0].max_pool2d((2, 2), (2, 2), (0, 0), one)?.0)), vec![x.clone()]),
        ];
        for (name, f, inputs) in cases {
            let got = f(&inputs).unwrap_or_else(|e| panic!("{name} {dtype:?}: {e}"));
            assert_eq!(got.dtype(), dtype, "{name} keeps the dtype");
            let wide: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(DType::F32).unwrap()).collect();
            let want = f(&wide).unwrap().to_dtype(dtype).unwrap();
            let (gv, wv) =
                (got.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap(), want.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap());
            assert_eq!(gv, wv, "{name} {dtype:?}");
        }
    }
}

#[test]
fn half_tensors_move_index_and_reshape_without_widening() {
    let x = Tensor::arange(0.0, 12.0, 1.0, DType::BF16).unwrap().reshape(&[3, 4]).unwrap();
    let t = x.t().unwrap().contiguous().unwrap();
    assert_eq!(t.dtype(), DType::BF16);
    assert_eq!(t.to_vec_f64().unwrap(), vec![0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]);
    let idx = Tensor::from_vec(vec![2i64, 0], &[2]).unwrap();
    assert_eq!(x.index_select(0, &idx).unwrap().to_vec_f64().unwrap(), vec![8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0]);
    let c = Tensor::cat(&[&x, &x], 0).unwrap();
    assert_eq!((c.shape(), c.dtype()), (&[6usize, 4][..], DType::BF16));
}

#[test]
fn autograd_runs_on_half_tensors() {
    let x = Var::param(Tensor::from_vec(vec![0.5f32, -1.0, 2.0], &[3]).unwrap().to_dtype(DType::BF16).unwrap()).unwrap();
    let loss = x.mul(&x).unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    let grad = x.grad().unwrap();
    assert_eq!(grad.dtype(), DType::BF16);
    assert_eq!(grad.to_vec_f64().unwrap(), vec![1.0, -2.0, 4.0]);
}

#[test]
fn half_ops_refuse_mixed_dtypes_naming_both() {
    let a = Tensor::zeros(&[2], DType::BF16).unwrap();
    let b = Tensor::zeros(&[2], DType::F32).unwrap();
    let err = a.add(&b).unwrap_err();
    assert!(matches!(err, Error::DTypeMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("add") && msg.contains("BF16") && msg.contains("F32"), "{msg}");
}

/// f32 values that probe every rounding case of f32 → bf16 / f16: each half value, the
/// midpoints to its neighbours (ties), one f32 ulp either side of them, NaN payloads,
/// subnormals, overflow.
fn rounding_probes() -> Vec<f32> {
    let mut v = Vec::new();
    for bits in (0..=u16::MAX).step_by(7) {
        let lo = bf16::from_bits(bits).to_f32();
        let hi = bf16::from_bits(bits.wrapping_add(1)).to_f32();
        let h = f16::from_bits(bits).to_f32();
        let h_next = f16::from_bits(bits.wrapping_add(1)).to_f32();
        for (a, b) in [(lo, hi), (h, h_next)] {
            v.push(a);
            let mid = (a as f64 + b as f64) / 2.0;
            if mid.is_finite() {
                let m = mid as f32;
                v.extend([m, f32::from_bits(m.to_bits().wrapping_add(1)), f32::from_bits(m.to_bits().wrapping_sub(1))]);
            }
        }
    }
    v.extend([f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45, 65519.99, 65520.0, f32::from_bits(0x7fc0_1234), f32::from_bits(0xff80_0001)]);
    v
}

/// The GPU's casts (ptx/kernels/half.cuh and elementwise.cu) give the host's bits: every bf16
/// and f16 pattern widened to f32 and f64, the rounding probes narrowed from f32 and f64, and
/// the halves cast to each other and to integers.
#[test]
fn gpu_half_casts_match_the_host_bit_for_bit() {
    let Some(dev) = common::gpu::gpu() else { return };
    let probes = rounding_probes();
    let x32 = Tensor::from_vec(probes.clone(), &[probes.len()]).unwrap();
    let x64 = x32.to_dtype(DType::F64).unwrap();
    let patterns: Vec<u16> = (0..=u16::MAX).collect();
    let all_bf16 = Tensor::from_vec(patterns.iter().map(|&b| bf16::from_bits(b)).collect(), &[patterns.len()]).unwrap();
    let all_f16 = Tensor::from_vec(patterns.iter().map(|&b| f16::from_bits(b)).collect(), &[patterns.len()]).unwrap();
    // Bits as u64 (NaNs compared as "is NaN": payloads may differ between backends).
    let bits = |t: &Tensor| -> Vec<u64> {
        let t = t.to_device(tessera::engine::Device::Cpu).unwrap();
        match t.dtype() {
            DType::BF16 => t.to_vec::<bf16>().unwrap().iter().map(|h| if h.is_nan() { u64::MAX } else { h.to_bits() as u64 }).collect(),
            DType::F16 => t.to_vec::<f16>().unwrap().iter().map(|h| if h.is_nan() { u64::MAX } else { h.to_bits() as u64 }).collect(),
            DType::F32 => t.to_vec::<f32>().unwrap().iter().map(|x| if x.is_nan() { u64::MAX } else { x.to_bits() as u64 }).collect(),
            DType::F64 => t.to_vec::<f64>().unwrap().iter().map(|x| if x.is_nan() { u64::MAX } else { x.to_bits() }).collect(),
            DType::I64 => t.to_vec::<i64>().unwrap().iter().map(|&x| x as u64).collect(),
            DType::U8 => t.to_vec::<u8>().unwrap().iter().map(|&x| x as u64).collect(),
        }
    };
    let cases: [(&str, &Tensor, DType); 10] = [
        ("f32 -> bf16", &x32, DType::BF16),
        ("f32 -> f16", &x32, DType::F16),
        ("f64 -> bf16", &x64, DType::BF16),
        ("f64 -> f16", &x64, DType::F16),
        ("bf16 -> f32", &all_bf16, DType::F32),
        ("f16 -> f32", &all_f16, DType::F32),
        ("bf16 -> f64", &all_bf16, DType::F64),
        ("bf16 -> f16", &all_bf16, DType::F16),
        ("f16 -> bf16", &all_f16, DType::BF16),
        ("f16 -> u8", &all_f16, DType::U8),
    ];
    for (what, x, to) in cases {
        let want = bits(&x.to_dtype(to).unwrap());
        let got = bits(&x.to_device(dev).unwrap().to_dtype(to).unwrap());
        if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
            panic!("{what}: element {i} ({:?}): GPU {:#x}, host {:#x}", x.to_vec_f64().unwrap()[i], got[i], want[i]);
        }
    }
    // Finite halves to i64 truncate toward zero on both (NaN and inf are left out: Rust's
    // `as` saturates them, CUDA does not promise that).
    let vals: Vec<f32> = probes.iter().copied().filter(|v| v.is_finite() && v.abs() < 1e18).collect();
    let h = Tensor::from_vec(vals.clone(), &[vals.len()]).unwrap().to_dtype(DType::BF16).unwrap();
    assert_eq!(bits(&h.to_device(dev).unwrap().to_dtype(DType::I64).unwrap()), bits(&h.to_dtype(DType::I64).unwrap()), "bf16 -> i64");
}

#[test]
fn an_f32_parameter_used_in_bf16_gets_an_f32_gradient() {
    let w = Var::param(Tensor::from_vec(vec![0.5f32, -1.25, 3.0], &[3]).unwrap()).unwrap();
    let x = Var::constant(Tensor::from_vec(vec![2.0f32, 4.0, -1.0], &[3]).unwrap().to_dtype(DType::BF16).unwrap());
    let loss = w.to_dtype(DType::BF16).unwrap().mul(&x).unwrap().sum_all().unwrap();
    assert_eq!(loss.value().dtype(), DType::BF16);
    loss.backward().unwrap();
    let g = w.grad().unwrap();
    assert_eq!(g.dtype(), DType::F32);
    assert_eq!(g.to_vec::<f32>().unwrap(), vec![2.0, 4.0, -1.0]);
}

/// f64 narrows to a half through f32 on every host path (`to_dtype`, `full`), as the `Element`
/// conversion, the GPU kernels and PyTorch do. `half`'s own `bf16::from_f64` rounds some
/// subnormals differently (0x002a_8001 as f32, just above a tie, gives 0x2a, not 0x2b), and a
/// `with_any!` body that named it through the concrete type got that method instead of ours.
#[test]
fn f64_narrows_to_halves_through_f32_on_every_host_path() {
    let probes = rounding_probes();
    let x32 = Tensor::from_vec(probes.clone(), &[probes.len()]).unwrap();
    let x64 = x32.to_dtype(DType::F64).unwrap();
    for to in [DType::BF16, DType::F16] {
        let via_f32 = x32.to_dtype(to).unwrap().to_vec_f64().unwrap();
        let direct = x64.to_dtype(to).unwrap().to_vec_f64().unwrap();
        for (i, (a, b)) in via_f32.iter().zip(&direct).enumerate() {
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{to:?} element {i} ({}): {b} vs {a}", probes[i]);
        }
    }
    let v = f32::from_bits(0x002a_8001);
    let full = Tensor::full(&[1], v as f64, DType::BF16).unwrap().to_vec::<bf16>().unwrap()[0];
    assert_eq!(full.to_bits(), 0x2b);
}
