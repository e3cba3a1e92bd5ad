//! MoCo's queue of negative keys: a ring buffer of the last K keys, saved in the checkpoint
//! with its write position so a resumed run continues it exactly.

use crate::nn::{join, Buffer, Entry};
use tessera_autograd::Result;
use tessera_engine::{DType, Error, Generator, Tensor};

/// `K` unit-length keys `[K, d]` (rows; the reference code keeps the transpose) and the
/// position of the next write.
pub struct KeyQueue {
    keys: Buffer,
    ptr: Buffer,
}

impl KeyQueue {
    /// A queue of `size` random unit vectors of width `dim` (the reference initialization),
    /// drawn from `gen`.
    pub fn new(size: usize, dim: usize, gen: &mut Generator) -> Result<KeyQueue> {
        if size == 0 || dim == 0 {
            return Err(Error::invalid("KeyQueue", format!("needs a positive size and width, got {size} × {dim}")).into());
        }
        let keys = super::moco_loss::l2_normalize_rows(&gen.normal(&[size, dim], 0.0, 1.0, DType::F32)?)?;
        Ok(KeyQueue { keys: Buffer::new(keys), ptr: Buffer::new(Tensor::from_vec(vec![0i64], &[1])?) })
    }

    /// The keys `[K, d]`.
    pub fn keys(&self) -> Tensor {
        self.keys.get()
    }

    pub fn len(&self) -> usize {
        self.keys.get().shape()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the next batch of keys is written.
    pub fn ptr(&self) -> Result<usize> {
        Ok(self.ptr.get().to_device(tessera_engine::Device::Cpu)?.to_vec::<i64>()?[0] as usize)
    }

    /// Writes `keys [B, d]` over the oldest entries and advances the pointer (wrapping to 0
    /// at the end). `K` must be a multiple of `B`, as in the reference code, so a batch
    /// never straddles the end.
    pub fn enqueue(&self, keys: &Tensor) -> Result<()> {
        let (queue, ptr) = (self.keys.get(), self.ptr()?);
        let (size, b) = (queue.shape()[0], keys.shape().first().copied().unwrap_or(0));
        if keys.rank() != 2 || keys.shape()[1] != queue.shape()[1] || b == 0 {
            return Err(
                Error::shapes_hint("KeyQueue::enqueue", queue.shape(), keys.shape(), "keys must be [B, d] with the queue's d").into()
            );
        }
        if !size.is_multiple_of(b) {
            let msg = format!("the queue size {size} is not a multiple of the batch size {b}");
            return Err(Error::invalid("KeyQueue::enqueue", msg).into());
        }
        let keys = keys.to_dtype(queue.dtype())?;
        let mut parts = vec![];
        if ptr > 0 {
            parts.push(queue.narrow(0, 0, ptr)?);
        }
        parts.push(keys);
        if ptr + b < size {
            parts.push(queue.narrow(0, ptr + b, size - ptr - b)?);
        }
        let refs: Vec<&Tensor> = parts.iter().collect();
        self.keys.set(Tensor::cat(&refs, 0)?)?;
        let next = Tensor::from_vec(vec![((ptr + b) % size) as i64], &[1])?.to_device(self.ptr.get().device())?;
        self.ptr.set(next)
    }

    /// `{prefix}.queue` and `{prefix}.queue_ptr`.
    pub fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(&join(prefix, "queue"), Entry::Buffer(&self.keys));
        f(&join(prefix, "queue_ptr"), Entry::Buffer(&self.ptr));
    }
}
