//! Batched matrix products on a GPU (ptx/kernels/gemm.cu), and the f32 precision setting
//! that picks between its exact, TF32 and bf16 kernels.
//!
//! Operands keep their strides: a transposed, sliced or flipped matrix is read in place
//! through its row and column strides, and the batch dims (broadcast ones included, with
//! stride 0) reach the kernel as one strided descriptor per operand.

use super::{common_device, output};
use crate::cuda::launch::{run, StridedArgs};
use crate::{DType, Layout, Result, Tensor};
use cudarc::driver::{LaunchConfig, PushKernelArg};
use std::sync::atomic::{AtomicU8, Ordering};
use tessera_ptx::GEMM;

/// How f32 matrix products on a GPU trade precision for speed, like PyTorch's
/// `torch.set_float32_matmul_precision`. f64 products are always exact, and CPU products
/// are always exact f32 whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatmulPrecision {
    /// Exact f32 (CUDA-core FMAs). The default.
    #[default]
    Highest,
    /// TF32 tensor cores: each input rounded to 10 mantissa bits (about 3 decimal digits),
    /// products summed in f32.
    High,
    /// bf16 tensor cores: each f32 input rounded to bf16 (7 mantissa bits, nearest even) as
    /// it is staged on chip, products summed in f32; inputs and result stay f32 tensors.
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

/// The kernel for a dtype under the current precision, and its output tile edge.
fn kernel_for(dtype: DType) -> (&'static str, usize) {
    match (dtype, matmul_precision()) {
        (DType::F64, _) => ("gemm_f64", 64),
        (_, MatmulPrecision::Highest) => ("gemm_f32", 128),
        (_, MatmulPrecision::High) => ("gemm_tf32", 128),
        (_, MatmulPrecision::Bf16) => ("gemm_bf16", 128),
    }
}

/// The leading (batch) dims of a matrix operand's layout.
fn batch_part(l: &Layout) -> Layout {
    let r = l.rank() - 2;
    Layout { shape: l.shape[..r].to_vec(), strides: l.strides[..r].to_vec(), offset: l.offset }
}

/// `a @ b` for float operands of rank ≥ 2 (`[.., m, k]` and `[.., k, n]`) whose batch dims
/// broadcast to `batch` (checked by the caller): a contiguous `[batch.., m, n]` result.
pub(crate) fn batched_matmul(a: &Tensor, b: &Tensor, batch: &[usize], m: usize, k: usize, n: usize) -> Result<Tensor> {
    let op = "matmul";
    let dev = common_device(op, &[a, b])?;
    let mut out_shape = batch.to_vec();
    out_shape.extend([m, n]);
    let out = output(&dev, op, a.dtype(), &out_shape)?;
    let count: usize = batch.iter().product();
    if count * m * n == 0 {
        return Ok(Tensor::from_cuda(out, &out_shape));
    }
    let (la, lb) = (a.layout(), b.layout());
    let batches = StridedArgs::broadcast(op, batch, &[&batch_part(la), &batch_part(lb)])?.args;
    let (ra, rb) = (la.rank(), lb.rank());
    let (a_rs, a_cs) = (la.strides[ra - 2] as i64, la.strides[ra - 1] as i64);
    let (b_rs, b_cs) = (lb.strides[rb - 2] as i64, lb.strides[rb - 1] as i64);
    let (name, tile) = kernel_for(a.dtype());
    // The kernels loop over tiles and batches with grid strides, so the grid only has to
    // respect the hardware limits (2^31 - 1 blocks in x, 65535 in z).
    let tiles = m.div_ceil(tile) * n.div_ceil(tile);
    let cfg = LaunchConfig {
        grid_dim: (tiles.min(i32::MAX as usize) as u32, 1, count.min(65535) as u32),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let (count, m, n, k) = (count as i64, m as i64, n as i64, k as i64);
    let (pa, pb) = (super::buffer(a, op)?.ptr, super::buffer(b, op)?.ptr);
    let f = dev.function(op, GEMM, name)?;
    let mut builder = dev.stream.launch_builder(&f);
    builder.arg(&count).arg(&m).arg(&n).arg(&k);
    builder.arg(&batches[0]).arg(&pa).arg(&a_rs).arg(&a_cs);
    builder.arg(&batches[1]).arg(&pb).arg(&b_rs).arg(&b_cs);
    builder.arg(&out.ptr);
    run(&dev, op, builder, cfg)?;
    Ok(Tensor::from_cuda(out, &out_shape))
}
