//! End-to-end gradchecks of composite models: a 2-layer MLP with cross-entropy, a small conv
//! net with batch norm and pooling, a pre-norm attention block, and the NT-Xent loss.

mod common;

use tessera::autograd::{fused, gradcheck, Result, Var};
use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::methods::nt_xent;

fn rand(shape: &[usize], seed: u64, scale: f64) -> Tensor {
    Generator::new(seed).normal(shape, 0.0, scale, DType::F64).unwrap()
}

/// Gradcheck in f64 on the CPU; then, where a GPU is found, the same graph on it must give
/// the same loss and gradients as on the CPU (autograd runs unchanged on CUDA tensors).
fn check(f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor]) {
    gradcheck(&f, inputs, 1e-6, 1e-6, 1e-5).unwrap();
    common::gpu::same_on_gpu("composite graph: loss and gradients", inputs, |t| {
        let as_engine = |e: tessera::autograd::Error| tessera::engine::Error::invalid("autograd", e.to_string());
        let vars: Vec<Var> = t.iter().map(|x| Var::param(x.clone())).collect::<Result<_>>().map_err(as_engine)?;
        // A non-scalar output (the attention block's) is summed, as gradcheck does.
        let loss = f(&vars).and_then(|l| l.sum_all()).map_err(as_engine)?;
        loss.backward().map_err(as_engine)?;
        let mut out = vec![loss.value()];
        out.extend(vars.iter().map(|v| v.grad().expect("every input gets a gradient")));
        Ok(out)
    });
}

#[test]
fn mlp_with_cross_entropy() {
    let targets = Tensor::from_vec(vec![0i64, 2, 1, 2], &[4]).unwrap();
    check(
        |v| {
            let h = v[0].matmul(&v[1])?.add(&v[2])?.gelu()?;
            fused::cross_entropy(&h.matmul(&v[3])?.add(&v[4])?, &targets, 0.1)
        },
        &[rand(&[4, 5], 1, 1.0), rand(&[5, 6], 2, 0.5), rand(&[6], 3, 0.1), rand(&[6, 3], 4, 0.5), rand(&[3], 5, 0.1)],
    );
}

#[test]
fn conv_net_with_batch_norm_and_pooling() {
    let targets = Tensor::from_vec(vec![1i64, 0, 1], &[3]).unwrap();
    check(
        |v| {
            let h = v[0].conv2d(&v[1], Some(&v[2]), (1, 1), (1, 1), (1, 1), 1)?;
            let h = fused::batch_norm(&h, Some(&v[3]), Some(&v[4]), 1e-5)?.output.tanh()?;
            let h = h.avg_pool2d((2, 2), (2, 2), (0, 0), true)?.adaptive_avg_pool2d((1, 1))?.flatten(1, -1)?;
            fused::cross_entropy(&h.matmul(&v[5])?, &targets, 0.0)
        },
        &[
            rand(&[3, 2, 4, 4], 1, 1.0),
            rand(&[3, 2, 3, 3], 2, 0.4),
            rand(&[3], 3, 0.1),
            rand(&[3], 4, 0.2).add_scalar(1.0).unwrap(),
            rand(&[3], 5, 0.1),
            rand(&[3, 2], 6, 0.5),
        ],
    );
}

#[test]
fn pre_norm_attention_block() {
    // x + proj(attn(ln(x))), then x + mlp(ln(x)); 1 batch, 2 heads, 3 tokens, width 4.
    check(
        |v| {
            let (b, l, d, h) = (1, 3, 4, 2);
            let x = &v[0];
            let qkv = fused::layer_norm(x, Some(&v[1]), Some(&v[2]), 1e-5)?.matmul(&v[3])?; // [b, l, 3d]
            let qkv = qkv.reshape(&[b, l as isize, 3, h as isize, (d / h) as isize])?.permute(&[2, 0, 3, 1, 4])?;
            let (q, k, val) = (qkv.select(0, 0)?, qkv.select(0, 1)?, qkv.select(0, 2)?);
            let a = fused::scaled_dot_product_attention(&q, &k, &val, true, None)?
                .permute(&[0, 2, 1, 3])?
                .reshape(&[b, l as isize, d as isize])?;
            let x = x.add(&a.matmul(&v[4])?)?;
            let m = fused::layer_norm(&x, None, None, 1e-5)?.matmul(&v[5])?.gelu()?.matmul(&v[6])?;
            x.add(&m)
        },
        &[
            rand(&[1, 3, 4], 1, 1.0),
            rand(&[4], 2, 0.1).add_scalar(1.0).unwrap(),
            rand(&[4], 3, 0.1),
            rand(&[4, 12], 4, 0.4),
            rand(&[4, 4], 5, 0.4),
            rand(&[4, 8], 6, 0.4),
            rand(&[8, 4], 7, 0.4),
        ],
    );
}

#[test]
fn nt_xent_gradient() {
    check(|v| nt_xent(&v[0], 0.5), &[rand(&[6, 4], 1, 1.0)]);
    check(|v| nt_xent(&v[0].matmul(&v[1])?, 0.1), &[rand(&[4, 3], 2, 1.0), rand(&[3, 5], 3, 1.0)]);
}

