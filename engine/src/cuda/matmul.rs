//! Batched matrix products on a GPU (ptx/kernels/matmul.cu), and the f32 precision setting
//! that picks between its exact, TF32 and bf16 kernels.
//!
//! By dtype: f64 is always exact; f32 follows [`matmul_precision`]; bf16 and f16 tensors
//! always go to the tensor cores (bf16 / f16 mma, f32 accumulators, the result rounded once
//! to their dtype), whatever the precision says, as in PyTorch.
//!
//! Any operand layout works (transposed, sliced, flipped, broadcast batch dims with stride 0),
//! by one of two routes:
//! - read in place through its row, column and batch strides by the register-staged kernels
//!   (f64, and small exact f32 products), by the cp.async f32 kernel where the operand is
//!   already contiguous along M (A) or N (B) with 16-byte aligned rows, or by the bf16 / f16
//!   kernels where it is already contiguous along K with 16-byte aligned rows and one batch
//!   stride (A row-major, B the transpose of a row-major N×K, as in `x @ w.t()`);
//! - otherwise first packed, O(n²), into a scratch copy the pipelined kernels read with
//!   16-byte cp.async: K rows of M / N for exact f32; K-contiguous (M rows of K, and B
//!   transposed as N rows of K) for the tensor cores, f32 rounded once to TF32 / bf16 on
//!   the way, bf16 / f16 copied unchanged.

use super::{common_device, output};
use crate::cuda::launch::{run, StridedArg, StridedArgs};
use crate::cuda::{CudaArray, CudaBuffer, CudaDevice, CudaView};
use crate::{DType, Error, Layout, Result};
use cudarc::driver::{sys, CudaFunction, LaunchConfig, PushKernelArg};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use tessera_ptx::{MATMUL, MATMUL_TUNE};

/// How f32 matrix products on a GPU trade precision for speed, like PyTorch's
/// `torch.set_float32_matmul_precision`. f64 products are always exact, bf16 / f16 ones
/// always use their own tensor cores, and CPU products are always exact f32 whatever this
/// says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatmulPrecision {
    /// Exact f32 (CUDA-core FMAs). The default.
    #[default]
    Highest,
    /// TF32 tensor cores: each input rounded to 10 mantissa bits (about 3 decimal digits),
    /// products summed in f32.
    High,
    /// bf16 tensor cores: each f32 input rounded to bf16 (7 mantissa bits, nearest even)
    /// into a scratch copy, products summed in f32; inputs and result stay f32 tensors
    /// (for bf16 storage and results, multiply `DType::BF16` tensors instead).
    Bf16,
}

static PRECISION: AtomicU8 = AtomicU8::new(0);

/// Sets the precision of every later f32 matmul on a GPU, process-wide.
pub fn set_matmul_precision(precision: MatmulPrecision) {
    PRECISION.store(precision as u8, Ordering::Relaxed);
}

/// The precision f32 matmuls on a GPU use now ([`MatmulPrecision::Highest`] unless set).
pub fn matmul_precision() -> MatmulPrecision {
    match PRECISION.load(Ordering::Relaxed) {
        1 => MatmulPrecision::High,
        2 => MatmulPrecision::Bf16,
        _ => MatmulPrecision::Highest,
    }
}

/// The leading (batch) dims of a matrix operand's layout.
fn batch_part(l: &Layout) -> Layout {
    let r = l.rank() - 2;
    Layout { shape: l.shape[..r].to_vec(), strides: l.strides[..r].to_vec(), offset: l.offset }
}

/// `a @ b` for float operands of rank ≥ 2 (`[.., m, k]` and `[.., k, n]`) whose batch dims
/// broadcast to `batch` (checked by the caller): a contiguous `[batch.., m, n]` result.
pub(crate) fn batched_matmul(a: &CudaView, b: &CudaView, batch: &[usize], m: usize, k: usize, n: usize) -> Result<CudaArray> {
    batched_matmul_into(a, b, batch, m, k, n, a.dtype())
}

/// [`batched_matmul`] of bf16 / f16 operands with the f32 accumulators as the result, not
/// rounded to the operands' dtype: for compositions (convolutions' column sums and bias
/// adds) that round once at their end. Other dtypes: the plain product.
pub(crate) fn batched_matmul_f32_result(a: &CudaView, b: &CudaView, batch: &[usize], m: usize, k: usize, n: usize) -> Result<CudaArray> {
    let out = if a.dtype().is_half() { DType::F32 } else { a.dtype() };
    batched_matmul_into(a, b, batch, m, k, n, out)
}

