//! What the CUDA launchers read and return: device memory seen through a layout. The backend
//! works on these, never on tensors; `ops/` (through `backend.rs`) turns tensors into views
//! and results back into tensors.

use super::{CudaBuffer, CudaDevice};
use crate::layout::Layout;
use crate::{DType, Device, Error, Result};
use std::borrow::Cow;
use std::sync::Arc;

/// A strided view of a device buffer: an operand of a launch.
#[derive(Clone)]
pub(crate) struct CudaView<'a> {
    pub buf: &'a CudaBuffer,
    layout: Cow<'a, Layout>,
}

impl<'a> CudaView<'a> {
    pub fn new(buf: &'a CudaBuffer, layout: &'a Layout) -> CudaView<'a> {
        CudaView { buf, layout: Cow::Borrowed(layout) }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    pub fn rank(&self) -> usize {
        self.layout.rank()
    }

    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    pub fn dtype(&self) -> DType {
        self.buf.dtype
    }

    pub fn device(&self) -> Device {
        self.buf.dev.as_device()
    }

    pub fn dev(&self) -> &Arc<CudaDevice> {
        &self.buf.dev
    }

    /// The same memory with its dims reordered (`perm` valid: the backend builds it).
    pub fn permute(&self, perm: &[usize]) -> Result<CudaView<'a>> {
        Ok(CudaView { buf: self.buf, layout: Cow::Owned(self.layout.permute("permute", perm)?) })
    }
}

/// A launch's result: a new buffer and the layout to read it through (contiguous, or a
/// permutation of that where the kernel wrote the axes in another order).
#[derive(Debug)]
pub(crate) struct CudaArray {
    pub buf: CudaBuffer,
    pub layout: Layout,
}

impl CudaArray {
    /// `buf` read as a contiguous array of `shape`.
    pub fn new(buf: CudaBuffer, shape: &[usize]) -> CudaArray {
        debug_assert_eq!(buf.len, shape.iter().product::<usize>());
        CudaArray { buf, layout: Layout::contiguous(shape) }
    }

    pub fn view(&self) -> CudaView<'_> {
        CudaView::new(&self.buf, &self.layout)
    }

    /// A fresh contiguous array read as another shape of as many elements.
    pub fn into_shape(self, shape: &[usize]) -> CudaArray {
        debug_assert!(self.layout.is_contiguous() && self.layout.offset == 0);
        CudaArray::new(self.buf, shape)
    }

    pub fn permute(self, perm: &[usize]) -> Result<CudaArray> {
        let layout = self.layout.permute("permute", perm)?;
        Ok(CudaArray { buf: self.buf, layout })
    }
}

/// The device of the first operand, after checking that every other one is on it too.
pub(crate) fn common_device(op: &'static str, vs: &[&CudaView]) -> Result<Arc<CudaDevice>> {
    for v in &vs[1..] {
        if v.device() != vs[0].device() {
            return Err(Error::DeviceMismatch { op, lhs: vs[0].device(), rhs: v.device() });
        }
    }
    Ok(vs[0].dev().clone())
}
