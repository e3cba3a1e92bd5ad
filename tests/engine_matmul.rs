//! matmul against a naive triple loop: 1-D, 2-D, batched and broadcast-batch operands that
//! are transposed, sliced, flipped or expanded; empty and size-1 dims; sizes past
//! `matrixmultiply`'s blocking and the batch-parallel path. On a GPU: the same products
//! against the CPU under each f32 matmul precision (exact, TF32, bf16), and f64; bf16 and
//! f16 tensors (tensor cores, result in their dtype) against the f32 CPU product of the
//! same values.

mod common;

use common::*;
use proptest::prelude::*;
use std::sync::{Mutex, MutexGuard};
use tessera::engine::cuda::{self, MatmulPrecision};
use tessera::engine::{DType, Tensor};

/// NumPy `matmul` of reference arrays, written plainly.
fn naive_matmul(a: &Arr, b: &Arr) -> Arr {
    let a2 = if a.shape.len() == 1 { a.reshape(&[1, a.shape[0]]) } else { a.clone() };
    let b2 = if b.shape.len() == 1 { b.reshape(&[b.shape[0], 1]) } else { b.clone() };
    let (ra, rb) = (a2.shape.len(), b2.shape.len());
    let (m, k, n) = (a2.shape[ra - 2], a2.shape[ra - 1], b2.shape[rb - 1]);
    assert_eq!(k, b2.shape[rb - 2]);
    let batch = broadcast_shape(&a2.shape[..ra - 2], &b2.shape[..rb - 2]).unwrap();
    let mut sa = batch.clone();
    sa.extend([m, k]);
    let mut sb = batch.clone();
    sb.extend([k, n]);
    let (ae, be) = (a2.expand(&sa), b2.expand(&sb));
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    let out = Arr::from_fn(&out_shape, |i| {
        let nb = i.len() - 2;
        (0..k)
            .map(|p| {
                let mut ia = i[..nb].to_vec();
                ia.extend([i[nb], p]);
                let mut ib = i[..nb].to_vec();
                ib.extend([p, i[nb + 1]]);
                ae.at(&ia) * be.at(&ib)
            })
            .sum()
    });
    let mut shape = out.shape.clone();
    if b.shape.len() == 1 {
        shape.pop();
    }
    if a.shape.len() == 1 {
        shape.remove(shape.len() - if b.shape.len() == 1 { 1 } else { 2 });
    }
    out.reshape(&shape)
}

/// An operand of logical `shape` that is stored transposed in its last two dims half the
/// time (the layout of `x.t()`), on top of the random recipe.
fn matrix_operand(shape: &[usize], dtype: DType, seed: u64) -> Operand {
    matrix_operand_with(shape, dtype, seed, |r| r.range(-3.0, 3.0))
}