fn batched_matmul_into(a: &CudaView, b: &CudaView, batch: &[usize], m: usize, k: usize, n: usize, out_dtype: DType) -> Result<CudaArray> {
    let op = "matmul";
    let dev = common_device(op, &[a, b])?;
    let mut out_shape = batch.to_vec();
    out_shape.extend([m, n]);
    let out = output(&dev, op, out_dtype, &out_shape)?;
    let count: usize = batch.iter().product();
    if count * m * n == 0 {
        return Ok(CudaArray::new(out, &out_shape));
    }
    let (la, lb) = (a.layout(), b.layout());
    let batches = StridedArgs::broadcast(op, batch, &[&batch_part(la), &batch_part(lb)])?.args;
    let (ra, rb) = (la.rank(), lb.rank());
    let (a_rs, a_cs) = (la.strides[ra - 2] as i64, la.strides[ra - 1] as i64);
    let (b_rs, b_cs) = (lb.strides[rb - 2] as i64, lb.strides[rb - 1] as i64);
    let (count, m, n, k) = (count as i64, m as i64, n as i64, k as i64);
    let (pa, pb) = (a.buf.ptr, b.buf.ptr);
    if !matches!(a.dtype(), DType::F32 | DType::F64 | DType::BF16 | DType::F16) {
        return Err(Error::UnsupportedDType { op, dtype: a.dtype(), expected: "f32, f64, bf16 or f16" });
    }
    if let Some(route) = TensorCore::pick(a.dtype(), matmul_precision(), out_dtype) {
        let a_op = Operand::new(batches[0], la, batch, pa, m, a_rs, a_cs);
        let b_op = Operand::new(batches[1], lb, batch, pb, n, b_cs, b_rs);
        tensor_core_matmul(&dev, route, count, k, &a_op, &b_op, out.ptr)?;
        return Ok(CudaArray::new(out, &out_shape));
    }
    if a.dtype() == DType::F32 {
        let a_op = KMajor { layout: la, ptr: pa, width: m, rs: a_rs, ks: a_cs };
        let b_op = KMajor { layout: lb, ptr: pb, width: n, rs: b_cs, ks: b_rs };
        let in_place = reads_in_place(&a_op, batch, k) && reads_in_place(&b_op, batch, k);
        if in_place || count * m * n * k >= PACKING_PAYS {
            exact_f32_matmul(&dev, batch, count, k, &a_op, &b_op, out.ptr)?;
            return Ok(CudaArray::new(out, &out_shape));
        }
    }
    // The register-staged kernels read any strides in place, in one launch: f64, and f32
    // products too small to repay packing.
    let (name, tile) = if a.dtype() == DType::F64 { ("gemm_f64", 64) } else { ("gemm_f32", 128) };
    // The kernels loop over tiles and batches with grid strides, so the grid only has to
    // respect the hardware limits (2^31 - 1 blocks in x, 65535 in z).
    let tiles = ceil_div(m, tile) * ceil_div(n, tile);
    let cfg = LaunchConfig {
        grid_dim: (tiles.min(i32::MAX as i64) as u32, 1, count.min(65535) as u32),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let f = dev.function(op, MATMUL, name)?;
    let mut builder = dev.stream.launch_builder(&f);
    builder.arg(&count).arg(&m).arg(&n).arg(&k);
    builder.arg(&batches[0]).arg(&pa).arg(&a_rs).arg(&a_cs);
    builder.arg(&batches[1]).arg(&pb).arg(&b_rs).arg(&b_cs);
    builder.arg(&out.ptr);
    run(&dev, op, builder, cfg)?;
    Ok(CudaArray::new(out, &out_shape))
}

/// One f32 operand of the exact product seen as K rows of `width`: element (k, j) of batch
/// z at `layout`'s batch offset + k·ks + j·rs (A: j = row of A; B: j = column of B).
struct KMajor<'a> {
    layout: &'a Layout,
    ptr: u64,
    width: i64,
    rs: i64,
    ks: i64,
}

/// Multiply-adds (count·m·n·k) from which an exact f32 product whose operands need packing
/// goes to the cp.async kernel: packing costs up to two extra launches and a pass over the
/// operands, which the faster product only repays on larger problems. A first guess (about
/// 256³), to be tuned on a GPU.
const PACKING_PAYS: i64 = 1 << 24;

/// Shared memory of `gemm_f32_packed`: 3 stages of 16 rows of 128 floats, for A and B.
const PACKED_F32_SMEM: u32 = 3 * 2 * 16 * 128 * 4;

