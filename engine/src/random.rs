//! Seeded random tensors. The generator is counter-based: element `i` of a draw is a pure
//! function of `(seed, counter + i)`, so results are the same whatever the thread count, and
//! the GPU kernels (ptx/kernels/random.cu) compute the same function: a draw made on a GPU
//! with the `*_on` methods has the same bits as on the CPU and advances the generator alike.
//! The generator hands out counters; the draws themselves are `cpu::random`'s and
//! `cuda::random`'s.

use crate::cpu::random as host;
use crate::cpu::random::{below, box_muller, mix, unit};
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::{with_any, DType, Device, Error, Result, Tensor};

/// A seeded, counter-based random generator. Each draw advances the counter by the number of
/// values it consumed, so successive draws differ and replaying a seed replays them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generator {
    seed: u64,
    counter: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator { seed: mix(seed, 0x5EED), counter: 0 }
    }

    /// An independent generator derived from this one's seed and a stream id (for example
    /// one stream per worker or per sample), without advancing this one.
    pub fn fork(&self, stream: u64) -> Generator {
        Generator { seed: mix(self.seed ^ 0xF0F0_F0F0, stream.wrapping_add(self.counter)), counter: 0 }
    }

    fn take(&mut self, n: usize) -> u64 {
        let start = self.counter;
        self.counter = self.counter.wrapping_add(n as u64);
        start
    }

    /// One uniform value in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        let c = self.take(1);
        unit(mix(self.seed, c))
    }

    /// One uniform integer in [0, n). `n` must be positive.
    pub fn next_below(&mut self, n: u64) -> u64 {
        let c = self.take(1);
        below(mix(self.seed, c), n)
    }

    /// One standard normal value.
    pub fn next_normal(&mut self) -> f64 {
        let c = self.take(2);
        box_muller(self.seed, c)
    }

    /// A tensor of uniform values in `[low, high)`.
    pub fn uniform(&mut self, shape: &[usize], low: f64, high: f64, dtype: DType) -> Result<Tensor> {
        self.uniform_on(shape, low, high, dtype, Device::Cpu)
    }

    /// [`uniform`](Self::uniform) made on `device`.
    pub fn uniform_on(&mut self, shape: &[usize], low: f64, high: f64, dtype: DType, device: Device) -> Result<Tensor> {
        check_float("uniform", dtype)?;
        if !(low <= high) {
            return Err(Error::invalid("uniform", format!("low {low} must not exceed high {high}")));
        }
        let n = crate::layout::checked_numel("uniform", shape)?;
        match device {
            Device::Cuda(ordinal) => {
                let dev = crate::cuda::device("uniform", ordinal)?;
                let (seed, start) = (self.seed, self.take(n));
                Ok(Tensor::from_cuda_array(crate::cuda::random::uniform(&dev, shape, seed, start, low, high, dtype)?))
            }
            Device::Cpu => {
                let (seed, start) = (self.seed, self.take(n));
                Ok(with_any!(dtype, |T| Tensor::from_vec_unchecked(host::uniform::<T>(seed, start, n, low, high), shape)))
            }
        }
    }

    /// A tensor of normal values with this mean and standard deviation.
    pub fn normal(&mut self, shape: &[usize], mean: f64, std: f64, dtype: DType) -> Result<Tensor> {
        self.normal_on(shape, mean, std, dtype, Device::Cpu)
    }

    /// [`normal`](Self::normal) made on `device`.
    pub fn normal_on(&mut self, shape: &[usize], mean: f64, std: f64, dtype: DType, device: Device) -> Result<Tensor> {
        check_float("normal", dtype)?;
        if !(std >= 0.0) {
            return Err(Error::invalid("normal", format!("std must be non-negative, got {std}")));
        }
        let n = crate::layout::checked_numel("normal", shape)?;
        match device {
            Device::Cuda(ordinal) => {
                let dev = crate::cuda::device("normal", ordinal)?;
                let (seed, start) = (self.seed, self.take(2 * n));
                Ok(Tensor::from_cuda_array(crate::cuda::random::normal(&dev, shape, seed, start, mean, std, dtype)?))
            }
            Device::Cpu => {
                let (seed, start) = (self.seed, self.take(2 * n));
                Ok(with_any!(dtype, |T| Tensor::from_vec_unchecked(host::normal::<T>(seed, start, n, mean, std), shape)))
            }
        }
    }

    /// [`trunc_normal`](Self::trunc_normal) on `device`. Resampling is sequential, so the
    /// draw is made on the host and copied (the values and the generator's state are the same).
    #[allow(clippy::too_many_arguments)]
    pub fn trunc_normal_on(
        &mut self,
        shape: &[usize],
        mean: f64,
        std: f64,
        a: f64,
        b: f64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        if let Device::Cuda(ordinal) = device {
            crate::cuda::device("trunc_normal", ordinal)?;
        }
        self.trunc_normal(shape, mean, std, a, b, dtype)?.to_device(device)
    }

    /// A normal draw truncated to `[mean + a·std, mean + b·std]` by resampling (ViT's init).
    pub fn trunc_normal(&mut self, shape: &[usize], mean: f64, std: f64, a: f64, b: f64, dtype: DType) -> Result<Tensor> {
        check_float("trunc_normal", dtype)?;
        if !(a < b) {
            return Err(Error::invalid("trunc_normal", format!("needs a < b, got a {a}, b {b}")));
        }
        let n = crate::layout::checked_numel("trunc_normal", shape)?;
        let (seed, start) = (self.seed, self.counter);
        with_any!(dtype, |T| {
            let (out, used) = host::trunc_normal::<T>(seed, start, n, mean, std, a, b);
            self.counter = self.counter.wrapping_add(used);
            Ok(Tensor::from_vec_unchecked(out, shape))
        })
    }

    /// A u8 mask whose elements are 1 with probability `p`.
    pub fn bernoulli(&mut self, shape: &[usize], p: f64) -> Result<Tensor> {
        self.bernoulli_on(shape, p, Device::Cpu)
    }

    /// [`bernoulli`](Self::bernoulli) made on `device`.
    pub fn bernoulli_on(&mut self, shape: &[usize], p: f64, device: Device) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid("bernoulli", format!("probability must lie in [0, 1], got {p}")));
        }
        let n = crate::layout::checked_numel("bernoulli", shape)?;
        match device {
            Device::Cuda(ordinal) => {
                let dev = crate::cuda::device("bernoulli", ordinal)?;
                let (seed, start) = (self.seed, self.take(n));
                Ok(Tensor::from_cuda_array(crate::cuda::random::bernoulli(&dev, shape, seed, start, p)?))
            }
            Device::Cpu => {
                let (seed, start) = (self.seed, self.take(n));
                Ok(Tensor::from_vec_unchecked(host::bernoulli(seed, start, n, p), shape))
            }
        }
    }

    /// Uniform integers in `[low, high)` as i64.
    pub fn randint(&mut self, shape: &[usize], low: i64, high: i64) -> Result<Tensor> {
        self.randint_on(shape, low, high, Device::Cpu)
    }

    /// [`randint`](Self::randint) made on `device`.
    pub fn randint_on(&mut self, shape: &[usize], low: i64, high: i64, device: Device) -> Result<Tensor> {
        if low >= high {
            return Err(Error::invalid("randint", format!("needs low < high, got low {low}, high {high}")));
        }
        let n = crate::layout::checked_numel("randint", shape)?;
        let range = (high - low) as u64;
        match device {
            Device::Cuda(ordinal) => {
                let dev = crate::cuda::device("randint", ordinal)?;
                let (seed, start) = (self.seed, self.take(n));
                Ok(Tensor::from_cuda_array(crate::cuda::random::randint(&dev, shape, seed, start, low, range)?))
            }
            Device::Cpu => {
                let (seed, start) = (self.seed, self.take(n));
                Ok(Tensor::from_vec_unchecked(host::randint(seed, start, n, low, range), shape))
            }
        }
    }

    /// A random permutation of `0..n` as i64 (Fisher–Yates).
    pub fn randperm(&mut self, n: usize) -> Tensor {
        Tensor::from_vec_unchecked(self.permutation(n).into_iter().map(|i| i as i64).collect(), &[n])
    }

    /// A random permutation of `0..n` as indices.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.next_below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

fn check_float(op: &'static str, dtype: DType) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::UnsupportedDType { op, dtype, expected: "f32 or f64" })
    }
}
