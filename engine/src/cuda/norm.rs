//! Batch norm and layer norm, forward and backward (ptx/kernels/norm.cu). Inputs are read as
//! contiguous `[N, C, S]` (batch norm) or `[rows, D]` (layer norm) arrays, copied first only
//! when strided; per-channel and per-row vectors likewise. Weight and bias are optional (a
//! null pointer to the kernel).
//!
//! bf16 / f16 run in f32 inside the kernels; the statistics returned to the engine are in the
//! input's dtype, except that the batch-norm backward's per-channel sums stay f32 between its
//! two launches and are rounded once for the weight / bias gradients.

use super::elementwise::cast;
use super::rows::{contiguous, Contiguous, RowGroup, BLOCK_THREADS};
use super::{acc_dtype, common_device, kernel, output};
use crate::cuda::launch::{grid_stride, run};
use crate::cuda::{CudaArray, CudaDevice, CudaView};
use crate::Result;
use cudarc::driver::{LaunchConfig, PushKernelArg};
use std::sync::Arc;
use tessera_ptx::NORM;

/// `(N, C, S)` of an `[N, C, ...]` input (rank checked by the caller).
fn ncs(x: &CudaView) -> (usize, usize, usize) {
    (x.shape()[0], x.shape()[1], x.shape()[2..].iter().product())
}

fn optional(t: Option<&CudaView>, op: &'static str) -> Result<Option<Contiguous>> {
    t.map(|t| contiguous(t, op)).transpose()
}

fn ptr_or_null(c: &Option<Contiguous>) -> u64 {
    c.as_ref().map_or(0, |c| c.ptr)
}

/// A block per channel, as many blocks as fill the GPU (the kernels loop over channels).
fn per_channel(dev: &CudaDevice, c: usize) -> LaunchConfig {
    let blocks = c.clamp(1, dev.sm_count as usize * 32);
    LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (BLOCK_THREADS, 1, 1), shared_mem_bytes: 0 }
}

/// Per-channel batch mean, biased variance and `1 / sqrt(var + eps)`, each `[C]`; `N · S > 0`.
pub(crate) fn batch_norm_stats(x: &CudaView, eps: f64) -> Result<(CudaArray, CudaArray, CudaArray)> {
    let op = "batch_norm";
    let dev = x.buf.dev.clone();
    let (n, c, s) = ncs(x);
    let (mean, var, rstd) = (output(&dev, op, x.dtype(), &[c])?, output(&dev, op, x.dtype(), &[c])?, output(&dev, op, x.dtype(), &[c])?);
    if c > 0 {
        let xs = contiguous(x, op)?;
        let f = dev.function(op, NORM, &kernel("batch_norm_stats", x.dtype()))?;
        let (n64, c64, s64) = (n as i64, c as i64, s as i64);
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&n64).arg(&c64).arg(&s64).arg(&eps).arg(&xs.ptr).arg(&mean.ptr).arg(&var.ptr).arg(&rstd.ptr);
        run(&dev, op, b, per_channel(&dev, c))?;
    }
    Ok((CudaArray::new(mean, &[c]), CudaArray::new(var, &[c]), CudaArray::new(rstd, &[c])))
}

/// `(x - mean) · rstd · weight + bias` per channel (vectors checked `[C]` by the caller).
pub(crate) fn batch_norm_apply(
    x: &CudaView,
    mean: &CudaView,
    rstd: &CudaView,
    weight: Option<&CudaView>,
    bias: Option<&CudaView>,
) -> Result<CudaArray> {
    let op = "batch_norm";
    let dev = x.buf.dev.clone();
    let (_, c, s) = ncs(x);
    let out = output(&dev, op, x.dtype(), x.shape())?;
    let total = x.numel();
    if total > 0 {
        let (xs, ms, rs) = (contiguous(x, op)?, contiguous(mean, op)?, contiguous(rstd, op)?);
        let (ws, bs) = (optional(weight, op)?, optional(bias, op)?);
        let f = dev.function(op, NORM, &kernel("batch_norm_apply", x.dtype()))?;
        let (t64, c64, s64) = (total as i64, c as i64, s as i64);
        let (wp, bp) = (ptr_or_null(&ws), ptr_or_null(&bs));
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&t64).arg(&c64).arg(&s64).arg(&xs.ptr).arg(&ms.ptr).arg(&rs.ptr).arg(&wp).arg(&bp).arg(&out.ptr);
        run(&dev, op, b, grid_stride(&dev, total))?;
    }
    Ok(CudaArray::new(out, x.shape()))
}

