//! Pooling (max with indices, average, adaptive average) against plain nested-loop
//! references (f64), plus dot-product (adjoint) checks of the backward kernels (see
//! tests/common/adjoint.rs), and the same ops on a GPU.

mod common;

use common::adjoint::{assert_adjoint, assert_close, dot, rand, relayout, vals};
use common::gpu::same_on_gpu_tol;
use common::window::{out_len, window_params, P};
use proptest::prelude::*;
use tessera::engine::{DType, Tensor};

// ---- pooling ----------------------------------------------------------------------------

fn max_pool_ref(x: &[f64], [n, c, h, w]: [usize; 4], k: P, s: P, p: P, d: P) -> (Vec<f64>, Vec<i64>, [usize; 4]) {
    let (oh, ow) = (out_len(h, k.0, s.0, p.0, d.0).unwrap(), out_len(w, k.1, s.1, p.1, d.1).unwrap());
    let mut vals = vec![];
    let mut idx = vec![];
    for pl in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut best, mut at) = (f64::NEG_INFINITY, -1i64);
                for i in 0..k.0 {
                    for j in 0..k.1 {
                        let iy = (oy * s.0 + i * d.0) as isize - p.0 as isize;
                        let ix = (ox * s.1 + j * d.1) as isize - p.1 as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            let v = x[pl * h * w + iy as usize * w + ix as usize];
                            if at < 0 || v > best {
                                best = v;
                                at = iy as i64 * w as i64 + ix as i64;
                            }
                        }
                    }
                }
                vals.push(best);
                idx.push(at);
            }
        }
    }
    (vals, idx, [n, c, oh, ow])
}

fn avg_pool_ref(x: &[f64], [n, c, h, w]: [usize; 4], k: P, s: P, p: P, include_pad: bool) -> (Vec<f64>, [usize; 4]) {
    let (oh, ow) = (out_len(h, k.0, s.0, p.0, 1).unwrap(), out_len(w, k.1, s.1, p.1, 1).unwrap());
    let mut out = vec![];
    for pl in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut sum, mut cnt) = (0.0, 0);
                for i in 0..k.0 {
                    for j in 0..k.1 {
                        let iy = (oy * s.0 + i) as isize - p.0 as isize;
                        let ix = (ox * s.1 + j) as isize - p.1 as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            sum += x[pl * h * w + iy as usize * w + ix as usize];
                            cnt += 1;
                        }
                    }
                }
                out.push(sum / if include_pad { (k.0 * k.1) as f64 } else { cnt as f64 });
            }
        }
    }
    (out, [n, c, oh, ow])
}