/// Exact f32 `a @ b` into the contiguous `[count, m, n]` at `c` with the cp.async kernel,
/// which reads both operands as K rows of 16-byte aligned, contiguous elements: an operand
/// already laid out so is read in place, any other is first packed into a scratch copy
/// (O(n²) next to the product's O(n³)).
fn exact_f32_matmul(dev: &Arc<CudaDevice>, batch: &[usize], count: i64, k: i64, a: &KMajor, b: &KMajor, c: u64) -> Result<()> {
    let op = "matmul";
    let (a_desc, a_ptr, lda, _a_scratch) = k_major(dev, batch, count, k, a)?;
    let (b_desc, b_ptr, ldb, _b_scratch) = k_major(dev, batch, count, k, b)?;
    let f = dev.function(op, MATMUL, "gemm_f32_packed")?;
    raise_smem(dev, &f, "gemm_f32_packed", PACKED_F32_SMEM)?;
    let tiles = ceil_div(a.width, 128) * ceil_div(b.width, 128);
    let cfg = LaunchConfig {
        grid_dim: (tiles.min(i32::MAX as i64) as u32, 1, count.min(65535) as u32),
        block_dim: (256, 1, 1),
        shared_mem_bytes: PACKED_F32_SMEM,
    };
    let mut builder = dev.stream.launch_builder(&f);
    builder.arg(&count).arg(&a.width).arg(&b.width).arg(&k);
    builder.arg(&a_desc).arg(&a_ptr).arg(&lda);
    builder.arg(&b_desc).arg(&b_ptr).arg(&ldb);
    builder.arg(&c);
    run(dev, op, builder, cfg)
}

/// The operand as `gemm_f32_packed` reads it: batch descriptor, pointer, row pitch, and the
/// scratch copy holding it where it had to be packed.
fn k_major(dev: &Arc<CudaDevice>, batch: &[usize], count: i64, k: i64, x: &KMajor) -> Result<(StridedArg, u64, i64, Option<CudaBuffer>)> {
    let op = "matmul";
    let batch_strides = batch_part(x.layout).broadcast_strides(batch);
    let src = StridedArg::of(op, &Layout { shape: batch.to_vec(), strides: batch_strides.clone(), offset: x.layout.offset })?;
    if reads_in_place(x, batch, k) {
        return Ok((src, x.ptr, x.ks, None));
    }
    let ld = ceil_div(x.width, 4) * 4;
    let broadcast = batch_strides.iter().all(|&s| s == 0);
    let copies = if broadcast { 1 } else { count };
    // Only packed: the batch stride is for the tensor cores' in-place reads.
    let rows =
        Operand { batch: src, ptr: x.ptr, rows: k, rs: x.ks, ks: x.rs, broadcast, offset: x.layout.offset as i64, batch_stride: None };
    let scratch = pack_operand(dev, "pack_f32", 4, copies, ld, x.width, &rows)?;
    let stride = if broadcast { 0 } else { (k * ld) as isize };
    let desc = StridedArg::of(op, &Layout { shape: vec![count as usize], strides: vec![stride], offset: 0 })?;
    Ok((desc, scratch.ptr, ld, Some(scratch)))
}

/// Whether `gemm_f32_packed` can read the operand as it is: contiguous along its width, and
/// every row start a multiple of 4 floats (16 bytes, for cp.async).
fn reads_in_place(x: &KMajor, batch: &[usize], k: i64) -> bool {
    let aligned = |s: i64| s % 4 == 0;
    (x.rs == 1 || x.width == 1)
        && (aligned(x.ks) || k == 1)
        && aligned(x.layout.offset as i64)
        && batch_part(x.layout).broadcast_strides(batch).iter().all(|&s| aligned(s as i64))
}

