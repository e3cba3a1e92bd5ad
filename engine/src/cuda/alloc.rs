//! A caching allocator: freed device buffers go to a free list by size class and the next
//! request of that class takes one back, so after the first training step no step calls
//! the driver's allocator (`cuMemAlloc` synchronizes the device and costs microseconds to
//! milliseconds). All work runs on one stream, so a buffer freed after its last kernel was
//! queued can be handed to the next kernel at once: stream order keeps them apart.

use cudarc::driver::{result, sys, DriverError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// A snapshot of one device's allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    /// Bytes held by live tensors (rounded up to their size class).
    pub live_bytes: usize,
    /// Peak of `live_bytes` since the process started or the last [`reset_peak_memory`](super::reset_peak_memory).
    pub peak_bytes: usize,
    /// Bytes in the free lists, ready for reuse.
    pub cached_bytes: usize,
    /// Calls to the driver's `cuMemAlloc` so far.
    pub driver_allocs: usize,
}

#[derive(Default)]
pub(crate) struct CachingAllocator {
    free: Mutex<HashMap<usize, Vec<sys::CUdeviceptr>>>,
    live: AtomicUsize,
    peak: AtomicUsize,
    cached: AtomicUsize,
    driver_allocs: AtomicUsize,
}

/// The size class of a request: 512-byte steps up to 1 MiB, then four classes per power of
/// two (at most 25% slack), so buffers of nearly equal sizes share one free list.
pub(crate) fn size_class(bytes: usize) -> usize {
    const SMALL: usize = 1 << 20;
    let bytes = bytes.max(1);
    if bytes <= SMALL {
        return bytes.div_ceil(512) * 512;
    }
    let p = usize::BITS - 1 - bytes.leading_zeros(); // 2^p <= bytes
    let quarter = 1usize << (p - 2);
    bytes.div_ceil(quarter) * quarter
}

/// What a failed allocation reports.
pub(crate) struct OutOfMemory {
    pub free: usize,
    pub total: usize,
    pub driver: Option<DriverError>,
}

impl CachingAllocator {
    /// A buffer of at least `bytes` (its size class is returned beside it). The device's
    /// context must be current on this thread.
    pub fn alloc(&self, bytes: usize) -> Result<(sys::CUdeviceptr, usize), OutOfMemory> {
        let class = size_class(bytes);
        let reused = self.free.lock().unwrap().get_mut(&class).and_then(Vec::pop);
        let ptr = match reused {
            Some(p) => {
                self.cached.fetch_sub(class, Relaxed);
                p
            }
            None => self.driver_alloc(class)?,
        };
        let live = self.live.fetch_add(class, Relaxed) + class;
        self.peak.fetch_max(live, Relaxed);
        Ok((ptr, class))
    }

    fn driver_alloc(&self, class: usize) -> Result<sys::CUdeviceptr, OutOfMemory> {
        self.driver_allocs.fetch_add(1, Relaxed);
        match unsafe { result::malloc_sync(class) } {
            Ok(p) => Ok(p),
            Err(DriverError(sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY)) => {
                // Give the cached buffers back to the driver and try once more.
                self.release_cached();
                unsafe { result::malloc_sync(class) }.map_err(|e| {
                    let (free, total) = result::mem_get_info().unwrap_or((0, 0));
                    OutOfMemory { free, total, driver: Some(e) }
                })
            }
            Err(e) => Err(OutOfMemory { free: 0, total: 0, driver: Some(e) }),
        }
    }

    /// Takes a buffer back into its free list (no driver call).
    pub fn free(&self, ptr: sys::CUdeviceptr, class: usize) {
        self.live.fetch_sub(class, Relaxed);
        self.cached.fetch_add(class, Relaxed);
        self.free.lock().unwrap().entry(class).or_default().push(ptr);
    }

    /// Returns every cached buffer to the driver. The context must be current.
    pub fn release_cached(&self) {
        let mut free = self.free.lock().unwrap();
        for (class, ptrs) in free.drain() {
            for p in ptrs {
                self.cached.fetch_sub(class, Relaxed);
                // A failure here leaves the memory to the driver's teardown; nothing to undo.
                let _ = unsafe { result::free_sync(p) };
            }
        }
    }

    /// Restarts peak tracking from the current live figure.
    pub fn reset_peak(&self) {
        self.peak.store(self.live.load(Relaxed), Relaxed);
    }

    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            live_bytes: self.live.load(Relaxed),
            peak_bytes: self.peak.load(Relaxed),
            cached_bytes: self.cached.load(Relaxed),
            driver_allocs: self.driver_allocs.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_round_up_with_bounded_slack() {
        assert_eq!(size_class(0), 512);
        assert_eq!(size_class(1), 512);
        assert_eq!(size_class(513), 1024);
        assert_eq!(size_class(1 << 20), 1 << 20);
        assert_eq!(size_class((1 << 20) + 1), (1 << 20) + (1 << 18));
        for bytes in [3_000_001usize, 7 << 22, 123_456_789] {
            let c = size_class(bytes);
            assert!(c >= bytes && (c - bytes) * 4 <= bytes, "{bytes} -> {c}");
            assert_eq!(size_class(c), c, "a class is its own class");
        }
    }
}
