//! bf16 / f16 arithmetic on the CPU: the half operands are widened to f32, the f32 kernel
//! runs, and each float result is rounded back to the operands' half dtype. That is what the
//! CUDA kernels do within one op (load into f32, compute and accumulate there, round once
//! when storing), so the two backends agree up to summation order and the CPU is the GPU's
//! reference. It costs a widened copy of each operand: halves are a GPU format, and this
//! path is for correctness, not speed.

use crate::{DType, Result, Tensor};

/// Results that can be rounded back to a half dtype: every f32 tensor in them is, other
/// dtypes (indices, masks) stay as they are.
pub(crate) trait RoundBack: Sized {
    fn round_back(self, half: DType) -> Result<Self>;
}

impl RoundBack for Tensor {
    fn round_back(self, half: DType) -> Result<Self> {
        if self.dtype() == DType::F32 {
            self.to_dtype(half)
        } else {
            Ok(self)
        }
    }
}

impl<A: RoundBack, B: RoundBack> RoundBack for (A, B) {
    fn round_back(self, half: DType) -> Result<Self> {
        Ok((self.0.round_back(half)?, self.1.round_back(half)?))
    }
}

impl<A: RoundBack, B: RoundBack, C: RoundBack> RoundBack for (A, B, C) {
    fn round_back(self, half: DType) -> Result<Self> {
        Ok((self.0.round_back(half)?, self.1.round_back(half)?, self.2.round_back(half)?))
    }
}

impl<T: RoundBack> RoundBack for Vec<T> {
    fn round_back(self, half: DType) -> Result<Self> {
        self.into_iter().map(|t| t.round_back(half)).collect()
    }
}

/// `Some(f(widened inputs) rounded back)` when any input is bf16 or f16 (callers have
/// checked that the float operands share one dtype), `None` otherwise so the caller goes on
/// with its own kernel.
pub(crate) fn via_f32<const N: usize, R: RoundBack>(inputs: [&Tensor; N], f: impl FnOnce([Tensor; N]) -> Result<R>) -> Result<Option<R>> {
    via_f32_opt(inputs.map(Some), |wide| f(wide.map(|t| t.expect("every input was given"))))
}

/// [`via_f32`] for ops with optional operands (affine weights and biases).
pub(crate) fn via_f32_opt<const N: usize, R: RoundBack>(
    inputs: [Option<&Tensor>; N],
    f: impl FnOnce([Option<Tensor>; N]) -> Result<R>,
) -> Result<Option<R>> {
    let Some(half) = inputs.iter().flatten().map(|t| t.dtype()).find(|d| d.is_half()) else {
        return Ok(None);
    };
    let widen = |t: &Tensor| if t.dtype().is_half() { t.to_dtype(DType::F32) } else { Ok(t.clone()) };
    let mut wide = Vec::with_capacity(N);
    for t in inputs {
        wide.push(t.map(widen).transpose()?);
    }
    let wide: [Option<Tensor>; N] = wide.try_into().unwrap_or_else(|_| unreachable!("N inputs give N tensors"));
    f(wide)?.round_back(half).map(Some)
}
