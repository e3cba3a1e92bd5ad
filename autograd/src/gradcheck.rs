//! The finite-difference gradient checker: analytic gradients from `backward` against
//! central differences `(f(x + ε) - f(x - ε)) / 2ε`, in f64.

use crate::{no_grad, Error, Result, Var};
use tessera_engine::{DType, Generator, Tensor};

/// Tolerances for [`gradcheck`]: an element passes when
/// `|analytic - numeric| <= atol + rtol · |numeric|`.
#[derive(Debug, Clone, Copy)]
pub struct GradcheckOptions {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions { eps: 1e-6, atol: 1e-5, rtol: 1e-4 }
    }
}

/// Reduces a non-scalar output to a scalar with fixed random weights, so every output
/// element's gradient path is exercised.
fn project(y: &Var, weights: &Tensor) -> Result<Var> {
    y.mul(&Var::constant(weights.clone()))?.sum_all()
}

/// Checks `f`'s gradients with respect to every float input. Float inputs are converted to
/// f64 (pass f64 views to check non-contiguous layouts as they are); integer and mask inputs
/// are passed as constants. On failure the error names the input, the element (its
/// multi-index) and both values.
pub fn gradcheck(f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor], eps: f64, atol: f64, rtol: f64) -> Result<()> {
    let inputs: Vec<Tensor> = inputs
        .iter()
        .map(|t| if t.dtype().is_float() { t.to_dtype(DType::F64) } else { Ok(t.clone()) })
        .collect::<std::result::Result<_, _>>()?;
    let leaves: Vec<Var> = inputs
        .iter()
        .map(|t| if t.dtype().is_float() { Var::param(t.clone()) } else { Ok(Var::constant(t.clone())) })
        .collect::<Result<_>>()?;
    let y = f(&leaves)?;
    let weights = Generator::new(0x6AD).uniform(&y.shape(), 0.5, 1.5, DType::F64)?;
    let scalar = |vars: &[Var]| -> Result<f64> { project(&f(vars)?, &weights)?.value().item().map_err(Error::from) };
    let loss = project(&y, &weights)?;
    if !loss.requires_grad() {
        return Err(Error::Gradcheck("the output does not depend on any float input".into()));
    }
    loss.backward()?;
    let _guard = no_grad();
    for (j, input) in inputs.iter().enumerate() {
        if !input.dtype().is_float() {
            continue;
        }
        let analytic = match leaves[j].grad() {
            Some(g) => g.to_vec_f64()?,
            None => vec![0.0; input.numel()],
        };
        let base = input.to_vec_f64()?;
        let shape = input.shape().to_vec();
        for e in 0..base.len() {
            let eval_at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[e] += delta;
                let mut vars = leaves.clone();
                vars[j] = Var::constant(Tensor::from_vec(v, &shape)?);
                scalar(&vars)
            };
            let numeric = (eval_at(eps)? - eval_at(-eps)?) / (2.0 * eps);
            let a = analytic[e];
            if !((a - numeric).abs() <= atol + rtol * numeric.abs()) {
                return Err(Error::Gradcheck(format!(
                    "input {j} (shape {shape:?}) element {:?}: analytic gradient {a:.8e} vs numeric {numeric:.8e} (|diff| {:.3e} > atol {atol:e} + rtol {rtol:e}·|numeric|)",
                    multi_index(e, &shape),
                    (a - numeric).abs()
                )));
            }
        }
    }
    Ok(())
}

fn multi_index(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d].max(1);
        flat /= shape[d].max(1);
    }
    idx
}
