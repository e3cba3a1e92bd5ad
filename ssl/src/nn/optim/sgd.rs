//! Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay,
//! step for step as `torch.optim.SGD` computes it.

use super::{Hyper, UpdateRule};
use tessera_engine::{FloatElem, Tensor};

/// `torch.optim.SGD`'s rule: `g += wd·p`; with momentum `buf = μ·buf + (1-dampening)·g`
/// (`buf = g` on the first step), `g = g + μ·buf` (Nesterov) or `buf`; `p -= lr·g`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sgd {
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
}

impl Sgd {
    /// Momentum SGD without dampening.
    pub fn momentum(momentum: f64, nesterov: bool) -> Sgd {
        Sgd { momentum, dampening: 0.0, nesterov }
    }
}

impl UpdateRule for Sgd {
    fn state_names(&self) -> &'static [&'static str] {
        if self.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        }
    }

    fn update<T: FloatElem>(&self, h: &Hyper, param: &mut [T], grad: &[T], state: &mut [&mut [T]]) {
        let (lr, wd, mu) = (T::c(h.lr), T::c(h.weight_decay), T::c(self.momentum));
        let damp = T::c(1.0 - self.dampening);
        let first = h.step == 1;
        let mut buf = state.first_mut();
        for i in 0..param.len() {
            let mut g = grad[i];
            if h.weight_decay != 0.0 {
                g += wd * param[i];
            }
            if let Some(buf) = buf.as_deref_mut() {
                buf[i] = if first { g } else { mu * buf[i] + damp * g };
                g = if self.nesterov { g + mu * buf[i] } else { buf[i] };
            }
            param[i] = param[i] - lr * g;
        }
    }

    fn elementwise(&self) -> bool {
        true
    }

    fn update_tensors(&self, h: &Hyper, param: &Tensor, grad: &Tensor, state: &[Tensor]) -> tessera_engine::Result<(Tensor, Vec<Tensor>)> {
        // `update`'s loop body, one whole-tensor op per arithmetic step in the same order
        // (each scalar rounds to the dtype first, as `T::c` does there).
        let mut g = grad.clone();
        if h.weight_decay != 0.0 {
            g = g.add(&param.mul_scalar(h.weight_decay)?)?;
        }
        let mut new_state = Vec::with_capacity(state.len());
        if let Some(buf) = state.first() {
            // Tensors are immutable, so sharing `g` (even the gradient itself) is safe.
            let buf = if h.step == 1 { g.clone() } else { buf.mul_scalar(self.momentum)?.add(&g.mul_scalar(1.0 - self.dampening)?)? };
            g = if self.nesterov { g.add(&buf.mul_scalar(self.momentum)?)? } else { buf.clone() };
            new_state.push(buf);
        }
        Ok((param.sub(&g.mul_scalar(h.lr)?)?, new_state))
    }
}
