//! Device storage behind one enum: host memory or a CUDA buffer; no op signature depends on
//! which.

use crate::cuda::CudaBuffer;
use crate::{DType, Device};

/// Host memory: one typed buffer.
#[derive(Debug, Clone)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    BF16(Vec<half::bf16>),
    F16(Vec<half::f16>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::U8(_) => DType::U8,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F16(_) => DType::F16,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::I64(v) => v.len(),
            CpuStorage::U8(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor's memory, wherever it lives.
#[derive(Debug)]
pub(crate) enum Storage {
    Cpu(CpuStorage),
    Cuda(CudaBuffer),
}

impl Storage {
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(b) => b.dev.as_device(),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Cuda(b) => b.dtype,
        }
    }

    /// Elements held.
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            Storage::Cuda(b) => b.len,
        }
    }

    /// Host bytes held, for the host memory counters (the CUDA allocator keeps its own).
    pub fn host_bytes(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len() * s.dtype().size_in_bytes(),
            Storage::Cuda(_) => 0,
        }
    }
}

/// Live bytes of tensor storage on the host, for tests and benchmarks that measure what a
/// graph holds. Updated when storages are created and dropped.
pub fn live_cpu_bytes() -> usize {
    LIVE_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

pub(crate) static LIVE_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Peak of [`live_cpu_bytes`] since the last [`reset_peak_cpu_bytes`].
pub fn peak_cpu_bytes() -> usize {
    PEAK_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Restarts peak tracking from the current live figure.
pub fn reset_peak_cpu_bytes() {
    PEAK_BYTES.store(live_cpu_bytes(), std::sync::atomic::Ordering::Relaxed);
}

pub(crate) static PEAK_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Owns a storage and keeps the live-byte counters in step with its lifetime.
#[derive(Debug)]
pub(crate) struct TrackedStorage(pub Storage);

impl TrackedStorage {
    pub fn new(s: Storage) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let live = LIVE_BYTES.fetch_add(s.host_bytes(), Relaxed) + s.host_bytes();
        PEAK_BYTES.fetch_max(live, Relaxed);
        TrackedStorage(s)
    }
}

impl Drop for TrackedStorage {
    fn drop(&mut self) {
        LIVE_BYTES.fetch_sub(self.0.host_bytes(), std::sync::atomic::Ordering::Relaxed);
    }
}