/// The fused loss against the definition written with plain differentiable ops.
#[test]
fn nt_xent_matches_its_definition() {
    let z = rand(&[8, 5], 9, 1.0);
    let fused_loss = nt_xent(&Var::constant(z.clone()), 0.5).unwrap().value().item().unwrap();
    let zn = z.div(&z.square().unwrap().sum(&[1], true).unwrap().sqrt().unwrap()).unwrap().to_vec::<f64>().unwrap();
    let (n2, d) = (8, 5);
    let mut total = 0.0;
    for i in 0..n2 {
        let sim = |j: usize| (0..d).map(|k| zn[i * d + k] * zn[j * d + k]).sum::<f64>() / 0.5;
        let denom: f64 = (0..n2).filter(|&j| j != i).map(|j| sim(j).exp()).sum();
        total += -(sim((i + n2 / 2) % n2).exp() / denom).ln();
    }
    assert!((fused_loss - total / n2 as f64).abs() < 1e-12, "{fused_loss} vs {}", total / n2 as f64);
}

#[test]
fn nt_xent_rejects_bad_shapes() {
    let err = nt_xent(&Var::constant(rand(&[3, 4], 1, 1.0)), 0.5).unwrap_err().to_string();
    assert!(err.contains("nt_xent") && err.contains("[3, 4]"), "{err}");
}

/// Multi-head attention on a projection's rows (what `nn::Attention` runs) gives, in f32 on
/// the host, the bits of the composition it replaced: the rows split into heads as views,
/// packed attention, the heads merged, forward and backward; odd sizes, both masks, and
/// every thread count (the kernel splits the samples between threads).
#[test]
fn multi_head_attention_gives_the_bits_of_the_composition() {
    let (b, l, heads, d) = (3, 13, 3, 5);
    let x = Generator::new(21).normal(&[b, l, 3 * heads * d], 0.0, 1.0, DType::F32).unwrap();
    let w = Generator::new(22).normal(&[b, l, heads * d], 0.0, 1.0, DType::F32).unwrap();
    let run = |causal: bool, fused_op: bool| {
        let xv = Var::param(x.clone()).unwrap();
        let out = if fused_op {
            fused::multi_head_attention(&xv, heads, causal).unwrap()
        } else {
            let qkv = xv.reshape_to(&[b, l, 3, heads, d]).unwrap().permute(&[2, 0, 3, 1, 4]).unwrap();
            let o = fused::scaled_dot_product_attention_packed(&qkv, causal, None).unwrap();
            o.permute(&[0, 2, 1, 3]).unwrap().reshape_to(&[b, l, heads * d]).unwrap()
        };
        out.mul(&Var::constant(w.clone())).unwrap().sum_all().unwrap().backward().unwrap();
        let bits = |t: Tensor| t.to_vec::<f32>().unwrap().into_iter().map(f32::to_bits).collect::<Vec<_>>();
        (bits(out.value()), bits(xv.grad().unwrap()))
    };
    for causal in [false, true] {
        let want = run(causal, false);
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let got = pool.install(|| run(causal, true));
            assert_eq!(got.0, want.0, "outputs, causal {causal}, {threads} threads");
            assert_eq!(got.1, want.1, "gradients, causal {causal}, {threads} threads");
        }
    }
    let err = fused::multi_head_attention(&Var::param(x.clone()).unwrap(), 2, false).unwrap_err().to_string();
    assert!(err.contains("multi_head_attention") && err.contains("[3, 13, 45]") && err.contains("2 heads"), "{err}");
    let err = fused::multi_head_attention(&Var::param(w.clone()).unwrap().reshape_to(&[b * l * heads * d]).unwrap(), 1, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[B, L, 3·D]") && err.contains("[585]"), "{err}");
}

/// Attention on a stacked `[3, ...]` q/k/v (what `nn::Attention` runs) gives the bits of
/// attention on the three `select`s, forward and backward, in f32: the packed backward only
/// writes the three gradients side by side where the selects scattered them into zeros.
#[test]
fn packed_attention_gives_the_bits_of_three_selects() {
    for causal in [false, true] {
        let x = Generator::new(11).normal(&[2, 7, 3, 2, 5], 0.0, 1.0, DType::F32).unwrap();
        let run = |packed: bool| {
            let xv = Var::param(x.clone()).unwrap();
            let qkv = xv.permute(&[2, 0, 3, 1, 4]).unwrap();
            let out = if packed {
                fused::scaled_dot_product_attention_packed(&qkv, causal, None).unwrap()
            } else {
                let [q, k, v] = [0, 1, 2].map(|i| qkv.select(0, i).unwrap());
                fused::scaled_dot_product_attention(&q, &k, &v, causal, None).unwrap()
            };
            // A loss that weighs every output differently, so every gradient entry differs.
            let w = Generator::new(12).normal(&out.shape(), 0.0, 1.0, DType::F32).unwrap();
            out.mul(&Var::constant(w)).unwrap().sum_all().unwrap().backward().unwrap();
            (out.value().to_vec::<f32>().unwrap(), xv.grad().unwrap().to_vec::<f32>().unwrap())
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let ((o1, g1), (o2, g2)) = (run(true), run(false));
        assert_eq!(bits(&o1), bits(&o2), "outputs, causal {causal}");
        assert_eq!(bits(&g1), bits(&g2), "gradients, causal {causal}");
    }
    let not_stacked = Var::param(Tensor::zeros(&[2, 4, 5], DType::F32).unwrap()).unwrap();
    let err = fused::scaled_dot_product_attention_packed(&not_stacked, false, None).unwrap_err().to_string();
    assert!(err.contains("[3, ..., L, D]") && err.contains("[2, 4, 5]"), "{err}");
}