/// Backward of training-mode batch norm: `(dx, dweight, dbias)` (shapes, dtypes and devices,
/// the per-channel vectors' included, checked by the caller: the kernels index them by
/// channel).
pub(crate) fn batch_norm_backward(
    x: &CudaView,
    grad: &CudaView,
    mean: &CudaView,
    rstd: &CudaView,
    weight: Option<&CudaView>,
) -> Result<(CudaArray, CudaArray, CudaArray)> {
    let op = "batch_norm_backward";
    let (n, c, s) = ncs(x);
    let dev = common_device(op, &[x, grad])?;
    let dtype = x.dtype();
    // The sums feed the dx launch: kept in the accumulator dtype (f32 for the halves).
    let acc = acc_dtype(dtype);
    let (dx, sum_gxhat, sum_g) = (output(&dev, op, dtype, x.shape())?, output(&dev, op, acc, &[c])?, output(&dev, op, acc, &[c])?);
    if c > 0 {
        let (xs, gs, ms, rs) = (contiguous(x, op)?, contiguous(grad, op)?, contiguous(mean, op)?, contiguous(rstd, op)?);
        let ws = optional(weight, op)?;
        let (n64, c64, s64) = (n as i64, c as i64, s as i64);
        let f = dev.function(op, NORM, &kernel("batch_norm_backward_sums", dtype))?;
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&n64).arg(&c64).arg(&s64).arg(&xs.ptr).arg(&gs.ptr).arg(&ms.ptr).arg(&rs.ptr).arg(&sum_g.ptr).arg(&sum_gxhat.ptr);
        run(&dev, op, b, per_channel(&dev, c))?;
        let total = x.numel();
        if total > 0 {
            let f = dev.function(op, NORM, &kernel("batch_norm_backward_dx", dtype))?;
            let (t64, count, wp) = (total as i64, (n * s) as f64, ptr_or_null(&ws));
            let mut b = dev.stream.launch_builder(&f);
            b.arg(&t64).arg(&c64).arg(&s64).arg(&count).arg(&xs.ptr).arg(&gs.ptr).arg(&ms.ptr).arg(&rs.ptr).arg(&wp);
            b.arg(&sum_g.ptr).arg(&sum_gxhat.ptr).arg(&dx.ptr);
            run(&dev, op, b, grid_stride(&dev, total))?;
        }
    }
    // Rounded to the input's dtype (a no-op unless it is bf16 / f16).
    let round = |sums: CudaArray| if acc == dtype { Ok(sums) } else { cast(&sums.view(), dtype) };
    let (dw, db) = (round(CudaArray::new(sum_gxhat, &[c]))?, round(CudaArray::new(sum_g, &[c]))?);
    Ok((CudaArray::new(dx, x.shape()), dw, db))
}

/// Layer norm over the last dim `d > 0`: `(y, mean, rstd)` (weight and bias checked `[D]`).
pub(crate) fn layer_norm(
    x: &CudaView,
    weight: Option<&CudaView>,
    bias: Option<&CudaView>,
    eps: f64,
) -> Result<(CudaArray, CudaArray, CudaArray)> {
    let op = "layer_norm";
    let dev = x.buf.dev.clone();
    let d = x.shape()[x.rank() - 1];
    let lead = &x.shape()[..x.rank() - 1];
    let rows = x.numel() / d;
    let dtype = x.dtype();
    let (y, mean, rstd) = (output(&dev, op, dtype, x.shape())?, output(&dev, op, dtype, lead)?, output(&dev, op, dtype, lead)?);
    if rows > 0 {
        let xs = contiguous(x, op)?;
        let (ws, bs) = (optional(weight, op)?, optional(bias, op)?);
        let (wp, bp) = (ptr_or_null(&ws), ptr_or_null(&bs));
        let group = RowGroup::for_len(d);
        let f = dev.function(op, NORM, &kernel(&group.kernel_base("layer_norm"), dtype))?;
        let (r64, d64) = (rows as i64, d as i64);
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&r64).arg(&d64).arg(&eps).arg(&xs.ptr).arg(&wp).arg(&bp).arg(&y.ptr).arg(&mean.ptr).arg(&rstd.ptr);
        run(&dev, op, b, group.launch(&dev, rows))?;
    }
    Ok((CudaArray::new(y, x.shape()), CudaArray::new(mean, lead), CudaArray::new(rstd, lead)))
}

/// Backward of layer norm: `(dx, x̂)` (shapes, dtypes and devices checked by the caller, the
/// per-row and per-column vectors' lengths included: the kernels index them by row / column).
pub(crate) fn layer_norm_backward(
    x: &CudaView,
    grad: &CudaView,
    mean: &CudaView,
    rstd: &CudaView,
    weight: Option<&CudaView>,
) -> Result<(CudaArray, CudaArray)> {
    let op = "layer_norm_backward";
    let d = x.shape()[x.rank() - 1];
    let rows = x.numel().checked_div(d).unwrap_or(0);
    let dev: Arc<CudaDevice> = common_device(op, &[x, grad])?;
    let dtype = x.dtype();
    let (dx, xhat) = (output(&dev, op, dtype, x.shape())?, output(&dev, op, dtype, x.shape())?);
    if rows > 0 {
        let (xs, gs, ms, rs) = (contiguous(x, op)?, contiguous(grad, op)?, contiguous(mean, op)?, contiguous(rstd, op)?);
        let ws = optional(weight, op)?;
        let wp = ptr_or_null(&ws);
        let group = RowGroup::for_len(d);
        let f = dev.function(op, NORM, &kernel(&group.kernel_base("layer_norm_backward"), dtype))?;
        let (r64, d64) = (rows as i64, d as i64);
        let mut b = dev.stream.launch_builder(&f);
        b.arg(&r64).arg(&d64).arg(&xs.ptr).arg(&gs.ptr).arg(&ms.ptr).arg(&rs.ptr).arg(&wp).arg(&dx.ptr).arg(&xhat.ptr);
        run(&dev, op, b, group.launch(&dev, rows))?;
    }
    Ok((CudaArray::new(dx, x.shape()), CudaArray::new(xhat, x.shape())))
}
