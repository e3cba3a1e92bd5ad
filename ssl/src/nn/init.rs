//! Seeded parameter initializers with PyTorch's defaults. Every draw comes from the
//! [`Generator`] passed in, so a seed fixes a model's weights.

use super::module::{Entry, Module};
use tessera_autograd::Result;
use tessera_engine::{DType, Generator, Tensor};

/// `(fan_in, fan_out)` of a weight `[out, in, k...]` (PyTorch's `_calculate_fan_in_and_fan_out`).
pub fn fans(shape: &[usize]) -> (usize, usize) {
    let receptive: usize = shape.iter().skip(2).product();
    let fan_out = shape.first().copied().unwrap_or(1) * receptive;
    let fan_in = shape.get(1).copied().unwrap_or(1) * receptive;
    (fan_in, fan_out)
}

/// PyTorch's default for `nn.Linear` and `nn.Conv2d` weights: `kaiming_uniform_(a=√5)`,
/// which is uniform in `±gain·√(3/fan_in)` with `gain = √(2/(1+a²))`, i.e. `±1/√fan_in`.
pub fn kaiming_uniform_default(gen: &mut Generator, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let bound = 1.0 / (fans(shape).0.max(1) as f64).sqrt();
    Ok(gen.uniform(shape, -bound, bound, dtype)?)
}

/// PyTorch's default bias: uniform in `±1/√fan_in` of the layer's weight.
pub fn default_bias(gen: &mut Generator, fan_in: usize, len: usize, dtype: DType) -> Result<Tensor> {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Ok(gen.uniform(&[len], -bound, bound, dtype)?)
}

/// torchvision ResNet's convolution init: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`,
/// normal with std `√2/√fan_out`.
pub fn kaiming_normal_fan_out(gen: &mut Generator, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let std = (2.0 / fans(shape).1.max(1) as f64).sqrt();
    Ok(gen.normal(shape, 0.0, std, dtype)?)
}

/// ViT's init, timm's `trunc_normal_(w, std=std)`: a normal of this std cut at ±2 in
/// absolute units (timm's defaults `a=-2, b=2` are values, not multiples of std), so with
/// std 0.02 the cut sits at ±100 std and the draw keeps its full std. Cutting at ±2 std
/// instead would shrink every ViT weight by 12% against timm's.
pub fn trunc_normal(gen: &mut Generator, shape: &[usize], std: f64, dtype: DType) -> Result<Tensor> {
    const CUTOFF: f64 = 2.0;
    Ok(gen.trunc_normal(shape, 0.0, std, -CUTOFF / std, CUTOFF / std, dtype)?)
}

/// Xavier/Glorot uniform: `±√(6/(fan_in + fan_out))` (MAE's patch embedding and linears).
pub fn xavier_uniform(gen: &mut Generator, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let (fi, fo) = fans(shape);
    let bound = xavier_bound(fi, fo);
    Ok(gen.uniform(shape, -bound, bound, dtype)?)
}

/// Xavier/Glorot's uniform bound `√(6/(fan_in + fan_out))`.
fn xavier_bound(fan_in: usize, fan_out: usize) -> f64 {
    (6.0 / (fan_in + fan_out).max(1) as f64).sqrt()
}

/// How [`xavier_matrices`] sees a fused q/k/v projection `[3D, D]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusedQkv {
    /// As one `[3D, D]` matrix (MAE: timm's fused layer under a plain `xavier_uniform_`).
    OneMatrix,
    /// As three `[D, D]` matrices (MoCo v3's `vits.py`: bound √(6 / (D + D))).
    ThreeMatrices,
}

/// The reference init of MAE and MoCo v3 (after the JAX ViT): every Linear weight
/// Xavier-uniform, and a patch projection conv `[D, C, p, p]` Xavier-uniform as the matrix
/// `[D, C·p·p]` it is. Biases and norms keep theirs (zeros, ones). Weights start about 2.5×
/// larger than timm's std 0.02 on ViT-Tiny, so attention is not uniform and tokens differ
/// from the first step.
pub fn xavier_matrices(m: &dyn Module, qkv: FusedQkv, gen: &mut Generator) -> Result<()> {
    let mut weights = Vec::new();
    m.visit("", &mut |name, e| {
        if let Entry::Param(p) = e {
            if name.ends_with("weight") && p.value().shape().len() >= 2 {
                weights.push((name.ends_with("qkv.weight"), p.var()));
            }
        }
    });
    for (is_qkv, w) in weights {
        let (shape, dtype) = (w.value().shape().to_vec(), w.value().dtype());
        let rows = if is_qkv && qkv == FusedQkv::ThreeMatrices { shape[0] / 3 } else { shape[0] };
        let bound = xavier_bound(shape[1..].iter().product(), rows);
        w.set_value(gen.uniform(&shape, -bound, bound, dtype)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::TransformerBlock;

    /// The largest |w| of a uniform draw of thousands of values sits just under its bound.
    fn max_abs(t: &Tensor) -> f64 {
        t.to_vec_f64().unwrap().iter().fold(0.0, |m, v| m.max(v.abs()))
    }

    #[test]
    fn xavier_bounds_follow_the_fused_qkv_convention() {
        let d = 32;
        for (qkv, rows) in [(FusedQkv::OneMatrix, 3 * d), (FusedQkv::ThreeMatrices, d)] {
            let block = TransformerBlock::new(d, 4, 4.0, true, &mut Generator::new(0)).unwrap();
            xavier_matrices(&block, qkv, &mut Generator::new(1)).unwrap();
            for (w, bound) in [
                (block.attn.qkv.weight.value(), (6.0 / (rows + d) as f64).sqrt()),
                (block.attn.proj.weight.value(), (6.0 / (2 * d) as f64).sqrt()),
                (block.mlp.fc1.weight.value(), (6.0 / (5 * d) as f64).sqrt()),
            ] {
                let m = max_abs(&w);
                assert!(m <= bound && m > 0.95 * bound, "{qkv:?}: max |w| {m} against bound {bound}");
            }
            assert!(block.attn.qkv.bias.as_ref().unwrap().value().to_vec_f64().unwrap().iter().all(|&b| b == 0.0), "biases keep zeros");
        }
    }

    /// timm's `trunc_normal_(std=0.02)` cuts at ±2 (absolute): the draw's std is 0.02, not
    /// the 0.0176 of a cut at ±2 std, and values beyond 2 std occur (about 4.6% of them).
    #[test]
    fn trunc_normal_matches_timms_absolute_cutoff() {
        let w = trunc_normal(&mut Generator::new(3), &[200_000], 0.02, DType::F64).unwrap().to_vec_f64().unwrap();
        let std = (w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64).sqrt();
        assert!((std - 0.02).abs() < 2e-4, "std {std}");
        let beyond = w.iter().filter(|x| x.abs() > 0.04).count() as f64 / w.len() as f64;
        assert!((beyond - 0.0455).abs() < 0.003, "share beyond 2 std: {beyond}");
    }
}