/// Lets `f` use `bytes` of dynamic shared memory (past the default 48 KiB), once per
/// device and kernel.
fn raise_smem(dev: &Arc<CudaDevice>, f: &CudaFunction, name: &str, bytes: u32) -> Result<()> {
    let op = "matmul";
    let mut raised = SMEM_RAISED.lock().unwrap();
    let key = (dev.ordinal, name.to_string());
    if !raised.contains(&key) {
        dev.bind(op)?;
        f.set_attribute(sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes as i32)
            .map_err(|e| dev.driver_error(op, format!("{name}: raising its shared memory to {bytes} bytes: {e}")))?;
        raised.push(key);
    }
    Ok(())
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// The stride `s` with which batch z (row-major over the batch dims `shape`) of an operand
/// with broadcast batch strides `strides` starts at z·s, if there is one (0 when it is the
/// same matrix for every z).
fn uniform_batch_stride(shape: &[usize], strides: &[isize]) -> Option<i64> {
    let (mut stride, mut inner) = (None, 1i64);
    for (&n, &s) in shape.iter().zip(strides).rev().filter(|(&n, _)| n != 1) {
        // The innermost dim of size > 1 sets the stride; each outer one must continue it.
        match stride {
            None => stride = Some(s as i64),
            Some(s0) if s as i64 != s0 * inner => return None,
            Some(_) => {}
        }
        inner *= n as i64;
    }
    Some(stride.unwrap_or(0))
}

/// One operand of a tensor-core product, as `rows` rows of K elements: element (r, k) of
/// batch z is at `strided_offset(batch, z) + r·rs + k·ks` (for B, its rows are columns),
/// which is `offset + z·batch_stride + r·rs + k·ks` where the batches have one stride.
struct Operand {
    batch: StridedArg,
    ptr: u64,
    rows: i64,
    rs: i64,
    ks: i64,
    /// The same matrix for every batch index.
    broadcast: bool,
    offset: i64,
    batch_stride: Option<i64>,
}

impl Operand {
    fn new(batch_arg: StridedArg, l: &Layout, batch: &[usize], ptr: u64, rows: i64, rs: i64, ks: i64) -> Operand {
        let strides = batch_part(l).broadcast_strides(batch);
        Operand {
            batch: batch_arg,
            ptr,
            rows,
            rs,
            ks,
            broadcast: strides.iter().all(|&s| s == 0),
            offset: l.offset as i64,
            batch_stride: uniform_batch_stride(batch, &strides),
        }
    }
}

/// Which tensor-core product runs: what its operands hold and which kernels it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TensorCore {
    /// f32 tensors rounded to TF32 ([`MatmulPrecision::High`]), f32 result.
    Tf32,
    /// f32 tensors rounded to bf16 ([`MatmulPrecision::Bf16`]), f32 result.
    Bf16,
    /// bf16 tensors, bf16 result.
    Bf16Native,
    /// f16 tensors, f16 result.
    F16Native,
    /// bf16 tensors, f32 result (the accumulators kept).
    Bf16Wide,
    /// f16 tensors, f32 result.
    F16Wide,
}

impl TensorCore {
    /// The route of a product of `dtype` tensors under `precision`: None for the exact
    /// kernels. bf16 and f16 take their tensor cores whatever the precision, as in PyTorch.
    /// `out` is the result's dtype: the operands' own, or f32 for halves whose accumulators
    /// are kept.
    fn pick(dtype: DType, precision: MatmulPrecision, out: DType) -> Option<TensorCore> {
        let wide = out == DType::F32;
        match (dtype, precision) {
            (DType::BF16, _) if wide => Some(TensorCore::Bf16Wide),
            (DType::F16, _) if wide => Some(TensorCore::F16Wide),
            (DType::BF16, _) => Some(TensorCore::Bf16Native),
            (DType::F16, _) => Some(TensorCore::F16Native),
            (DType::F32, MatmulPrecision::High) => Some(TensorCore::Tf32),
            (DType::F32, MatmulPrecision::Bf16) => Some(TensorCore::Bf16),
            _ => None,
        }
    }

    /// The pack kernel, the product kernel, and the bytes of one operand element.
    fn kernels(self) -> (&'static str, &'static str, i64) {
        match self {
            TensorCore::Tf32 => ("pack_tf32", "gemm_tf32", 4),
            TensorCore::Bf16 => ("pack_bf16", "gemm_bf16", 2),
            TensorCore::Bf16Native => ("pack_b16", "gemm_bf16_bf16out", 2),
            TensorCore::F16Native => ("pack_b16", "gemm_f16_f16out", 2),
            TensorCore::Bf16Wide => ("pack_b16", "gemm_bf16", 2),
            TensorCore::F16Wide => ("pack_b16", "gemm_f16", 2),
        }
    }

    /// Whether the tensors already hold what the mma takes, so that operands laid out as
    /// the kernel reads them need no pack (f32 ones always need rounding).
    fn native(self) -> bool {
        matches!(self, TensorCore::Bf16Native | TensorCore::F16Native | TensorCore::Bf16Wide | TensorCore::F16Wide)
    }
}

