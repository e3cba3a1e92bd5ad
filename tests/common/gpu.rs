//! Device parity: the same op on the CPU and on a GPU, on the same random inputs, compared
//! with a tolerance by dtype. Where no GPU (or no driver) is found, each check prints why it
//! was skipped and passes, so the suite runs anywhere.

use std::sync::Once;
use tessera::engine::{cuda, DType, Device, Result, Tensor};

/// The first GPU, or `None` after printing (once per test binary) why GPU checks skip.
pub fn gpu() -> Option<Device> {
    static SAY: Once = Once::new();
    if cuda::is_available() {
        return Some(Device::Cuda(0));
    }
    SAY.call_once(|| eprintln!("skipping the GPU checks: no CUDA driver or GPU was found on this machine"));
    None
}

/// The float dtypes the GPU parity checks run in: bf16 and f16 beside f32 and f64. The CPU
/// computes halves in f32 and rounds each op's result once, which is the kernels' contract.
pub const GPU_FLOATS: [DType; 4] = [DType::F32, DType::F64, DType::BF16, DType::F16];

/// Tolerance on `|gpu - cpu| <= tol * (1 + |cpu|)` for results of `dtype`. Float kernels
/// reorder sums and use the GPU's own exp/log, so f32 gets a few ulps times the depth. The
/// halves both round the same f32 result once, so they differ by at most about one half ulp
/// (bf16 2^-8 relative, f16 2^-11) where the two f32 results fall on either side of a
/// rounding boundary: two ulps of slack.
pub fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 2e-4,
        DType::F64 => 1e-10,
        DType::BF16 => 1.6e-2,
        DType::F16 => 2e-3,
        DType::I64 | DType::U8 => 0.0,
    }
}

/// Runs `f` on `inputs` (CPU tensors) and on their GPU copies *with the same layouts* (a
/// transposed or sliced CPU input stays transposed or sliced on the GPU), and checks that
/// both give the same shapes, dtypes and values. `what` names the case in failures.
pub fn same_on_gpu(what: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>) {
    same_on_gpu_tol(what, inputs, None, f)
}

/// [`same_on_gpu`] with an explicit tolerance (for long reductions or TF32 GEMMs).
pub fn same_on_gpu_tol(what: &str, inputs: &[Tensor], tol: Option<f64>, f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>) {
    let Some(dev) = gpu() else { return };
    let want = f(inputs).unwrap_or_else(|e| panic!("{what}: the CPU run failed: {e}"));
    let on_gpu: Vec<Tensor> = inputs.iter().map(|t| to_device_keeping_layout(t, dev)).collect();
    let got = f(&on_gpu).unwrap_or_else(|e| panic!("{what}: the GPU run failed: {e}"));
    assert_eq!(got.len(), want.len(), "{what}: output count");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.device(), dev, "{what}: output {i} should stay on the GPU");
        assert_eq!(g.shape(), w.shape(), "{what}: output {i} shape");
        assert_eq!(g.dtype(), w.dtype(), "{what}: output {i} dtype");
        let tol = tol.unwrap_or_else(|| tolerance(w.dtype()));
        let (gv, wv) = (g.to_vec_f64().unwrap(), w.to_vec_f64().unwrap());
        for (j, (a, b)) in gv.iter().zip(&wv).enumerate() {
            let ok = (a - b).abs() <= tol * (1.0 + b.abs()) || (a.is_nan() && b.is_nan()) || a == b;
            assert!(ok, "{what}: output {i} element {j}: GPU {a} vs CPU {b} (tolerance {tol:e}, shape {:?})", w.shape());
        }
    }
}

/// A GPU tensor seen through the same strides and offset as `t`: the whole underlying CPU
/// buffer is reproduced by re-viewing a contiguous copy, so kernels meet real strided views.
pub fn to_device_keeping_layout(t: &Tensor, dev: Device) -> Tensor {
    if t.is_contiguous() {
        return t.to_device(dev).unwrap();
    }
    let (base, layout) = t.storage_view();
    base.to_device(dev).unwrap().as_strided(&layout.shape, &layout.strides, layout.offset).unwrap()
}

/// Operands with random layouts (transposed, flipped, sliced, expanded), one per shape.
pub fn operands(dtype: DType, seed: u64, shapes: &[&[usize]]) -> Vec<Tensor> {
    shapes.iter().enumerate().map(|(i, s)| super::operand(s, dtype, seed * 16 + i as u64).t).collect()
}
