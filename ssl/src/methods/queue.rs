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

    /// The mean age, in steps, of the keys the encoder wrote (the random initial keys left
    /// out), before step `step` (0-based) when each step enqueues `per_step` keys: the
    /// last step's keys are 1 step old, the oldest `⌈filled / per_step⌉`, so the mean is
    /// (m + 1)/2 with m = filled / per_step. Also the filled fraction of the queue. MoCo's
    /// negatives come from encoders this many steps behind the query's.
    pub fn age(&self, step: u64, per_step: usize) -> (f64, f64) {
        let filled = (step as usize).saturating_mul(per_step).min(self.len());
        if filled == 0 || per_step == 0 {
            return (0.0, 0.0);
        }
        let m = filled as f64 / per_step as f64;
        ((m + 1.0) / 2.0, filled as f64 / self.len() as f64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_only_the_encoders_keys_and_saturates_when_full() {
        let q = KeyQueue::new(8, 2, &mut Generator::new(0)).unwrap();
        assert_eq!(q.age(0, 2), (0.0, 0.0), "nothing written before the first step");
        assert_eq!(q.age(1, 2), (1.0, 0.25), "one step's keys, one step old");
        assert_eq!(q.age(3, 2), (2.0, 0.75), "ages 1, 2, 3");
        assert_eq!(q.age(100, 2), (2.5, 1.0), "full: ages 1 to 4");
    }
}