/// [`matrix_operand`] with values drawn by `gen`.
fn matrix_operand_with(shape: &[usize], dtype: DType, seed: u64, gen: impl Fn(&mut Rng64) -> f64) -> Operand {
    let r = shape.len();
    if r >= 2 && seed.is_multiple_of(2) {
        let mut ts = shape.to_vec();
        ts.swap(r - 2, r - 1);
        let o = operand_with(&ts, dtype, seed, gen);
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        Operand { t: o.t.t().unwrap(), a: o.a.permute(&perm), recipe: format!("t() of {}", o.recipe) }
    } else {
        operand_with(shape, dtype, seed, gen)
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matmul_matches_naive(m in dim(5), k in dim(5), n in dim(5), batch in shape(3, 3), kinds in 0usize..9, seed: u64) {
        let mut rng = Rng64::new(seed);
        let (ba, bb) = (broadcast_from(&batch, &mut rng), broadcast_from(&batch, &mut rng));
        // kinds / 3 picks the lhs rank (1-D, 2-D, batched), kinds % 3 the rhs rank.
        let lhs: Vec<usize> = match kinds / 3 { 0 => vec![k], 1 => vec![m, k], _ => ba.iter().copied().chain([m, k]).collect() };
        let rhs: Vec<usize> = match kinds % 3 { 0 => vec![k], 1 => vec![k, n], _ => bb.iter().copied().chain([k, n]).collect() };
        for dtype in FLOATS {
            let a = matrix_operand(&lhs, dtype, seed ^ 1);
            let b = matrix_operand(&rhs, dtype, seed.wrapping_add(2));
            let got = a.t.matmul(&b.t).unwrap();
            let (rtol, atol) = if dtype == DType::F64 { (1e-12, 1e-12) } else { (1e-5, 1e-5) };
            prop_assert_eq!(got.dtype(), dtype);
            assert_tensor(&format!("matmul {dtype:?}\na = {a:?}\nb = {b:?}"), &got, &naive_matmul(&a.a, &b.a), rtol, atol);
        }
    }
}

#[test]
fn matmul_fixed_cases() {
    let v = Tensor::from_slice(&[1.0f64, 2.0, 3.0], &[3]).unwrap();
    assert_eq!(v.matmul(&v).unwrap().shape(), &[] as &[usize]);
    assert_eq!(v.matmul(&v).unwrap().item().unwrap(), 14.0);
    let m = Tensor::arange(0.0, 6.0, 1.0, DType::F64).unwrap().reshape(&[2, 3]).unwrap();
    assert_eq!(m.matmul(&v).unwrap().to_vec::<f64>().unwrap(), [8.0, 26.0]);
    assert_eq!(v.matmul(&m.t().unwrap()).unwrap().to_vec::<f64>().unwrap(), [8.0, 26.0]);
    assert_eq!(m.matmul(&m.t().unwrap()).unwrap().to_vec::<f64>().unwrap(), [5.0, 14.0, 14.0, 50.0]);
    // k = 0: a sum over nothing is 0.
    let a = Tensor::zeros(&[3, 0], DType::F32).unwrap();
    let b = Tensor::zeros(&[0, 2], DType::F32).unwrap();
    assert_eq!(a.matmul(&b).unwrap().to_vec::<f32>().unwrap(), [0.0; 6]);
    assert_eq!(Tensor::zeros(&[0, 3], DType::F32).unwrap().matmul(&a).unwrap().shape(), &[0, 0]);
    assert_eq!(b.t().unwrap().matmul(&b).unwrap().to_vec::<f32>().unwrap(), [0.0; 4]);
    // 1-D lhs with a batched rhs: [k] @ [b, k, n] -> [b, n].
    let bt = Tensor::ones(&[4, 3, 5], DType::F64).unwrap();
    let r = v.matmul(&bt).unwrap();
    assert_eq!(r.shape(), &[4, 5]);
    assert_eq!(r.to_vec::<f64>().unwrap(), [6.0; 20]);
    // Batched lhs with a 1-D rhs: [b, m, k] @ [k] -> [b, m].
    assert_eq!(bt.t().unwrap().matmul(&Tensor::ones(&[3], DType::F64).unwrap()).unwrap().shape(), &[4, 5]);
}

fn large_case(dtype: DType, sa: &[usize], sb: &[usize], transpose_a: bool, transpose_b: bool) {
    let mut rng = Rng64::new(sa.iter().chain(sb).product::<usize>() as u64);
    let mut make = |shape: &[usize], transpose: bool| {
        let r = shape.len();
        let mut stored = shape.to_vec();
        if transpose {
            stored.swap(r - 2, r - 1);
        }
        let mut a = Arr::random(&stored, &mut rng, -1.0, 1.0);
        if dtype == DType::F32 {
            a = a.round_f32();
        }
        let t = tensor(&a, dtype);
        if transpose {
            let mut perm: Vec<usize> = (0..r).collect();
            perm.swap(r - 2, r - 1);
            (t.t().unwrap(), a.permute(&perm))
        } else {
            (t, a)
        }
    };
    let ((ta, aa), (tb, ab)) = (make(sa, transpose_a), make(sb, transpose_b));
    let (rtol, atol) = if dtype == DType::F64 { (1e-10, 1e-11) } else { (1e-4, 1e-4) };
    assert_tensor(&format!("{sa:?} @ {sb:?} {dtype:?}"), &ta.matmul(&tb).unwrap(), &naive_matmul(&aa, &ab), rtol, atol);
}

#[test]
fn matmul_large_and_batched() {
    for dtype in FLOATS {
        // Past matrixmultiply's blocking, with every transpose combination.
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            large_case(dtype, &[70, 130], &[130, 90], ta, tb);
        }
        // Many small matrices: the batch-parallel path, with a broadcast batch dim.
        large_case(dtype, &[3, 1, 20, 30], &[4, 30, 10], true, false);
        large_case(dtype, &[2, 1, 16, 8], &[5, 8, 3], false, true);
    }
}

