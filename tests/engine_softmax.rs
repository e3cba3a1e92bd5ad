//! softmax / log_softmax along any axis against naive references, stability at large inputs,
//! and the fused backward kernels against finite differences.

mod common;

use common::*;
use proptest::prelude::*;
use tessera::engine::{DType, Tensor};

/// `f` applied to each 1-D line of `a` along `axis`.
fn along(a: &Arr, axis: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Arr {
    let mut out = a.clone();
    let mut line_shape = a.shape.clone();
    line_shape[axis] = 1;
    for start in indices(&line_shape) {
        let pos: Vec<usize> = (0..a.shape[axis])
            .map(|k| {
                let mut i = start.clone();
                i[axis] = k;
                a.flat(&i)
            })
            .collect();
        let line: Vec<f64> = pos.iter().map(|&p| a.data[p]).collect();
        for (&p, v) in pos.iter().zip(f(&line)) {
            out.data[p] = v;
        }
    }
    out
}

fn naive_softmax(v: &[f64]) -> Vec<f64> {
    let s: f64 = v.iter().map(|x| x.exp()).sum();
    v.iter().map(|x| x.exp() / s).collect()
}

fn naive_log_softmax(v: &[f64]) -> Vec<f64> {
    let s: f64 = v.iter().map(|x| x.exp()).sum::<f64>().ln();
    v.iter().map(|x| x - s).collect()
}

/// Central finite difference of `Σ g · f(x)` with respect to each element of `x`.
fn fd_grad(x: &Arr, g: &Arr, f: impl Fn(&Tensor) -> Tensor) -> Arr {
    let h = 1e-5;
    let loss = |a: &Arr| f(&tensor(a, DType::F64)).to_vec_f64().unwrap().iter().zip(&g.data).map(|(y, g)| y * g).sum::<f64>();
    let data = (0..x.data.len())
        .map(|i| {
            let (mut up, mut down) = (x.clone(), x.clone());
            up.data[i] += h;
            down.data[i] -= h;
            (loss(&up) - loss(&down)) / (2.0 * h)
        })
        .collect();
    Arr::new(&x.shape, data)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn softmax_and_log_softmax_match_naive(shape in shape(4, 5), seed: u64) {
        prop_assume!(!shape.is_empty());
        let mut rng = Rng64::new(seed);
        let axis = rng.below(shape.len());
        let signed = if rng.coin(0.5) { axis as isize - shape.len() as isize } else { axis as isize };
        for dtype in FLOATS {
            let o = operand(&shape, dtype, seed);
            let (rtol, atol) = if dtype == DType::F64 { (1e-12, 1e-14) } else { (1e-5, 1e-6) };
            let s = o.t.softmax(signed).unwrap();
            assert_tensor(&format!("softmax axis {signed} of {o:?}"), &s, &along(&o.a, axis, naive_softmax), rtol, atol);
            let ls = o.t.log_softmax(signed).unwrap();
            assert_tensor(&format!("log_softmax axis {signed} of {o:?}"), &ls, &along(&o.a, axis, naive_log_softmax), rtol, atol);
            // Every line sums to 1.
            if shape[axis] > 0 {
                let sums = s.sum(&[signed], false).unwrap().to_vec_f64().unwrap();
                prop_assert!(sums.iter().all(|v| (v - 1.0).abs() < 1e-5), "{:?}", sums);
            }
        }
    }

    #[test]
    fn softmax_backward_matches_finite_differences(shape in nonempty_shape(3, 4), seed: u64) {
        prop_assume!(!shape.is_empty());
        let axis = Rng64::new(seed).below(shape.len()) as isize;
        let x = operand(&shape, DType::F64, seed);
        let g = operand(&shape, DType::F64, seed ^ 9);
        let y = x.t.softmax(axis).unwrap();
        let got = y.softmax_backward(&g.t, axis).unwrap();
        assert_tensor("softmax_backward", &got, &fd_grad(&x.a, &g.a, |t| t.softmax(axis).unwrap()), 1e-5, 1e-7);
        let ly = x.t.log_softmax(axis).unwrap();
        let got = ly.log_softmax_backward(&g.t, axis).unwrap();
        assert_tensor("log_softmax_backward", &got, &fd_grad(&x.a, &g.a, |t| t.log_softmax(axis).unwrap()), 1e-5, 1e-7);
        // f32 agrees with f64 on the same values.
        let (y32, g32) = (y.to_dtype(DType::F32).unwrap(), g.t.to_dtype(DType::F32).unwrap());
        let got32 = y32.softmax_backward(&g32, axis).unwrap();
        assert_tensor("softmax_backward f32", &got32, &Arr::new(&shape, y.softmax_backward(&g.t, axis).unwrap().to_vec_f64().unwrap()), 1e-4, 1e-5);
    }
}

#[test]
fn large_inputs_do_not_overflow() {
    let v = [1e4f32, 1e4 - 1.0, -1e4, 1e4, 0.0, 5e3];
    let x = Tensor::from_slice(&v, &[2, 3]).unwrap();
    for dtype in FLOATS {
        let x = x.to_dtype(dtype).unwrap();
        let s = x.softmax(1).unwrap().to_vec_f64().unwrap();
        let ls = x.log_softmax(1).unwrap().to_vec_f64().unwrap();
        let e = 1.0 / (1.0 + (-1f64).exp());
        assert_close_slices("softmax of 1e4", &s, &[e, 1.0 - e, 0.0, 1.0, 0.0, 0.0], 1e-6, 1e-7);
        assert!(ls.iter().all(|v| v.is_finite()), "{ls:?}");
        assert_close_slices("log_softmax of 1e4", &ls[..2], &[e.ln(), (1.0 - e).ln()], 1e-5, 1e-6);
        assert_close_slices("log_softmax of -1e4", &ls[2..4], &[-(2e4 + (-1f64).exp().ln_1p()), 0.0], 1e-5, 1e-6);
        // Along axis 0 too (a strided line).
        let s0 = x.softmax(0).unwrap().to_vec_f64().unwrap();
        assert_close_slices("softmax axis 0", &[s0[0], s0[3]], &[0.5, 0.5], 1e-6, 1e-7);
    }
}

#[test]
fn softmax_of_empty_and_single_lines() {
    assert_eq!(Tensor::zeros(&[2, 0], DType::F32).unwrap().softmax(1).unwrap().shape(), &[2, 0]);
    assert_eq!(Tensor::zeros(&[0, 3], DType::F64).unwrap().log_softmax(1).unwrap().shape(), &[0, 3]);
    let one = Tensor::from_slice(&[3.0f64, -7.0], &[2, 1]).unwrap();
    assert_eq!(one.softmax(1).unwrap().to_vec::<f64>().unwrap(), [1.0, 1.0]);
    assert_eq!(one.log_softmax(-1).unwrap().to_vec::<f64>().unwrap(), [0.0, 0.0]);
}

#[test]
fn softmax_above_the_parallel_threshold() {
    let (rows, n) = (97, 700);
    let a = Arr::from_fn(&[rows, n], |i| ((i[0] * 13 + i[1] * 7) % 23) as f64 / 5.0);
    let x = tensor(&a, DType::F64);
    assert_tensor("softmax", &x.softmax(1).unwrap(), &along(&a, 1, naive_softmax), 1e-12, 1e-15);
    assert_tensor("log_softmax axis 0", &x.log_softmax(0).unwrap(), &along(&a, 0, naive_log_softmax), 1e-12, 1e-12);
}

// ---- GPU parity: the same ops on CUDA tensors (skipped where there is no GPU) ---------------

#[test]
fn gpu_softmax_and_backward_match_cpu() {
    // Short rows (a warp each), long rows (a block each), strided inputs along every axis,
    // empty and single-element lines.
    let shapes: &[&[usize]] = &[&[37], &[3, 4, 5], &[2, 1, 6], &[2, 0], &[0, 3], &[2, 1], &[4, 700], &[3, 2000, 2]];
    for dtype in gpu::GPU_FLOATS {
        for (seed, &shape) in shapes.iter().enumerate() {
            let x = operand(shape, dtype, seed as u64 + 500).t;
            let g = operand(shape, dtype, seed as u64 + 600).t;
            for axis in 0..shape.len() as isize {
                for signed in [axis, axis - shape.len() as isize] {
                    let what = format!("softmax family axis {signed} of {dtype:?} {shape:?}");
                    gpu::same_on_gpu(&what, &[x.clone(), g.clone()], |t| {
                        let y = t[0].softmax(signed)?;
                        let ly = t[0].log_softmax(signed)?;
                        let dy = y.softmax_backward(&t[1], signed)?;
                        let dly = ly.log_softmax_backward(&t[1], signed)?;
                        Ok(vec![y, ly, dy, dly])
                    });
                }
            }
        }
    }
}

#[test]
fn gpu_softmax_of_extreme_rows_matches_cpu() {
    let inf = f64::INFINITY;
    let rows = vec![1e4, 1e4 - 1.0, -1e4, -inf, -inf, -inf, 0.0, f64::NAN, 1.0, -inf, 0.0, 5e3];
    let x = Tensor::from_vec(rows, &[4, 3]).unwrap();
    for t in [x.clone(), x.to_dtype(DType::F32).unwrap()] {
        gpu::same_on_gpu("softmax of large, -inf and NaN rows", &[t], |t| Ok(vec![t[0].softmax(1)?, t[0].log_softmax(1)?]));
    }
    let Some(dev) = gpu::gpu() else { return };
    // Errors are the CPU's, word for word.
    let errors = |x: &Tensor, g: &Tensor| {
        vec![err_msg(x.softmax(2)), err_msg(x.softmax_backward(g, 0)), err_msg(x.to_dtype(DType::I64).unwrap().log_softmax(0))]
    };
    let g = Tensor::zeros(&[3, 4], DType::F64).unwrap();
    assert_eq!(errors(&x.to_device(dev).unwrap(), &g.to_device(dev).unwrap()), errors(&x, &g));
}
