//! One [`CudaDevice`] per GPU ordinal, created on first use and kept for the process: its
//! context, its stream, the loaded PTX modules and the caching allocator.

use super::alloc::{CachingAllocator, MemoryStats};
use crate::{Device, Error, Result};
use cudarc::driver::{sys, CudaContext, CudaFunction, CudaModule, CudaStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub(crate) struct CudaDevice {
    pub ordinal: usize,
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub alloc: CachingAllocator,
    /// Streaming multiprocessors: grid sizes of grid-stride kernels scale with it.
    pub sm_count: u32,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaDevice({})", self.ordinal)
    }
}

/// Why no CUDA device can be used here, or `None` if the driver is loadable.
fn driver_missing() -> Option<String> {
    // cudarc panics when libcuda cannot be loaded, so ask first.
    if !unsafe { sys::is_culib_present() } {
        return Some("no CUDA driver (libcuda.so) was found on this machine".into());
    }
    None
}

/// Number of CUDA GPUs visible; 0 where there is no driver or no GPU.
pub fn device_count() -> usize {
    if driver_missing().is_some() {
        return 0;
    }
    CudaContext::device_count().map(|n| n.max(0) as usize).unwrap_or(0)
}

/// Whether at least one CUDA GPU can be used.
pub fn is_available() -> bool {
    device_count() > 0
}

static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<CudaDevice>>>> = OnceLock::new();

/// The device with this ordinal, created on first use; a clear error where there is none.
pub(crate) fn device(op: &'static str, ordinal: usize) -> Result<Arc<CudaDevice>> {
    let unavailable = |reason: String| Error::DeviceUnavailable { op, device: Device::Cuda(ordinal), reason };
    if let Some(reason) = driver_missing() {
        return Err(unavailable(reason));
    }
    let mut devices = DEVICES.get_or_init(Default::default).lock().unwrap();
    if let Some(d) = devices.get(&ordinal) {
        return Ok(d.clone());
    }
    let count = device_count();
    if ordinal >= count {
        return Err(unavailable(format!("the driver sees {count} GPU(s)")));
    }
    let ctx = CudaContext::new(ordinal).map_err(|e| unavailable(format!("creating a context failed: {e}")))?;
    // We order work on one stream ourselves and never use cudarc's CudaSlice events.
    unsafe { ctx.disable_event_tracking() };
    let attr = |a| ctx.attribute(a).map_err(|e| unavailable(format!("reading a device attribute failed: {e}")));
    let sm_count = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
    let compute_capability = ctx.compute_capability().map_err(|e| unavailable(e.to_string()))?;
    if compute_capability < (8, 0) {
        // The PTX targets sm_80 (mma.sync for TF32/BF16): older GPUs cannot load it.
        let (major, minor) = compute_capability;
        return Err(unavailable(format!("tessera's kernels need compute capability 8.0 (Ampere) or newer; this GPU has {major}.{minor}")));
    }
    let stream = ctx.default_stream();
    let dev = Arc::new(CudaDevice {
        ordinal,
        ctx,
        stream,
        alloc: CachingAllocator::default(),
        sm_count,
        modules: Default::default(),
        functions: Default::default(),
    });
    devices.insert(ordinal, dev.clone());
    Ok(dev)
}

/// The GPU's name as the driver reports it.
pub fn device_name(ordinal: usize) -> Result<String> {
    let dev = device("device_name", ordinal)?;
    dev.ctx.name().map_err(|e| dev.driver_error("device_name", e))
}

/// Waits until every queued kernel and copy on the device has finished (for timing).
pub fn synchronize(ordinal: usize) -> Result<()> {
    let dev = device("synchronize", ordinal)?;
    dev.stream.synchronize().map_err(|e| dev.driver_error("synchronize", e))
}

/// Restarts the allocator's peak-bytes figure from what is live now.
pub fn reset_peak_memory(ordinal: usize) -> Result<()> {
    device("reset_peak_memory", ordinal)?.alloc.reset_peak();
    Ok(())
}

/// What the caching allocator holds and how often it went to the driver.
pub fn memory_stats(ordinal: usize) -> Result<MemoryStats> {
    Ok(device("memory_stats", ordinal)?.alloc.stats())
}

impl CudaDevice {
    pub fn as_device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    pub fn driver_error(&self, op: &'static str, e: impl std::fmt::Display) -> Error {
        Error::Cuda { op, device: self.as_device(), msg: e.to_string() }
    }

    /// Makes this device's context current on the calling thread (driver calls need it).
    pub fn bind(&self, op: &'static str) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| self.driver_error(op, e))
    }

    /// A kernel of a PTX module, JIT-loaded once per device and cached.
    pub fn function(&self, op: &'static str, module: tessera_ptx::Module, name: &str) -> Result<CudaFunction> {
        let key = format!("{}::{name}", module.name);
        if let Some(f) = self.functions.lock().unwrap().get(&key) {
            return Ok(f.clone());
        }
        let m = {
            let mut modules = self.modules.lock().unwrap();
            match modules.get(module.name) {
                Some(m) => m.clone(),
                None => {
                    let m = self
                        .ctx
                        .load_module(cudarc::nvrtc::Ptx::from_src(module.ptx))
                        .map_err(|e| self.driver_error(op, format!("loading PTX module {}: {e}", module.name)))?;
                    modules.insert(module.name, m.clone());
                    m
                }
            }
        };
        let f = m.load_function(name).map_err(|e| self.driver_error(op, format!("kernel {key}: {e}")))?;
        self.functions.lock().unwrap().insert(key, f.clone());
        Ok(f)
    }
}
