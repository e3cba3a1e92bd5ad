//! Adam with decoupled weight decay, as `torch.optim.AdamW` computes it (single-tensor path).

use super::{Hyper, UpdateRule};
use tessera_engine::{FloatElem, Tensor};

/// `p *= 1 - lr·wd`; `m = lerp(m, g, 1-β₁)`; `v = β₂·v + (1-β₂)·g²`;
/// `p -= lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε)`.
#[derive(Debug, Clone, Copy)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamW {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8.
    fn default() -> Self {
        AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

impl UpdateRule for AdamW {
    fn state_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }

    fn update<T: FloatElem>(&self, h: &Hyper, param: &mut [T], grad: &[T], state: &mut [&mut [T]]) {
        let t = h.step as i32;
        // Scalars in f64 as PyTorch computes them in Python, then rounded once.
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let step_size = T::c(h.lr / bc1);
        let decay = T::c(1.0 - h.lr * h.weight_decay);
        let (w1, b2, w2) = (T::c(1.0 - self.beta1), T::c(self.beta2), T::c(1.0 - self.beta2));
        let (bc2_sqrt, eps) = (T::c(bc2_sqrt), T::c(self.eps));
        let [m, v] = state else { return };
        for i in 0..param.len() {
            let g = grad[i];
            let mut p = param[i];
            if h.weight_decay != 0.0 {
                p *= decay;
            }
            m[i] = m[i] + w1 * (g - m[i]);
            v[i] = v[i] * b2 + w2 * g * g;
            let denom = v[i].sqrt() / bc2_sqrt + eps;
            param[i] = p - step_size * (m[i] / denom);
        }
    }

    fn elementwise(&self) -> bool {
        true
    }

    fn update_tensors(&self, h: &Hyper, param: &Tensor, grad: &Tensor, state: &[Tensor]) -> tessera_engine::Result<(Tensor, Vec<Tensor>)> {
        let t = h.step as i32;
        // The same f64 scalars as `update`; mul_scalar/add_scalar round each to the dtype.
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let step_size = h.lr / bc1;
        let decay = 1.0 - h.lr * h.weight_decay;
        let [m, v] = state else { return Ok((param.clone(), state.to_vec())) };
        let p = if h.weight_decay != 0.0 { param.mul_scalar(decay)? } else { param.clone() };
        let m = m.add(&grad.sub(m)?.mul_scalar(1.0 - self.beta1)?)?;
        // `w2 * g * g` multiplies left to right: (w2·g)·g.
        let v = v.mul_scalar(self.beta2)?.add(&grad.mul_scalar(1.0 - self.beta2)?.mul(grad)?)?;
        // A true division by the bias correction, as `update` (and PyTorch) does: div_scalar
        // multiplies by a rounded reciprocal, which can differ in the last bit.
        let bc2 = Tensor::full_on(&[], bc2_sqrt, param.dtype(), param.device())?;
        let denom = v.sqrt()?.div(&bc2)?.add_scalar(self.eps)?;
        let p = p.sub(&m.div(&denom)?.mul_scalar(step_size)?)?;
        Ok((p, vec![m, v]))
    }
}
