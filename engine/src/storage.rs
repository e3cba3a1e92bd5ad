//! Device storage behind one enum: host memory or a CUDA buffer; no op signature depends on
//! which.

use crate::cuda::CudaBuffer;
pub use crate::dtype::CpuStorage;
use crate::{DType, Device};

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