/// Where a bf16 / f16 operand can be read as it is by the tensor-core kernels: the address
/// of its first element, its row pitch and batch stride (elements). It must be K-contiguous
/// (any stride along K when K <= 1) with one batch stride, and every row start 16-byte
/// aligned, as cp.async needs: the first element, the pitch and the batch stride all
/// multiples of 16 bytes. Elements past K in a row are never read (tc_load copies only the
/// bytes below K and zero-fills the rest), so K needs no padding.
fn tc_in_place(x: &Operand, k: i64, elem: i64) -> Option<(u64, i64, i64)> {
    let per16 = 16 / elem;
    let ptr = x.ptr + (x.offset * elem) as u64;
    let bs = x.batch_stride?;
    // One row: its pitch is never used to step, so any aligned one does.
    let ld = if x.rows == 1 { ceil_div(k.max(1), per16) * per16 } else { x.rs };
    ((x.ks == 1 || k <= 1) && ptr.is_multiple_of(16) && ld % per16 == 0 && bs % per16 == 0).then_some((ptr, ld, bs))
}

/// A tensor-core product kernel of ptx/kernels/matmul_tc.cuh: its output tile, threads and
/// shared memory (`stages` slices of 128 bytes per row of A and of B).
struct TcKernel {
    module: tessera_ptx::Module,
    name: String,
    bm: i64,
    bn: i64,
    threads: u32,
    smem: u32,
}

impl TcKernel {
    /// 128×128 tiles on 4 warps with 3 stages (96 KiB: two blocks per SM on Hopper, and it
    /// fits every sm_80+ GPU). For tuning on a GPU, `TESSERA_GEMM_VARIANT` picks a shape of
    /// ptx/kernels/matmul_tune.cu: `_s4` (4 stages, 128 KiB) or `_w8` (128×256 tiles on 8
    /// warps, 144 KiB; neither fits the 99 KiB of sm_86 / sm_89). On an H100 at 4096³ both
    /// lost to the default (TF32 139 and 155 against 165 TFLOP/s; BF16 244 and 260 against
    /// 277), so the default stays; other cards may rank them differently. Only the
    /// f32-output kernels have variants (`tunable`); the bf16 / f16-output ones share
    /// gemm_bf16's shape, so its measurements stand for them.
    fn new(base: &str, tunable: bool) -> TcKernel {
        let variant = if tunable { std::env::var("TESSERA_GEMM_VARIANT").unwrap_or_default() } else { String::new() };
        let (module, suffix, warps_n, stages) = match variant.as_str() {
            "_s4" => (MATMUL_TUNE, "_s4", 2, 4),
            "_w8" => (MATMUL_TUNE, "_w8", 4, 3),
            _ => (MATMUL, "", 2, 3),
        };
        let (bm, bn) = (128, 64 * warps_n);
        TcKernel { module, name: format!("{base}{suffix}"), bm, bn, threads: 64 * warps_n as u32, smem: stages * (bm + bn) as u32 * 128 }
    }
}

/// Devices and kernels whose dynamic shared-memory limit was raised past the default 48 KiB.
static SMEM_RAISED: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());

/// `a @ b` on tensor cores into the contiguous `[count, m, n]` at `c` (f32 for f32 tensors
/// and the wide routes, else their dtype): each operand is read in place where it can be (bf16 / f16 ones laid
/// out K-contiguous, see [`tc_in_place`]), else first packed into a K-contiguous scratch
/// copy, rounded to TF32 / bf16 from f32 (one copy of a fully broadcast operand; A's batches
/// folded into M when B is broadcast), then multiplied.
fn tensor_core_matmul(dev: &Arc<CudaDevice>, route: TensorCore, count: i64, k: i64, a: &Operand, b: &Operand, c: u64) -> Result<()> {
    let op = "matmul";
    let (pack, gemm, elem) = route.kernels();
    // Rows padded to 8 elements: every packed row starts 16-byte aligned, as cp.async needs.
    let kp = ceil_div(k, 8) * 8;
    let in_place = |x: &Operand| if route.native() { tc_in_place(x, k, elem) } else { None };
    let (a_in, b_in) = (in_place(a), in_place(b));
    // Folding needs A's batches one after another at its row pitch: always so when packed.
    let fold = count > 1 && b.broadcast && a_in.is_none_or(|(_, ld, bs)| bs == a.rows * ld);
    let na = if a.broadcast && !fold { 1 } else { count };
    let nb = if b.broadcast { 1 } else { count };
    let (pa_ptr, lda, a_bs, _pa) = tc_operand(dev, pack, elem, na, kp, k, a, a_in)?;
    let (pb_ptr, ldb, b_bs, _pb) = tc_operand(dev, pack, elem, nb, kp, k, b, b_in)?;
    let (gb, gm, n) = if fold { (1, count * a.rows, b.rows) } else { (count, a.rows, b.rows) };

    let kern = TcKernel::new(gemm, !route.native());
    let f = dev.function(op, kern.module, &kern.name)?;
    raise_smem(dev, &f, &kern.name, kern.smem)?;
    let tiles = (ceil_div(gm, kern.bm) * ceil_div(n, kern.bn)) as usize;
    let cfg = LaunchConfig {
        grid_dim: (tiles.min(i32::MAX as usize) as u32, 1, (gb as usize).min(65535) as u32),
        block_dim: (kern.threads, 1, 1),
        shared_mem_bytes: kern.smem,
    };
    let mut builder = dev.stream.launch_builder(&f);
    builder.arg(&gb).arg(&gm).arg(&n).arg(&k);
    builder.arg(&pa_ptr).arg(&lda).arg(&a_bs);
    builder.arg(&pb_ptr).arg(&ldb).arg(&b_bs);
    builder.arg(&c);
    run(dev, op, builder, cfg)
    // The scratch buffers go back to the allocator here; stream order keeps their next
    // user behind this product.
}

