//! LARS as SimCLR uses it (`lars_optimizer.py`, classic momentum): per-layer trust ratios
//! scale the learning rate; vectors (biases, norm parameters) are excluded from weight decay
//! and from adaptation.

use super::{Hyper, UpdateRule};
use tessera_engine::{CmpOp, DType, Element, FloatElem, Tensor};

/// For each parameter: `g += wd·p` and `r = η·‖p‖/‖g‖` (1 when either norm is 0), unless the
/// parameter is excluded (then `r = 1`, no decay); `v = μ·v + lr·r·g`;
/// `p -= v` (or `μ·v + lr·r·g` with Nesterov).
#[derive(Debug, Clone, Copy)]
pub struct Lars {
    pub momentum: f64,
    /// The trust coefficient η.
    pub eta: f64,
    pub nesterov: bool,
    /// Exclude vectors and scalars (biases, BN/LN weights) from decay and adaptation.
    pub exclude_vectors: bool,
}

impl Default for Lars {
    /// SimCLR's settings: momentum 0.9, η = 0.001, no Nesterov, vectors excluded.
    fn default() -> Self {
        Lars { momentum: 0.9, eta: 0.001, nesterov: false, exclude_vectors: true }
    }
}

/// Euclidean norm accumulated in f64 (layers can hold millions of values).
fn norm<T: FloatElem>(x: &[T]) -> f64 {
    x.iter().map(|&v| Element::to_f64(v) * Element::to_f64(v)).sum::<f64>().sqrt()
}

/// [`norm`] as a 0-d f64 tensor on `x`'s device: widened before squaring, so an f32 layer
/// accumulates in f64 as on the host; only the summation order differs.
fn norm_tensor(x: &Tensor) -> tessera_engine::Result<Tensor> {
    x.to_dtype(DType::F64)?.square()?.sum_all()?.sqrt()
}

impl UpdateRule for Lars {
    fn state_names(&self) -> &'static [&'static str] {
        &["momentum_buffer"]
    }

    fn update<T: FloatElem>(&self, h: &Hyper, param: &mut [T], grad: &[T], state: &mut [&mut [T]]) {
        let adapt = !(self.exclude_vectors && h.is_vector);
        let wd = if adapt { T::c(h.weight_decay) } else { T::zero() };
        // The decayed gradient, once: the trust ratio needs its norm before the update.
        let g: Vec<T> = grad.iter().zip(param.iter()).map(|(&g, &p)| g + wd * p).collect();
        let mut trust = 1.0;
        if adapt {
            let (wn, gn) = (norm(param), norm(&g));
            if wn > 0.0 && gn > 0.0 {
                trust = self.eta * wn / gn;
            }
        }
        let (scaled, mu) = (T::c(h.lr * trust), T::c(self.momentum));
        let [v] = state else { return };
        for i in 0..param.len() {
            v[i] = mu * v[i] + scaled * g[i];
            let step = if self.nesterov { mu * v[i] + scaled * g[i] } else { v[i] };
            param[i] = param[i] - step;
        }
    }

    fn update_tensors(&self, h: &Hyper, param: &Tensor, grad: &Tensor, state: &[Tensor]) -> tessera_engine::Result<(Tensor, Vec<Tensor>)> {
        let [v] = state else { return Ok((param.clone(), state.to_vec())) };
        let adapt = !(self.exclude_vectors && h.is_vector);
        let wd = if adapt { h.weight_decay } else { 0.0 };
        // Added even when wd is 0, as `update` does (it is not a no-op for -0 or inf).
        let g = grad.add(&param.mul_scalar(wd)?)?;
        // `lr·trust` rounded to the dtype: a host constant for excluded parameters, a 0-d
        // device tensor otherwise, so the norms never leave the device (no sync per layer).
        let scaled = if adapt {
            let (wn, gn) = (norm_tensor(param)?, norm_tensor(&g)?);
            let ratio = wn.mul_scalar(self.eta)?.div(&gn)?;
            let one = Tensor::full_on(&[], 1.0, DType::F64, param.device())?;
            // Trust 1 unless both norms are positive; the nesting keeps `update`'s NaN
            // behaviour (a NaN norm fails its `> 0` test).
            let positive = |x: &Tensor| x.compare_scalar(0.0, CmpOp::Gt);
            let trust = Tensor::where_(&positive(&wn)?, &Tensor::where_(&positive(&gn)?, &ratio, &one)?, &one)?;
            Some(trust.mul_scalar(h.lr)?.to_dtype(param.dtype())?)
        } else {
            None
        };
        let scaled_g = match &scaled {
            Some(s) => g.mul(s)?,
            None => g.mul_scalar(h.lr)?,
        };
        let v = v.mul_scalar(self.momentum)?.add(&scaled_g)?;
        let step = if self.nesterov { v.mul_scalar(self.momentum)?.add(&scaled_g)? } else { v.clone() };
        Ok((param.sub(&step)?, vec![v]))
    }
}
