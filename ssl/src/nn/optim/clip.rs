//! Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`).

use tessera_autograd::{Result, Var};

/// The L2 norm of all gradients together (parameters without a gradient count as zero).
pub fn grad_norm(params: &[Var]) -> Result<f64> {
    let mut sq = 0.0;
    for p in params {
        if let Some(g) = p.grad() {
            sq += g.to_vec_f64()?.iter().map(|x| x * x).sum::<f64>();
        }
    }
    Ok(sq.sqrt())
}

/// Scales every gradient by `max_norm / (norm + 1e-6)` when that is below 1, as PyTorch does;
/// returns the norm before clipping.
pub fn clip_grad_norm(params: &[Var], max_norm: f64) -> Result<f64> {
    let total = grad_norm(params)?;
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        for p in params {
            if let Some(g) = p.grad() {
                p.set_grad(Some(g.mul_scalar(coef)?));
            }
        }
    }
    Ok(total)
}