// ---- the precision setting and GPU parity ---------------------------------------------------

/// The matmul precision is process-wide and the tests of one binary run on several threads:
/// the tests that set it run one at a time, and put the default back when done (even when a
/// check fails), so every other test sees the default.
static PRECISION: Mutex<()> = Mutex::new(());

struct PrecisionGuard(#[allow(dead_code)] MutexGuard<'static, ()>);

/// Exclusive use of the precision setting, which is the default now and again afterwards.
fn lock_precision() -> PrecisionGuard {
    PrecisionGuard(PRECISION.lock().unwrap_or_else(|e| e.into_inner()))
}

fn precision(p: MatmulPrecision) -> PrecisionGuard {
    let guard = lock_precision();
    cuda::set_matmul_precision(p);
    guard
}

impl Drop for PrecisionGuard {
    fn drop(&mut self) {
        cuda::set_matmul_precision(MatmulPrecision::Highest);
    }
}

/// 1 + 2^-12 survives f32 only; 1 + 2^-9 survives TF32 (10 mantissa bits) but not bf16 (7).
fn precision_probe() -> (Tensor, Tensor) {
    let a = Tensor::from_vec(vec![1.0 + 2f32.powi(-12), 1.0 + 2f32.powi(-9)], &[1, 2]).unwrap();
    (a, Tensor::eye(2, DType::F32).unwrap())
}

#[test]
fn matmul_precision_defaults_to_highest_and_leaves_cpu_products_exact() {
    let _guard = lock_precision();
    assert_eq!(cuda::matmul_precision(), MatmulPrecision::Highest);
    assert_eq!(MatmulPrecision::default(), MatmulPrecision::Highest);
    let (a, eye) = precision_probe();
    for p in [MatmulPrecision::High, MatmulPrecision::Bf16, MatmulPrecision::Highest] {
        cuda::set_matmul_precision(p);
        assert_eq!(cuda::matmul_precision(), p);
        assert_eq!(a.matmul(&eye).unwrap().to_vec::<f32>().unwrap(), a.to_vec::<f32>().unwrap(), "{p:?} on the CPU");
    }
}

/// Operand shapes for the GPU checks: 1-D, 2-D, batched and broadcast batches, sizes 0, 1,
/// 7, 33, 129, 130 (none a multiple of the 128 / 64 tiles), and K = 64 mostly.
const GPU_CASES: &[(&[usize], &[usize])] = &[
    (&[7], &[7]),
    (&[64], &[64, 33]),
    (&[33, 64], &[64]),
    (&[1, 1], &[1, 1]),
    (&[1, 7], &[7, 1]),
    (&[7, 1], &[1, 33]),
    (&[33, 64], &[64, 129]),
    (&[129, 64], &[64, 130]),
    (&[130, 200], &[200, 257]),
    (&[3, 17, 64], &[3, 64, 9]),
    (&[2, 1, 20, 64], &[4, 64, 33]),
    (&[5, 64], &[2, 3, 64, 7]),
    (&[4, 3, 64], &[64]),
    (&[0, 5], &[5, 3]),
    (&[3, 0], &[0, 4]),
    (&[2, 0, 4, 5], &[5, 6]),
];

/// `tol` is for K = 64; rounding errors of the inputs add up like a random walk, so it
/// grows as sqrt(K / 64) past that.
fn gpu_matmul_cases(dtype: DType, p: MatmulPrecision, tol: Option<f64>) {
    let _guard = precision(p);
    for (i, &(sa, sb)) in GPU_CASES.iter().enumerate() {
        let k = *sa.last().unwrap() as f64;
        let tol = tol.map(|t| t * (k / 64.0).sqrt().max(1.0));
        // Seeds of both parities: each operand is stored transposed in some cases, on top
        // of the random views (slices, flips, expanded dims).
        for seed in [2 * i as u64, 2 * i as u64 + 7] {
            let a = matrix_operand_with(sa, dtype, seed, |r| r.range(-1.0, 1.0));
            let b = matrix_operand_with(sb, dtype, seed + 1000, |r| r.range(-1.0, 1.0));
            let what = format!("{sa:?} @ {sb:?} {dtype:?} {p:?}\na = {a:?}\nb = {b:?}");
            common::gpu::same_on_gpu_tol(&what, &[a.t, b.t], tol, |t| Ok(vec![t[0].matmul(&t[1])?]));
        }
    }
}

/// Shapes past one output tile and several K slices of every kernel (so the cp.async
/// pipelines cycle through their stages), with the tile edges inside; batched with a
/// broadcast B (A's batches folded into M) and with both operands batched. Each is over the
/// 2^24 multiply-adds from which exact f32 products whose operands need packing take the
/// cp.async kernel (engine/src/cuda/matmul.rs, PACKING_PAYS).
const GPU_LARGE_CASES: &[(&[usize], &[usize])] =
    &[(&[300, 260], &[260, 300]), (&[3, 200, 160], &[160, 240]), (&[3, 200, 136], &[3, 136, 210]), (&[256, 256], &[256, 288])];

#[test]
fn gpu_matmul_past_one_tile_matches_cpu_under_every_precision() {
    for (p, tol) in [(MatmulPrecision::Highest, None), (MatmulPrecision::High, Some(1e-2)), (MatmulPrecision::Bf16, Some(3e-2))] {
        let _guard = precision(p);
        for (i, &(sa, sb)) in GPU_LARGE_CASES.iter().enumerate() {
            let k = *sa.last().unwrap() as f64;
            let tol = tol.map(|t: f64| t * (k / 64.0).sqrt());
            for seed in [2 * i as u64, 2 * i as u64 + 7] {
                let a = matrix_operand_with(sa, DType::F32, seed, |r| r.range(-1.0, 1.0));
                let b = matrix_operand_with(sb, DType::F32, seed + 1000, |r| r.range(-1.0, 1.0));
                // As random views, and contiguous (which the exact kernel reads in place
                // where rows are 16-byte aligned).
                for (a, b, how) in
                    [(a.t.clone(), b.t.clone(), "views"), (a.t.contiguous().unwrap(), b.t.contiguous().unwrap(), "contiguous")]
                {
                    let what = format!("{sa:?} @ {sb:?} {p:?} {how} (seed {seed})");
                    common::gpu::same_on_gpu_tol(&what, &[a, b], tol, |t| Ok(vec![t[0].matmul(&t[1])?]));
                }
            }
        }
    }
}

#[test]
fn gpu_matmul_exact_f32_matches_cpu() {
    gpu_matmul_cases(DType::F32, MatmulPrecision::Highest, None);
}

#[test]
fn gpu_matmul_tf32_matches_cpu_to_tf32_precision() {
    gpu_matmul_cases(DType::F32, MatmulPrecision::High, Some(1e-2));
}

#[test]
fn gpu_matmul_bf16_matches_cpu_to_bf16_precision() {
    gpu_matmul_cases(DType::F32, MatmulPrecision::Bf16, Some(3e-2));
}

#[test]
fn gpu_matmul_f64_is_exact_under_every_precision() {
    for p in [MatmulPrecision::Highest, MatmulPrecision::Bf16] {
        gpu_matmul_cases(DType::F64, p, None);
    }
}

#[test]
fn gpu_matmul_reads_transposed_and_sliced_operands_in_place() {
    let _guard = precision(MatmulPrecision::Highest);
    let x = Tensor::arange(0.0, 130.0 * 70.0, 1.0, DType::F32).unwrap().reshape(&[130, 70]).unwrap().mul_scalar(1e-3).unwrap();
    let w = Tensor::arange(0.0, 70.0 * 90.0, 1.0, DType::F32).unwrap().reshape(&[90, 70]).unwrap().mul_scalar(-1e-3).unwrap();
    common::gpu::same_on_gpu("x @ w.t(), x.t() @ x, sliced columns", &[x, w], |t| {
        let (x, w) = (&t[0], &t[1]);
        Ok(vec![
            x.matmul(&w.t()?)?,
            x.t()?.matmul(x)?,
            x.narrow(1, 3, 50)?.matmul(&w.narrow(1, 5, 50)?.t()?)?,
            x.reshape(&[13, 10, 70])?.matmul(&w.t()?)?,
        ])
    });
}

#[test]
fn gpu_matmul_precision_picks_the_kernel() {
    let Some(dev) = common::gpu::gpu() else { return };
    let (a, eye) = precision_probe();
    let (a, eye) = (a.to_device(dev).unwrap(), eye.to_device(dev).unwrap());
    let exact = a.to_vec::<f32>().unwrap();
    for (p, want) in
        [(MatmulPrecision::Highest, exact.clone()), (MatmulPrecision::High, vec![1.0, exact[1]]), (MatmulPrecision::Bf16, vec![1.0, 1.0])]
    {
        let _guard = precision(p);
        assert_eq!(a.matmul(&eye).unwrap().to_vec::<f32>().unwrap(), want, "{p:?}");
    }
    // Integer operands are refused as on the CPU.
    let i = Tensor::ones(&[2, 2], DType::I64).unwrap();
    let cpu_err = err_msg(i.matmul(&i));
    let gi = i.to_device(dev).unwrap();
    assert_eq!(err_msg(gi.matmul(&gi)), cpu_err);
}

// ---- bf16 / f16 tensors on a GPU ------------------------------------------------------------

/// A `[batch.., rows, cols]` tensor of `dtype` (values drawn in [-1, 1) and rounded to it),
/// stored either as it is or, `stored_t`, transposed in its last two dims (the layout of
/// `w.t()`), with `pad` NaN elements after each stored row that a narrow then hides: the
/// GPU product must read the view, never the padding.
fn half_operand(dtype: DType, batch: &[usize], rows: usize, cols: usize, stored_t: bool, pad: usize, rng: &mut Rng64) -> Tensor {
    let (sr, sc) = if stored_t { (cols, rows) } else { (rows, cols) };
    let shape: Vec<usize> = batch.iter().copied().chain([sr, sc + pad]).collect();
    let a = Arr::from_fn(&shape, |i| if i[i.len() - 1] >= sc { f64::NAN } else { rng.range(-1.0, 1.0) });
    let t = tensor(&a, dtype).narrow(-1, 0, sc).unwrap();
    if stored_t {
        t.t().unwrap()
    } else {
        t
    }
}

/// NaN columns that bring a row of `k` elements to a pitch of a multiple of 8 (16 bytes),
/// with at least 8 of them: such K-contiguous operands are read in place by the GPU.
fn aligned_pad(k: usize) -> usize {
    k.div_ceil(8) * 8 + 8 - k
}

/// `a @ b` of bf16 / f16 tensors on the GPU (same layouts as on the CPU) against the f32
/// CPU product of the same values. The GPU multiplies exactly and sums in f32, then rounds
/// once to the dtype: within half an ulp of the result (2^-8 of it for bf16's 8 significant
/// bits, 2^-11 for f16's 11), plus what summing in another order moves an f32 sum of K
/// products of magnitude <= 1 (and f16's subnormal steps), K·2^-19.
fn check_half_matmul(what: &str, a: &Tensor, b: &Tensor) {
    let Some(dev) = common::gpu::gpu() else { return };
    let dtype = a.dtype();
    let f32_of = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let want = f32_of(a).matmul(&f32_of(b)).unwrap();
    let (ga, gb) = (common::gpu::to_device_keeping_layout(a, dev), common::gpu::to_device_keeping_layout(b, dev));
    let got = ga.matmul(&gb).unwrap_or_else(|e| panic!("{what}: the GPU run failed: {e}"));
    assert_eq!(got.device(), dev, "{what}: device");
    assert_eq!(got.dtype(), dtype, "{what}: dtype");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let rel = if dtype == DType::BF16 { 2f64.powi(-8) } else { 2f64.powi(-11) };
    let abs = *a.shape().last().unwrap() as f64 * 2f64.powi(-19);
    let (gv, wv) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    for (i, (g, w)) in gv.iter().zip(&wv).enumerate() {
        assert!((g - w).abs() <= rel * w.abs() + abs, "{what}: element {i}: GPU {g} vs CPU {w} (shape {:?})", want.shape());
    }
}

/// 2-D products with M, N and K off the tiles and K off a multiple of 8, under every
/// combination of stored layouts: A not stored transposed and B stored transposed are
/// K-contiguous, so with an aligned pitch they are read in place (the NaN padding past K
/// then lies right after each row the kernel copies), and otherwise packed.
#[test]
fn gpu_half_matmul_matches_cpu() {
    if common::gpu::gpu().is_none() {
        return;
    }
    for dtype in [DType::BF16, DType::F16] {
        let mut rng = Rng64::new(11);
        for (m, k, n) in [(1, 1, 1), (17, 33, 9), (130, 70, 65), (64, 8, 16), (257, 200, 136)] {
            for (ta, tb) in [(false, true), (false, false), (true, true), (true, false)] {
                for pad in [0, aligned_pad(k)] {
                    let a = half_operand(dtype, &[], m, k, ta, pad, &mut rng);
                    let b = half_operand(dtype, &[], k, n, tb, pad, &mut rng);
                    check_half_matmul(&format!("{m}×{k}×{n} {dtype:?} a stored_t {ta} b stored_t {tb} pad {pad}"), &a, &b);
                }
            }
        }
    }
}

/// Batched bf16 / f16 products: A's batches folded into M under a broadcast B (A in place
/// and packed), a broadcast A read in place beside batched B, batch dims that broadcast
/// against each other (no single batch stride: packed), and mixed in place / packed.
#[test]
fn gpu_half_matmul_batched_matches_cpu() {
    if common::gpu::gpu().is_none() {
        return;
    }
    let (m, k, n) = (17, 33, 9);
    let p = aligned_pad(k);
    // (A batch, A stored_t, A pad, B batch, B stored_t, B pad)
    type Operands<'a> = (&'a [usize], bool, usize, &'a [usize], bool, usize);
    let cases: [Operands; 6] = [
        (&[3], false, p, &[], true, p),
        (&[3], true, 0, &[], true, p),
        (&[], false, p, &[4], true, p),
        (&[2, 1], false, p, &[3], true, p),
        (&[4], false, p, &[4], false, 0),
        (&[2, 3], true, 0, &[2, 3], true, p),
    ];
    for dtype in [DType::BF16, DType::F16] {
        let mut rng = Rng64::new(5);
        for (ab, at, ap, bb, bt, bp) in cases {
            let a = half_operand(dtype, ab, m, k, at, ap, &mut rng);
            let b = half_operand(dtype, bb, k, n, bt, bp, &mut rng);
            check_half_matmul(&format!("{:?} @ {:?} {dtype:?} (stored_t {at} {bt}, pads {ap} {bp})", a.shape(), b.shape()), &a, &b);
        }
    }
}

/// bf16 / f16 products take their tensor cores whatever the f32 precision says.
#[test]
fn gpu_half_matmul_ignores_the_f32_precision() {
    if common::gpu::gpu().is_none() {
        return;
    }
    for p in [MatmulPrecision::Highest, MatmulPrecision::High, MatmulPrecision::Bf16] {
        let _guard = precision(p);
        for dtype in [DType::BF16, DType::F16] {
            let mut rng = Rng64::new(3);
            let a = half_operand(dtype, &[], 40, 24, false, 0, &mut rng);
            let b = half_operand(dtype, &[], 24, 30, false, 0, &mut rng);
            check_half_matmul(&format!("40×24×30 {dtype:?} under {p:?}"), &a, &b);
        }
    }
}

/// The fused attention op names the op and both shapes when its operands disagree, and
/// refuses dtypes the host kernel does not run; its values are checked against the
/// composition in `autograd_composite.rs` and by gradcheck in `autograd_ops.rs`.
#[test]
fn attention_heads_rejects_bad_operands() {
    let qkv = tessera::engine::Generator::new(1).normal(&[2, 5, 12], 0.0, 1.0, DType::F32).unwrap();
    let (out, probs) = qkv.attention_heads(2, false).unwrap();
    assert_eq!((out.shape(), probs.shape()), (&[2, 5, 4][..], &[2, 2, 5, 5][..]));
    let err = qkv.attention_heads(5, false).unwrap_err().to_string();
    assert!(err.contains("attention_heads") && err.contains("[2, 5, 12]") && err.contains("5 heads"), "{err}");
    let wrong = Tensor::zeros(&[2, 5, 3], DType::F32).unwrap();
    let err = qkv.attention_heads_backward(&probs, &wrong, 2).unwrap_err().to_string();
    assert!(err.contains("attention_heads_backward") && err.contains("[2, 5, 12]") && err.contains("[2, 5, 3]"), "{err}");
    let err = qkv.attention_heads_backward(&out, &out, 2).unwrap_err().to_string();
    assert!(err.contains("[2, 5, 4]") && err.contains("probabilities"), "{err}");
    let err = qkv.to_dtype(DType::BF16).unwrap().attention_heads(2, false).unwrap_err().to_string();
    assert!(err.contains("attention_heads") && err.contains("bf16"), "{err}");
}
