//! LARS as SimCLR uses it (`lars_optimizer.py`, classic momentum): per-layer trust ratios
//! scale the learning rate; vectors (biases, norm parameters) are excluded from weight decay
//! and from adaptation.

use super::{Hyper, UpdateRule};
use tessera_engine::{Element, FloatElem};

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

impl UpdateRule for Lars {
    fn state_names(&self) -> &'static [&'static str] {
        &["momentum_buffer"]
    }

    fn update<T: FloatElem>(&self, h: &Hyper, param: &mut [T], grad: &[T], state: &mut [Vec<T>]) {
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
}
