//! Mixed precision (`tessera::autograd::autocast`): which ops lower f32 to bf16 / f16, which
//! compute in f32, how mixed operands meet, that the guard nests and ends, that f32
//! parameters get f32 gradients, and that whole models trained under it stay within bf16
//! precision of the f32 run.

use tessera::autograd::{autocast, autocast_dtype, fused, Var};
use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::nn::{Module, ResNet, ResNetConfig, VisionTransformer, VitConfig};

fn randn(seed: u64, shape: &[usize]) -> Tensor {
    Generator::new(seed).normal(shape, 0.0, 1.0, DType::F32).unwrap()
}

#[test]
fn matmul_and_conv_lower_to_the_autocast_dtype_and_the_guard_restores() {
    let (a, b) = (Var::constant(randn(1, &[5, 7])), Var::constant(randn(2, &[7, 3])));
    assert_eq!(autocast_dtype(), None);
    {
        let _bf16 = autocast(DType::BF16).unwrap();
        let y = a.matmul(&b).unwrap().value();
        assert_eq!(y.dtype(), DType::BF16);
        // Exactly the product of the rounded operands.
        let want = a.value().to_dtype(DType::BF16).unwrap().matmul(&b.value().to_dtype(DType::BF16).unwrap()).unwrap();
        assert_eq!(y.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
        {
            let _f16 = autocast(DType::F16).unwrap();
            assert_eq!(a.matmul(&b).unwrap().value().dtype(), DType::F16);
        }
        assert_eq!(autocast_dtype(), Some(DType::BF16), "the inner guard restores the outer dtype");
        let (x, w) = (Var::constant(randn(3, &[2, 3, 6, 6])), Var::constant(randn(4, &[4, 3, 3, 3])));
        assert_eq!(x.conv2d(&w, None, (1, 1), (1, 1), (1, 1), 1).unwrap().value().dtype(), DType::BF16);
        // f64 is left alone, as PyTorch's autocast leaves float64.
        let d = Var::constant(randn(5, &[2, 2]).to_dtype(DType::F64).unwrap());
        assert_eq!(d.matmul(&d).unwrap().value().dtype(), DType::F64);
    }
    assert_eq!(autocast_dtype(), None);
    assert_eq!(a.matmul(&b).unwrap().value().dtype(), DType::F32);
}

#[test]
fn a_linear_layer_under_autocast_returns_its_product_dtype_with_the_bias_added() {
    use tessera::ssl::nn::Linear;
    let lin = Linear::new(3, 2, true, &mut Generator::new(11)).unwrap();
    let x = Var::constant(randn(12, &[4, 3]));
    let want = lin.forward(&x).unwrap().value();
    let y = {
        let _amp = autocast(DType::BF16).unwrap();
        lin.forward(&x).unwrap().value()
    };
    assert_eq!(y.dtype(), DType::BF16, "bias cast to the product's dtype, as PyTorch's autocast linear");
    for (a, b) in y.to_vec_f64().unwrap().iter().zip(want.to_vec_f64().unwrap()) {
        assert!((a - b).abs() <= 2e-2 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn reductions_softmax_norms_and_losses_compute_in_f32() {
    let _amp = autocast(DType::BF16).unwrap();
    let h = Var::constant(randn(6, &[4, 5]).to_dtype(DType::BF16).unwrap());
    assert_eq!(h.softmax(-1).unwrap().value().dtype(), DType::F32);
    assert_eq!(h.log_softmax(-1).unwrap().value().dtype(), DType::F32);
    assert_eq!(h.sum_all().unwrap().value().dtype(), DType::F32);
    assert_eq!(h.max(&[1], false).unwrap().value().dtype(), DType::BF16, "max is exact in any dtype");
    assert_eq!(fused::layer_norm(&h, None, None, 1e-5).unwrap().value().dtype(), DType::F32);
    let targets = Tensor::from_vec(vec![0i64, 4, 2, 1], &[4]).unwrap();
    assert_eq!(fused::cross_entropy(&h, &targets, 0.0).unwrap().value().dtype(), DType::F32);
    // Unary ops keep their input's dtype (they compute in f32 inside and round once).
    assert_eq!(h.exp().unwrap().value().dtype(), DType::BF16);
}

#[test]
fn mixed_operands_meet_at_the_wider_dtype_only_under_autocast() {
    let h = Var::constant(Tensor::full(&[2], 1.5, DType::BF16).unwrap());
    let f = Var::constant(Tensor::full(&[2], 0.25, DType::F32).unwrap());
    let err = h.add(&f).unwrap_err().to_string();
    assert!(err.contains("BF16") && err.contains("F32"), "outside autocast mixing is an error: {err}");
    let _amp = autocast(DType::BF16).unwrap();
    let y = h.add(&f).unwrap().value();
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(y.to_vec_f64().unwrap(), vec![1.75, 1.75]);
    let g = Var::constant(Tensor::full(&[2], 2.0, DType::F16).unwrap());
    assert_eq!(h.mul(&g).unwrap().value().dtype(), DType::F32, "bf16 and f16 meet at f32");
}

/// `cat`, `stack` and `where_` promote like the binary ops (a ViT prepends an f32 class
/// token to bf16 patch tokens; SimMIM puts an f32 mask token among them), and their
/// gradients come back in each operand's own dtype.
#[test]
fn joins_and_selects_promote_under_autocast() {
    let h = Var::param(Tensor::full(&[1, 2], 1.5, DType::BF16).unwrap()).unwrap();
    let f = Var::param(Tensor::full(&[1, 2], 0.25, DType::F32).unwrap()).unwrap();
    assert!(Var::cat(&[&h, &f], 0).is_err(), "outside autocast mixing is an error");
    let mask = Tensor::from_vec(vec![1u8, 0], &[1, 2]).unwrap();
    let (cat, stack, select) = {
        let _amp = autocast(DType::BF16).unwrap();
        (Var::cat(&[&h, &f], 0).unwrap(), Var::stack(&[&f, &h], 0).unwrap(), Var::where_(&mask, &h, &f).unwrap())
    };
    assert_eq!(cat.value().dtype(), DType::F32);
    assert_eq!(cat.value().to_vec_f64().unwrap(), vec![1.5, 1.5, 0.25, 0.25]);
    assert_eq!(stack.value().shape(), &[2, 1, 2]);
    assert_eq!(select.value().to_vec_f64().unwrap(), vec![1.5, 0.25]);
    cat.sum_all().unwrap().add(&select.sum_all().unwrap()).unwrap().backward().unwrap();
    assert_eq!(h.grad().unwrap().dtype(), DType::BF16);
    assert_eq!(h.grad().unwrap().to_vec_f64().unwrap(), vec![2.0, 1.0]);
    assert_eq!(f.grad().unwrap().to_vec_f64().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn autocast_refuses_a_dtype_that_is_not_16_bit() {
    let err = autocast(DType::F32).err().expect("f32 is not a lower precision").to_string();
    assert!(err.contains("autocast") && err.contains("bf16 or f16"), "{err}");
}

#[test]
fn f32_parameters_get_f32_gradients_through_lowered_ops() {
    let w = Var::param(randn(7, &[3, 4])).unwrap();
    let x = Var::constant(randn(8, &[5, 3]));
    let loss = {
        let _amp = autocast(DType::BF16).unwrap();
        x.matmul(&w).unwrap().square().unwrap().sum_all().unwrap()
    };
    loss.backward().unwrap();
    let g = w.grad().unwrap();
    assert_eq!(g.dtype(), DType::F32);
    // d/dw Σ (x w)² = 2 xᵀ (x w): close to the f32 gradient, within bf16 precision.
    let (xv, wv) = (x.value(), w.value());
    let want = xv.t().unwrap().matmul(&xv.matmul(&wv).unwrap()).unwrap().mul_scalar(2.0).unwrap().to_vec_f64().unwrap();
    let got = g.to_vec_f64().unwrap();
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 0.03 * scale, "{a} vs {b}");
    }
}

/// Forward and backward of a model with and without autocast to `low`: the loss and the
/// gradients (all f32) of the two runs. Returns (relative loss error, ‖Δg‖ / ‖g‖).
fn mixed_vs_f32(model: &dyn Module, x: &Tensor, targets: &Tensor, low: DType) -> (f64, f64) {
    let run = |amp: bool| {
        model.parameters().iter().for_each(|p| p.zero_grad());
        let loss = {
            let _amp = amp.then(|| autocast(low).unwrap());
            fused::cross_entropy(&model.forward(&Var::constant(x.clone())).unwrap(), targets, 0.0).unwrap()
        };
        assert_eq!(loss.value().dtype(), DType::F32);
        loss.backward().unwrap();
        let grads: Vec<f64> = model
            .parameters()
            .iter()
            .flat_map(|p| {
                let g = p.grad().unwrap();
                assert_eq!(g.dtype(), DType::F32, "parameters stay f32 and so do their gradients");
                g.to_vec_f64().unwrap()
            })
            .collect();
        (loss.value().item().unwrap(), grads)
    };
    let (l32, g32) = run(false);
    let (l16, g16) = run(true);
    let dg = g16.iter().zip(&g32).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    ((l16 - l32).abs() / l32.abs(), dg / g32.iter().map(|b| b * b).sum::<f64>().sqrt())
}

/// Both models agree with their f32 runs within the autocast dtype's precision, and the
/// disagreement shrinks with the mantissa: f16 (11 bits) lands several times closer than
/// bf16 (8 bits), as rounding error does and a wrong gradient rule would not. (The tiny
/// ResNet's batch norm, over 4 samples of 8×8, amplifies the rounding of its bf16
/// convolution gradients to about 13%; the ViT's gradients differ by about 1%.)
#[test]
fn resnet_and_vit_train_under_autocast_close_to_f32() {
    let targets = Tensor::from_vec(vec![0i64, 1, 1, 0], &[4]).unwrap();
    let cfg = ResNetConfig {
        depths: vec![1, 1],
        widths: vec![4, 8],
        stem_width: 4,
        in_channels: 1,
        num_classes: Some(2),
        ..ResNetConfig::narrow()
    };
    let net = ResNet::new(&cfg, &mut Generator::new(1)).unwrap();
    let cfg = VitConfig { num_classes: Some(2), depth: 2, ..VitConfig::tiny(8, 4).with_in_channels(1) };
    let vit = VisionTransformer::new(&cfg, &mut Generator::new(3)).unwrap();
    // (model, input, bf16 gradient tolerance)
    let cases: [(&str, &dyn Module, Tensor, f64); 2] =
        [("ResNet", &net, randn(2, &[4, 1, 8, 8]), 0.2), ("ViT", &vit, randn(4, &[4, 1, 8, 8]), 0.03)];
    for (name, model, x, grad_tol) in cases {
        let (lb, gb) = mixed_vs_f32(model, &x, &targets, DType::BF16);
        let (lh, gh) = mixed_vs_f32(model, &x, &targets, DType::F16);
        assert!(lb < 0.01 && lh < 0.01, "{name}: loss off by {lb:.5} (bf16), {lh:.5} (f16)");
        assert!(gb < grad_tol, "{name}: bf16 gradients off by {gb:.4}");
        assert!(gh < gb / 4.0, "{name}: f16 gradients off by {gh:.4}, not well below bf16's {gb:.4}");
    }
}