fn adaptive_ref(x: &[f64], [n, c, h, w]: [usize; 4], (oh, ow): P) -> Vec<f64> {
    let mut out = vec![];
    for pl in 0..n * c {
        for oy in 0..oh {
            let (y0, y1) = (oy * h / oh, ((oy + 1) * h).div_ceil(oh));
            for ox in 0..ow {
                let (x0, x1) = (ox * w / ow, ((ox + 1) * w).div_ceil(ow));
                let mut sum = 0.0;
                for y in y0..y1 {
                    for xx in x0..x1 {
                        sum += x[pl * h * w + y * w + xx];
                    }
                }
                out.push(sum / ((y1 - y0) * (x1 - x0)) as f64);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn max_pool2d_matches_reference_and_backward_is_adjoint(
        (n, c, h, w) in (1usize..3, 1usize..3, 1usize..8, 1usize..8),
        (k, s, p, d) in window_params(),
        variant in 0u8..4,
        seed in any::<u64>(),
    ) {
        let x = rand(seed, &[n, c, h, w]);
        let xv = relayout(&x, variant);
        let got = xv.max_pool2d(k, s, p, d);
        let eff = |k: usize, d: usize| d * (k - 1) + 1;
        let fits = out_len(h, k.0, s.0, p.0, d.0).is_some() && out_len(w, k.1, s.1, p.1, d.1).is_some();
        if !fits || p.0 > eff(k.0, d.0) / 2 || p.1 > eff(k.1, d.1) / 2 {
            let msg = got.unwrap_err().to_string();
            prop_assert!(msg.contains("max_pool2d") && msg.contains(&format!("{:?}", [n, c, h, w])), "{msg}");
            return Ok(());
        }
        let (want_v, want_i, shape) = max_pool_ref(&vals(&x), [n, c, h, w], k, s, p, d);
        if want_i.contains(&-1) {
            // A window lying entirely in the padding (possible with dilation) is refused.
            let msg = got.unwrap_err().to_string();
            prop_assert!(msg.contains("entirely in the padding"), "{msg}");
            return Ok(());
        }
        let (v, i) = got.unwrap();
        prop_assert_eq!(v.shape(), &shape[..]);
        assert_close(&vals(&v), &want_v, 0.0, "max_pool2d values");
        prop_assert_eq!(i.to_vec::<i64>().unwrap(), want_i);
        let g = relayout(&rand(seed ^ 5, &shape), variant);
        let dx = g.max_pool2d_backward(&i, &[n, c, h, w]).unwrap();
        assert_adjoint(dot(&v, &g), dot(&x, &dx), "max_pool2d");
    }

    #[test]
    fn avg_pool2d_matches_reference_and_backward_is_adjoint(
        (n, c, h, w) in (1usize..3, 1usize..3, 1usize..8, 1usize..8),
        (k, s) in ((1usize..4, 1usize..4), (1usize..3, 1usize..3)),
        p in (0usize..2, 0usize..2),
        (include_pad, variant) in (any::<bool>(), 0u8..4),
        seed in any::<u64>(),
    ) {
        let x = rand(seed, &[n, c, h, w]);
        let xv = relayout(&x, variant);
        let got = xv.avg_pool2d(k, s, p, include_pad);
        let fits = out_len(h, k.0, s.0, p.0, 1).is_some() && out_len(w, k.1, s.1, p.1, 1).is_some();
        if !fits || p.0 > k.0 / 2 || p.1 > k.1 / 2 {
            let msg = got.unwrap_err().to_string();
            prop_assert!(msg.contains("avg_pool2d") && msg.contains(&format!("{:?}", [n, c, h, w])), "{msg}");
            return Ok(());
        }
        let got = got.unwrap();
        let (want, shape) = avg_pool_ref(&vals(&x), [n, c, h, w], k, s, p, include_pad);
        prop_assert_eq!(got.shape(), &shape[..]);
        assert_close(&vals(&got), &want, 1e-12, "avg_pool2d");
        let g = relayout(&rand(seed ^ 5, &shape), variant);
        let dx = g.avg_pool2d_backward(&[n, c, h, w], k, s, p, include_pad).unwrap();
        assert_adjoint(dot(&got, &g), dot(&x, &dx), "avg_pool2d");
    }

    #[test]
    fn adaptive_avg_pool2d_matches_reference_and_backward_is_adjoint(
        (n, c, h, w) in (1usize..3, 1usize..3, 1usize..9, 1usize..9),
        out in (1usize..6, 1usize..6),
        variant in 0u8..4,
        seed in any::<u64>(),
    ) {
        let x = rand(seed, &[n, c, h, w]);
        let got = relayout(&x, variant).adaptive_avg_pool2d(out).unwrap();
        prop_assert_eq!(got.shape(), &[n, c, out.0, out.1][..]);
        assert_close(&vals(&got), &adaptive_ref(&vals(&x), [n, c, h, w], out), 1e-12, "adaptive_avg_pool2d");
        let g = relayout(&rand(seed ^ 5, got.shape()), variant);
        let dx = g.adaptive_avg_pool2d_backward(&[n, c, h, w]).unwrap();
        assert_adjoint(dot(&got, &g), dot(&x, &dx), "adaptive_avg_pool2d");
    }
}

#[test]
fn pooling_on_unbatched_f32_input_and_ties() {
    // Ties pick the first position; [C, H, W] input works; f32 works.
    let x = Tensor::from_vec(vec![1f32, 1., 0., 1., 1., 0., 2., 2., 2.], &[1, 3, 3]).unwrap();
    let (v, i) = x.max_pool2d((2, 2), (1, 1), (0, 0), (1, 1)).unwrap();
    assert_eq!(v.to_vec::<f32>().unwrap(), vec![1., 1., 2., 2.]);
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![0, 1, 6, 7]);
    let a = x.avg_pool2d((3, 3), (1, 1), (1, 1), false).unwrap();
    assert_eq!(a.shape(), &[1, 3, 3]);
    assert!((a.to_vec::<f32>().unwrap()[0] - 1.0).abs() < 1e-6);
    let g = x.adaptive_avg_pool2d((1, 1)).unwrap();
    assert!((g.item().unwrap() - 10.0 / 9.0).abs() < 1e-6);
}

#[test]
fn pooling_errors_name_the_op_and_shapes() {
    let x = Tensor::zeros(&[1, 2, 4, 4], DType::F64).unwrap();
    let e = x.max_pool2d((2, 2), (2, 2), (2, 0), (1, 1)).unwrap_err().to_string();
    assert!(e.contains("max_pool2d") && e.contains("[1, 2, 4, 4]") && e.contains("half"), "{e}");
    let e = x.max_pool2d((5, 2), (1, 1), (0, 0), (1, 1)).unwrap_err().to_string();
    assert!(e.contains("max_pool2d") && e.contains("height"), "{e}");
    let e = Tensor::zeros(&[4, 4], DType::F64).unwrap().avg_pool2d((2, 2), (2, 2), (0, 0), true).unwrap_err().to_string();
    assert!(e.contains("avg_pool2d") && e.contains("[4, 4]"), "{e}");
    let (_, idx) = x.max_pool2d((2, 2), (2, 2), (0, 0), (1, 1)).unwrap();
    let g = Tensor::ones(&[1, 2, 2, 2], DType::F64).unwrap();
    let bad_idx = idx.add_scalar_i64(16);
    let e = g.max_pool2d_backward(&bad_idx, x.shape()).unwrap_err().to_string();
    assert!(e.contains("max_pool2d_backward") && e.contains("index 16") && e.contains("16 elements"), "{e}");
    let e = g.max_pool2d_backward(&g, x.shape()).unwrap_err().to_string();
    assert!(e.contains("max_pool2d_backward") && e.contains("I64") || e.contains("i64"), "{e}");
    let e = g.avg_pool2d_backward(&[1, 2, 6, 6], (2, 2), (2, 2), (0, 0), true).unwrap_err().to_string();
    assert!(e.contains("avg_pool2d_backward") && e.contains("[1, 2, 2, 2]"), "{e}");
    let e = Tensor::zeros(&[1, 1, 0, 3], DType::F64).unwrap().adaptive_avg_pool2d((2, 2)).unwrap_err().to_string();
    assert!(e.contains("adaptive_avg_pool2d") && e.contains("[1, 1, 0, 3]"), "{e}");
    let e = g.adaptive_avg_pool2d_backward(&[1, 3, 4, 4]).unwrap_err().to_string();
    assert!(e.contains("adaptive_avg_pool2d_backward") && e.contains("[1, 2, 2, 2]"), "{e}");
}

trait AddI64 {
    fn add_scalar_i64(&self, c: i64) -> Tensor;
}
impl AddI64 for Tensor {
    fn add_scalar_i64(&self, c: i64) -> Tensor {
        let v: Vec<i64> = self.to_vec::<i64>().unwrap().into_iter().map(|x| x + c).collect();
        Tensor::from_vec(v, self.shape()).unwrap()
    }
}
// ---- GPU parity: the same ops on GPU copies of the same (often strided) inputs -------------

#[test]
fn gpu_pooling_and_its_gradients_match_cpu() {
    // (input shape, kernel, stride, padding, dilation)
    let cases: &[(&[usize], P, P, P, P)] = &[
        (&[2, 3, 7, 6], (3, 3), (2, 2), (1, 1), (1, 1)),
        (&[1, 2, 5, 8], (2, 3), (1, 2), (1, 0), (2, 1)),
        (&[3, 5, 4], (2, 2), (2, 2), (0, 0), (1, 1)),
        (&[1, 1, 1, 1], (1, 1), (1, 1), (0, 0), (1, 1)),
        (&[2, 2, 9, 9], (3, 2), (3, 1), (1, 1), (1, 1)),
    ];
    for dtype in common::gpu::GPU_FLOATS {
        for (case, &(xs, k, s, p, d)) in cases.iter().enumerate() {
            // Few distinct values, so windows hold ties.
            let x = common::operand_with(xs, dtype, 300 + case as u64, |r| r.below(4) as f64).t;
            let x0 = Tensor::zeros(xs, dtype).unwrap();
            let max_shape = x0.max_pool2d(k, s, p, d).unwrap().0.shape().to_vec();
            let g = common::operand(&max_shape, dtype, 400 + case as u64).t;
            same_on_gpu_tol(&format!("max_pool2d {dtype:?} {xs:?} {k:?} {s:?} {p:?} {d:?}"), &[x.clone(), g], None, |t| {
                let (v, i) = t[0].max_pool2d(k, s, p, d)?;
                let dx = t[1].max_pool2d_backward(&i, t[0].shape())?;
                Ok(vec![v, i, dx])
            });
            for include_pad in [false, true] {
                let avg_shape = x0.avg_pool2d(k, s, p, include_pad).unwrap().shape().to_vec();
                let g = common::operand(&avg_shape, dtype, 500 + case as u64).t;
                let what = format!("avg_pool2d {dtype:?} {xs:?} {k:?} {s:?} {p:?} include_pad {include_pad}");
                same_on_gpu_tol(&what, &[x.clone(), g], None, |t| {
                    let y = t[0].avg_pool2d(k, s, p, include_pad)?;
                    let dx = t[1].avg_pool2d_backward(t[0].shape(), k, s, p, include_pad)?;
                    Ok(vec![y, dx])
                });
            }
        }
    }
}

#[test]
fn gpu_max_pool2d_nan_windows_match_cpu() {
    for dtype in common::gpu::GPU_FLOATS {
        let x = common::operand_with(&[2, 3, 6, 5], dtype, 7, |r| if r.coin(0.2) { f64::NAN } else { r.below(3) as f64 }).t;
        same_on_gpu_tol(&format!("max_pool2d NaN {dtype:?}"), &[x], None, |t| {
            let (v, i) = t[0].max_pool2d((2, 3), (1, 2), (1, 1), (1, 1))?;
            Ok(vec![v, i])
        });
    }
}

#[test]
fn gpu_adaptive_avg_pool2d_and_its_gradient_match_cpu() {
    let cases: &[(&[usize], P)] =
        &[(&[2, 3, 7, 5], (3, 4)), (&[1, 2, 5, 5], (5, 5)), (&[4, 9, 6], (1, 1)), (&[1, 1, 3, 4], (7, 9)), (&[2, 2, 4, 4], (0, 2))];
    for dtype in common::gpu::GPU_FLOATS {
        for (case, &(xs, out)) in cases.iter().enumerate() {
            let ys = Tensor::zeros(xs, dtype).unwrap().adaptive_avg_pool2d(out).unwrap().shape().to_vec();
            let inputs = common::gpu::operands(dtype, 600 + case as u64, &[xs, &ys]);
            same_on_gpu_tol(&format!("adaptive_avg_pool2d {dtype:?} {xs:?} -> {out:?}"), &inputs, None, |t| {
                Ok(vec![t[0].adaptive_avg_pool2d(out)?, t[1].adaptive_avg_pool2d_backward(t[0].shape())?])
            });
        }
    }
}

#[test]
fn gpu_max_pool2d_backward_refuses_bad_indices_as_the_cpu_does() {
    let Some(dev) = common::gpu::gpu() else { return };
    let x = Tensor::zeros(&[1, 2, 4, 4], DType::F32).unwrap();
    let (_, idx) = x.max_pool2d((2, 2), (2, 2), (0, 0), (1, 1)).unwrap();
    let mut bad = idx.to_vec::<i64>().unwrap();
    bad[5] = 16;
    bad[6] = -1;
    let bad = Tensor::from_vec(bad, idx.shape()).unwrap();
    let g = Tensor::ones(&[1, 2, 2, 2], DType::F32).unwrap();
    let want = g.max_pool2d_backward(&bad, x.shape()).unwrap_err().to_string();
    let got = g.to_device(dev).unwrap().max_pool2d_backward(&bad.to_device(dev).unwrap(), x.shape()).unwrap_err().to_string();
    assert_eq!(got, want);
}
