//! Random fills (ptx/kernels/random.cu): the counter-based functions of engine/src/cpu/random.rs,
//! element for element, so a GPU draw has the CPU draw's bits. The generator hands over its
//! seed and the first counter of the draw; it has already advanced past it.

use super::kernel;
use crate::cuda::launch::{grid_stride, run};
use crate::cuda::{CudaArray, CudaBuffer, CudaDevice};
use crate::{DType, Result};
use cudarc::driver::PushKernelArg;
use std::sync::Arc;
use tessera_ptx::RANDOM;

/// Launches `name(n, seed, start, a, b, out)` over a new `shape` buffer of `dtype`.
#[allow(clippy::too_many_arguments)]
fn fill<A: cudarc::driver::DeviceRepr, B: cudarc::driver::DeviceRepr>(
    dev: &Arc<CudaDevice>,
    op: &'static str,
    name: &str,
    shape: &[usize],
    dtype: DType,
    (seed, start): (u64, u64),
    a: A,
    b: B,
) -> Result<CudaArray> {
    let n: usize = shape.iter().product();
    let out = CudaBuffer::alloc(dev, op, dtype, n)?;
    if n > 0 {
        let f = dev.function(op, RANDOM, name)?;
        let n64 = n as i64;
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&seed).arg(&start).arg(&a).arg(&b).arg(&out.ptr);
        run(dev, op, l, grid_stride(dev, n))?;
    }
    Ok(CudaArray::new(out, shape))
}

/// `low + (high − low) · u` per element, counters `start + i`.
pub(crate) fn uniform(
    dev: &Arc<CudaDevice>,
    shape: &[usize],
    seed: u64,
    start: u64,
    low: f64,
    high: f64,
    dtype: DType,
) -> Result<CudaArray> {
    fill(dev, "uniform", &kernel("uniform", dtype), shape, dtype, (seed, start), low, high)
}

/// `mean + std · z` per element, counters `start + 2i` and `start + 2i + 1`.
pub(crate) fn normal(
    dev: &Arc<CudaDevice>,
    shape: &[usize],
    seed: u64,
    start: u64,
    mean: f64,
    std: f64,
    dtype: DType,
) -> Result<CudaArray> {
    fill(dev, "normal", &kernel("normal", dtype), shape, dtype, (seed, start), mean, std)
}

/// A u8 mask, `u < p` per element.
pub(crate) fn bernoulli(dev: &Arc<CudaDevice>, shape: &[usize], seed: u64, start: u64, p: f64) -> Result<CudaArray> {
    // One parameter fewer than `fill`'s kernels take.
    let n: usize = shape.iter().product();
    let op = "bernoulli";
    let out = CudaBuffer::alloc(dev, op, DType::U8, n)?;
    if n > 0 {
        let f = dev.function(op, RANDOM, "bernoulli")?;
        let n64 = n as i64;
        let mut l = dev.stream.launch_builder(&f);
        l.arg(&n64).arg(&seed).arg(&start).arg(&p).arg(&out.ptr);
        run(dev, op, l, grid_stride(dev, n))?;
    }
    Ok(CudaArray::new(out, shape))
}

/// i64 values `low + ⌊bits · range / 2⁶⁴⌋`.
pub(crate) fn randint(dev: &Arc<CudaDevice>, shape: &[usize], seed: u64, start: u64, low: i64, range: u64) -> Result<CudaArray> {
    fill(dev, "randint", "randint", shape, DType::I64, (seed, start), low, range)
}