/// An operand as the tensor-core kernels read it: pointer, row pitch and batch stride (in
/// elements), and the scratch copy holding it when it is not read `in_place` but packed
/// (`copies` matrices; batch stride 0 for one shared by every batch).
#[allow(clippy::too_many_arguments)]
fn tc_operand(
    dev: &Arc<CudaDevice>,
    pack: &str,
    elem: i64,
    copies: i64,
    kp: i64,
    k: i64,
    x: &Operand,
    in_place: Option<(u64, i64, i64)>,
) -> Result<(u64, i64, i64, Option<CudaBuffer>)> {
    if let Some((ptr, ld, bs)) = in_place {
        return Ok((ptr, ld, bs, None));
    }
    let buf = pack_operand(dev, pack, elem, copies, kp, k, x)?;
    let bs = if copies == 1 { 0 } else { x.rows * kp };
    Ok((buf.ptr, kp, bs, Some(buf)))
}

/// `copies` packed matrices of `x` (the first only, when 1): `x.rows` rows of `kp` elements
/// of `elem` bytes, elements k..kp zero (`pack` converts them: pack_tf32 and pack_bf16
/// round f32, pack_f32 and pack_b16 copy).
fn pack_operand(dev: &Arc<CudaDevice>, pack: &str, elem: i64, copies: i64, kp: i64, k: i64, x: &Operand) -> Result<CudaBuffer> {
    let op = "matmul";
    let elems = copies * x.rows * kp;
    let buf = CudaBuffer::alloc(dev, op, DType::F32, ceil_div(elems * elem, 4) as usize)?;
    if elems == 0 {
        return Ok(buf);
    }
    let tiles = (ceil_div(x.rows, 32) * ceil_div(kp, 32)) as usize;
    let cfg = LaunchConfig {
        grid_dim: (tiles.min(i32::MAX as usize) as u32, 1, (copies as usize).min(65535) as u32),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let f = dev.function(op, MATMUL, pack)?;
    let mut builder = dev.stream.launch_builder(&f);
    builder.arg(&copies).arg(&x.rows).arg(&k).arg(&kp);
    builder.arg(&x.batch).arg(&x.ptr).arg(&x.rs).arg(&x.ks);
    builder.arg(&buf.ptr);
    run(dev, op, builder, cfg)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::uniform_batch_stride;

    #[test]
    fn uniform_batch_stride_finds_one_stride_or_none() {
        // Contiguous batches, size-1 dims anywhere, and a fully broadcast operand.
        assert_eq!(uniform_batch_stride(&[2, 3], &[3 * 40, 40]), Some(40));
        assert_eq!(uniform_batch_stride(&[2, 1, 3], &[120, 7, 40]), Some(40));
        assert_eq!(uniform_batch_stride(&[2, 3], &[0, 0]), Some(0));
        assert_eq!(uniform_batch_stride(&[], &[]), Some(0));
        // Broadcast along one dim only, or batches out of order: no single stride.
        assert_eq!(uniform_batch_stride(&[2, 3], &[40, 0]), None);
        assert_eq!(uniform_batch_stride(&[2, 3], &[0, 40]), None);
        assert_eq!(uniform_batch_stride(&[2, 3], &[40, 80]), None);
    }
}
