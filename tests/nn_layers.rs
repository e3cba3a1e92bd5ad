//! Layers and encoders of `tessera::ssl::nn`: gradient checks in f64 of every layer with
//! parameters (through `tessera::autograd::gradcheck`, with the layer running on the
//! checker's leaves), BatchNorm's running statistics and modes, torchvision's names and
//! parameter counts, freezing.

use tessera::autograd::{gradcheck, Var};
use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::nn::functional::batch_norm_eval;
use tessera::ssl::nn::{
    ghost_batch_norm, Activation, BatchNorm, Conv2d, Conv2dConfig, Encoder, Entry, Linear, Module, ProjectionHead, ResNet, ResNetConfig,
    Sequential, Stem,
};

/// Gradient-checks `m` at input `x` with respect to the input and every parameter, in f64.
fn check_module(m: &dyn Module, x: Tensor) {
    m.to_dtype(DType::F64).unwrap();
    let mut inputs = vec![x];
    inputs.extend(m.named_parameters().into_iter().map(|(_, v)| v.value()));
    let f = |vars: &[Var]| {
        let mut i = 1;
        m.visit("", &mut |_, e| {
            if let Entry::Param(p) = e {
                p.set_var(vars[i].clone()).unwrap();
                i += 1;
            }
        });
        m.forward(&vars[0])
    };
    gradcheck(f, &inputs, 1e-6, 1e-6, 1e-4).unwrap();
}

fn randn(gen: &mut Generator, shape: &[usize]) -> Tensor {
    gen.normal(shape, 0.0, 1.0, DType::F64).unwrap()
}

#[test]
fn linear_gradcheck_2d_and_3d_inputs() {
    let mut g = Generator::new(1);
    let lin = Linear::new(3, 4, true, &mut g).unwrap();
    check_module(&lin, randn(&mut g, &[2, 3]));
    check_module(&lin, randn(&mut g, &[2, 5, 3]));
    let no_bias = Linear::new(3, 2, false, &mut g).unwrap();
    check_module(&no_bias, randn(&mut g, &[4, 3]));
    assert_eq!(no_bias.named_parameters().len(), 1);
}

#[test]
fn conv2d_gradcheck() {
    let mut g = Generator::new(2);
    let conv = Conv2d::new(Conv2dConfig::new(2, 3, 3).stride(2).padding(1), &mut g).unwrap();
    check_module(&conv, randn(&mut g, &[2, 2, 5, 5]));
}

#[test]
fn batchnorm_gradcheck_train_and_eval() {
    let mut g = Generator::new(3);
    let bn2 = BatchNorm::new_2d(2).unwrap();
    bn2.weight.as_ref().unwrap().var().set_value(randn(&mut g, &[2]).to_dtype(DType::F32).unwrap()).unwrap();
    check_module(&bn2, randn(&mut g, &[3, 2, 2, 3]));
    bn2.set_training(false);
    check_module(&bn2, randn(&mut g, &[3, 2, 2, 3]));
    let bn1 = BatchNorm::new_1d(3).unwrap();
    check_module(&bn1, randn(&mut g, &[4, 3]));
    bn1.set_training(false);
    check_module(&bn1, randn(&mut g, &[4, 3, 2]));
}

#[test]
fn functional_ops_gradcheck() {
    let mut g = Generator::new(4);
    let (a, b) = (randn(&mut g, &[2, 1, 3]), randn(&mut g, &[2, 4, 3]));
    gradcheck(|v| Var::cat(&[&v[0], &v[1]], 1), &[a, b], 1e-6, 1e-6, 1e-4).unwrap();
    let (mean, var) = (randn(&mut g, &[3]), g.uniform(&[3], 0.5, 2.0, DType::F64).unwrap());
    let inputs = [randn(&mut g, &[2, 3, 2, 2]), randn(&mut g, &[3]), randn(&mut g, &[3])];
    gradcheck(|v| batch_norm_eval(&v[0], &mean, &var, Some(&v[1]), Some(&v[2]), 1e-5), &inputs, 1e-6, 1e-6, 1e-4).unwrap();
}

fn tiny_resnet_config() -> ResNetConfig {
    ResNetConfig { depths: vec![1, 1], widths: vec![2, 3], stem_width: 2, in_channels: 1, num_classes: Some(2), ..ResNetConfig::narrow() }
}

#[test]
fn resnet_gradcheck_basic_and_bottleneck() {
    let mut g = Generator::new(5);
    let net = ResNet::new(&tiny_resnet_config(), &mut g).unwrap();
    check_module(&net, randn(&mut g, &[2, 1, 5, 5]));
    let cfg =
        ResNetConfig { block: tessera::ssl::nn::BlockKind::Bottleneck, depths: vec![1, 1], widths: vec![1, 2], ..tiny_resnet_config() };
    let net = ResNet::new(&cfg, &mut g).unwrap();
    check_module(&net, randn(&mut g, &[2, 1, 4, 4]));
}

#[test]
fn projection_head_gradcheck_and_names() {
    let mut g = Generator::new(6);
    let head = ProjectionHead::new(3, 4, 2, 2, true, &mut g).unwrap();
    let names: Vec<String> = head.state_dict().into_iter().map(|(n, _)| n).collect();
    let want = [
        "0.weight",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "3.weight",
        "4.running_mean",
        "4.running_var",
        "4.num_batches_tracked",
    ];
    assert_eq!(names, want);
    check_module(&head, randn(&mut g, &[4, 3]));
}

#[test]
fn batchnorm_running_stats_follow_pytorch() {
    let bn = BatchNorm::new_2d(2).unwrap();
    let x = Tensor::from_vec((0..16).map(|i| (i * i) as f32 * 0.1).collect::<Vec<f32>>(), &[2, 2, 2, 2]).unwrap();
    bn.forward(&Var::constant(x.clone())).unwrap();
    let v = x.to_vec::<f32>().unwrap();
    for c in 0..2 {
        let vals: Vec<f64> = (0..2).flat_map(|n| (0..4).map(move |s| (n, s))).map(|(n, s)| v[n * 8 + c * 4 + s] as f64).collect();
        let mean = vals.iter().sum::<f64>() / 8.0;
        let unbiased = vals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 7.0;
        let rm = bn.running_mean.get().to_vec_f64().unwrap()[c];
        let rv = bn.running_var.get().to_vec_f64().unwrap()[c];
        assert!((rm - 0.1 * mean).abs() < 1e-5, "running_mean {rm} vs {}", 0.1 * mean);
        assert!((rv - (0.9 + 0.1 * unbiased)).abs() < 1e-4, "running_var {rv} vs {}", 0.9 + 0.1 * unbiased);
    }
    assert_eq!(bn.num_batches_tracked.get().to_vec::<i64>().unwrap(), vec![1]);
    assert_eq!(bn.num_batches_tracked.get().dtype(), DType::I64);
    // Eval mode normalizes with the running statistics and leaves them alone.
    bn.set_training(false);
    let y = bn.forward(&Var::constant(x.clone())).unwrap().value().to_vec_f64().unwrap();
    let (rm, rv) = (bn.running_mean.get().to_vec_f64().unwrap(), bn.running_var.get().to_vec_f64().unwrap());
    let expect = (v[5] as f64 - rm[1]) / (rv[1] + 1e-5).sqrt();
    assert!((y[5] - expect).abs() < 1e-5);
    assert_eq!(bn.num_batches_tracked.get().to_vec::<i64>().unwrap(), vec![1]);
    // One value per channel in training mode is an error, not a panic.
    bn.set_training(true);
    assert!(bn.forward(&Var::constant(Tensor::zeros(&[1, 2, 1, 1], DType::F32).unwrap())).is_err());
    assert!(bn.forward(&Var::constant(Tensor::zeros(&[2, 3, 1, 1], DType::F32).unwrap())).is_err());
}

#[test]
fn resnet18_matches_torchvision_names_and_counts() {
    let mut g = Generator::new(7);
    let net = ResNet::new(&ResNetConfig::resnet18(), &mut g).unwrap();
    assert_eq!(net.num_parameters(), 11_689_512);
    let names: Vec<String> = net.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 122);
    for n in [
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.num_batches_tracked",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.iter().any(|m| m == n), "{n} missing");
    }
    let net = ResNet::new(&ResNetConfig::resnet50().with_classes(None), &mut g).unwrap();
    assert_eq!(net.num_parameters(), 25_557_032 - 2048 * 1000 - 1000);
    assert_eq!(net.feature_dim(), 2048);
}

#[test]
fn narrow_resnet_gives_128_features() {
    let mut g = Generator::new(8);
    let net = ResNet::new(&ResNetConfig::narrow(), &mut g).unwrap();
    assert_eq!(net.feature_dim(), 128);
    let x = g.normal(&[2, 1, 28, 28], 0.0, 1.0, DType::F32).unwrap();
    let y = net.forward(&Var::constant(x)).unwrap();
    assert_eq!(y.shape(), vec![2, 128]);
    assert!(!net.named_parameters().iter().any(|(n, _)| n.starts_with("fc")));
    let boxed: Box<dyn Encoder> = Box::new(net);
    assert_eq!(boxed.output_dim(), 128);
    let cifar = ResNet::new(&ResNetConfig::resnet18().with_stem(Stem::Cifar).with_classes(Some(10)), &mut g).unwrap();
    assert_eq!(cifar.forward(&Var::constant(Tensor::zeros(&[2, 3, 8, 8], DType::F32).unwrap())).unwrap().shape(), vec![2, 10]);
}

#[test]
fn freezing_stops_gradients_and_modes_propagate() {
    let mut g = Generator::new(9);
    let encoder = ResNet::new(&tiny_resnet_config().with_classes(None), &mut g).unwrap();
    let head = Linear::new(3, 2, true, &mut g).unwrap();
    encoder.freeze();
    encoder.set_training(false);
    assert!(!encoder.is_training());
    assert!(encoder.trainable_parameters().is_empty());
    let x = Var::constant(g.normal(&[2, 1, 5, 5], 0.0, 1.0, DType::F32).unwrap());
    let loss = head.forward(&encoder.forward(&x).unwrap()).unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    assert!(encoder.parameters().iter().all(|p| p.grad().is_none()));
    assert!(head.parameters().iter().all(|p| p.grad().is_some()));
    encoder.unfreeze();
    assert_eq!(encoder.trainable_parameters().len(), encoder.parameters().len());
    let seq = Sequential::new().push(BatchNorm::new_1d(2).unwrap()).push(Activation::Relu);
    assert!(seq.is_training());
    seq.set_training(false);
    assert!(!seq.is_training());
}

mod transformer {
    use super::*;
    use tessera::ssl::nn::{Attention, Dropout, Embedding, LayerNorm, Pool, PosEmbed, TransformerBlock, VisionTransformer, VitConfig};

    #[test]
    fn layer_norm_attention_and_block_gradcheck() {
        let mut g = Generator::new(10);
        let ln = LayerNorm::new(4, 1e-5).unwrap();
        ln.weight.var().set_value(g.uniform(&[4], 0.5, 1.5, DType::F32).unwrap()).unwrap();
        check_module(&ln, randn(&mut g, &[2, 3, 4]));
        let mut attn = Attention::new(4, 2, true, &mut g).unwrap();
        check_module(&attn, randn(&mut g, &[2, 3, 4]));
        attn.causal = true;
        check_module(&attn, randn(&mut g, &[2, 3, 4]));
        let block = TransformerBlock::new(4, 2, 2.0, true, &mut g).unwrap();
        check_module(&block, randn(&mut g, &[2, 3, 4]));
        // Layer scale: gains drawn away from their init so a wrong gradient cannot hide.
        let block = TransformerBlock::new(4, 2, 2.0, true, &mut g).unwrap().with_layer_scale(0.1).unwrap();
        for gain in block.layer_scale.as_ref().unwrap() {
            gain.var().set_value(g.uniform(&[4], 0.2, 1.5, DType::F32).unwrap()).unwrap();
        }
        check_module(&block, randn(&mut g, &[2, 3, 4]));
    }

    /// Layer scale multiplies each branch by its gains: gains of 1 give the plain block's
    /// output exactly, gains of 0 the identity; the gains are saved as timm names them.
    #[test]
    fn layer_scale_scales_each_branch() {
        let block = |scale: Option<f64>| {
            let b = TransformerBlock::new(4, 2, 2.0, true, &mut Generator::new(14)).unwrap();
            match scale {
                Some(s) => b.with_layer_scale(s).unwrap(),
                None => b,
            }
        };
        let x = Var::constant(Generator::new(15).normal(&[2, 3, 4], 0.0, 1.0, DType::F32).unwrap());
        let out = |b: &TransformerBlock| b.forward(&x).unwrap().value().to_vec::<f32>().unwrap();
        assert_eq!(out(&block(Some(1.0))), out(&block(None)));
        assert_eq!(out(&block(Some(0.0))), x.value().to_vec::<f32>().unwrap());
        let cfg = VitConfig { layer_scale: Some(0.1), ..tiny_vit(PosEmbed::Learned, Pool::Mean) };
        let vit = VisionTransformer::new(&cfg, &mut Generator::new(16)).unwrap();
        let state = vit.state_dict();
        let gain = state.iter().find(|(n, _)| n == "blocks.0.ls2.gamma").expect("blocks.0.ls2.gamma saved");
        assert_eq!(gain.1.to_vec::<f32>().unwrap(), vec![0.1; 4]);
        assert!(state.iter().any(|(n, _)| n == "blocks.0.ls1.gamma"));
        let bad = VitConfig { layer_scale: Some(f64::NAN), ..cfg };
        assert!(VisionTransformer::new(&bad, &mut Generator::new(16)).err().unwrap().to_string().contains("finite layer scale"));
    }

    fn tiny_vit(pos: PosEmbed, pool: Pool) -> VitConfig {
        VitConfig {
            img_size: 4,
            patch_size: 2,
            in_channels: 1,
            embed_dim: 4,
            depth: 1,
            num_heads: 2,
            mlp_ratio: 2.0,
            qkv_bias: true,
            pos_embed: pos,
            pool,
            layer_scale: None,
            num_classes: Some(2),
        }
    }

    #[test]
    fn vit_gradcheck() {
        let mut g = Generator::new(11);
        let vit = VisionTransformer::new(&tiny_vit(PosEmbed::Learned, Pool::Token), &mut g).unwrap();
        check_module(&vit, randn(&mut g, &[2, 1, 4, 4]));
        let vit = VisionTransformer::new(&tiny_vit(PosEmbed::SinCos, Pool::Mean), &mut g).unwrap();
        check_module(&vit, randn(&mut g, &[2, 1, 4, 4]));
    }

    /// Mean pooling is timm's `avg`: the mean of the tokens, then the norm (not the mean of
    /// normalized tokens). With no blocks the tokens are the embedded patches themselves.
    #[test]
    fn vit_mean_pool_normalizes_the_mean_of_the_tokens() {
        let mut g = Generator::new(13);
        let cfg = VitConfig { depth: 0, num_classes: None, ..tiny_vit(PosEmbed::SinCos, Pool::Mean) };
        let vit = VisionTransformer::new(&cfg, &mut g).unwrap();
        let x = Var::constant(g.normal(&[2, 1, 4, 4], 0.0, 1.0, DType::F32).unwrap());
        let mean = vit.embed_patches(&x).unwrap().value().mean(&[1], false).unwrap();
        // The norm at its initialization (weight 1, bias 0, eps 1e-6).
        let centred = mean.sub(&mean.mean(&[-1], true).unwrap()).unwrap();
        let std = centred.square().unwrap().mean(&[-1], true).unwrap().add_scalar(1e-6).unwrap().sqrt().unwrap();
        let want = centred.div(&std).unwrap().to_vec::<f32>().unwrap();
        let got = vit.forward(&x).unwrap().value().to_vec::<f32>().unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn vit_names_token_subsets_and_masking() {
        let mut g = Generator::new(12);
        let vit = VisionTransformer::new(&VitConfig::tiny(28, 4).with_in_channels(1), &mut g).unwrap();
        // timm's vit_tiny_patch16_224 has 5,717,416 with its 3-channel 16×16 patches, 197 positions and 1000-class head.
        assert_eq!(vit.num_parameters(), 5_351_808);
        let names: Vec<String> = vit.state_dict().into_iter().map(|(n, _)| n).collect();
        for n in [
            "cls_token",
            "pos_embed",
            "patch_embed.proj.weight",
            "blocks.0.norm1.weight",
            "blocks.0.attn.qkv.weight",
            "blocks.11.mlp.fc2.bias",
            "norm.bias",
        ] {
            assert!(names.iter().any(|m| m == n), "{n} missing");
        }
        let sincos = VisionTransformer::new(&tiny_vit(PosEmbed::SinCos, Pool::Token), &mut g).unwrap();
        assert!(sincos.named_buffers().iter().any(|(n, t)| n == "pos_embed" && t.shape() == [1, 5, 4]));
        let x = Var::constant(g.normal(&[2, 1, 4, 4], 0.0, 1.0, DType::F32).unwrap());
        let keep = Tensor::from_vec(vec![3i64, 0, 1, 2], &[2, 2]).unwrap();
        assert_eq!(sincos.forward_tokens(&x, Some(&keep)).unwrap().shape(), vec![2, 3, 4]);
        let shared = Tensor::from_vec(vec![1i64], &[1]).unwrap();
        assert_eq!(sincos.forward_tokens(&x, Some(&shared)).unwrap().shape(), vec![2, 2, 4]);
        assert!(sincos.forward_tokens(&x, Some(&Tensor::from_vec(vec![9i64], &[1]).unwrap())).is_err());
        // Masking every patch with a token makes the result independent of the image.
        let token = Var::param(g.normal(&[1, 1, 4], 0.0, 1.0, DType::F32).unwrap()).unwrap();
        let all = Tensor::ones(&[2, 4], DType::U8).unwrap();
        let a = sincos.forward_tokens_masked(&x, &all, &token).unwrap().value().to_vec::<f32>().unwrap();
        let other = Var::constant(g.normal(&[2, 1, 4, 4], 0.0, 1.0, DType::F32).unwrap());
        let b = sincos.forward_tokens_masked(&other, &all, &token).unwrap().value().to_vec::<f32>().unwrap();
        assert_eq!(a, b);
        assert!(sincos.forward(&Var::constant(Tensor::zeros(&[2, 1, 5, 5], DType::F32).unwrap())).is_err());
    }

    #[test]
    fn embedding_gradcheck_and_dropout_modes() {
        let mut g = Generator::new(13);
        let emb = Embedding::new(5, 3, &mut g).unwrap();
        emb.to_dtype(DType::F64).unwrap();
        let idx = Tensor::from_vec(vec![4i64, 0, 4, 2], &[2, 2]).unwrap();
        let w = emb.weight.value();
        gradcheck(
            |v| {
                emb.weight.set_var(v[0].clone()).unwrap();
                emb.lookup(&idx)
            },
            &[w],
            1e-6,
            1e-6,
            1e-4,
        )
        .unwrap();
        let drop = Dropout::new(0.5, &mut g).unwrap();
        let x = Var::constant(Tensor::ones(&[1000], DType::F32).unwrap());
        let y = drop.forward(&x).unwrap().value().to_vec::<f32>().unwrap();
        assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
        let kept = y.iter().filter(|&&v| v == 2.0).count();
        assert!((400..600).contains(&kept), "{kept} of 1000 kept");
        drop.set_training(false);
        assert_eq!(drop.forward(&x).unwrap().value().to_vec::<f32>().unwrap(), vec![1.0; 1000]);
        assert!(Dropout::new(1.0, &mut g).is_err());
    }
}

/// A model converted with `to_dtype(BF16)` (or F16) trains as PyTorch's
/// `model.to(torch.bfloat16)` does: every op computes in f32 and rounds its result, and the
/// optimizer updates in f32 and rounds once (as PyTorch's fused AdamW). The forward, the
/// gradients and one AdamW step stay within the dtype's precision of the f32 model's; f16,
/// with 3 more mantissa bits, lands closer than bf16.
#[test]
fn resnet_trains_in_bf16_and_f16_close_to_f32() {
    use tessera::ssl::nn::{AdamW, Optim, Optimizer, ParamGroup};
    let x = randn(&mut Generator::new(9), &[4, 1, 6, 6]);
    let run = |dtype: DType| {
        let net = ResNet::new(&tiny_resnet_config(), &mut Generator::new(3)).unwrap();
        net.to_dtype(dtype).unwrap();
        let y = net.forward(&Var::constant(x.to_dtype(dtype).unwrap())).unwrap();
        y.square().unwrap().sum_all().unwrap().backward().unwrap();
        let grads: Vec<Tensor> = net.parameters().iter().map(|p| p.grad().unwrap()).collect();
        let mut opt = Optimizer::new(AdamW::default(), vec![ParamGroup::new(net.named_parameters(), 1e-2, 0.0)]).unwrap();
        opt.step().unwrap();
        let after: Vec<Tensor> = net.parameters().iter().map(|p| p.value()).collect();
        (y.value(), grads, after)
    };
    let flat = |ts: &[Tensor]| ts.iter().flat_map(|t| t.to_vec_f64().unwrap()).collect::<Vec<f64>>();
    // Largest |a - b| over the largest |b|; and ‖a - b‖ / ‖b‖.
    let max_rel =
        |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / b.iter().fold(0f64, |m, v| m.max(v.abs()));
    let norm_rel =
        |a: &[f64], b: &[f64]| (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / b.iter().map(|y| y * y).sum::<f64>()).sqrt();
    let (y32, g32, p32) = run(DType::F32);
    let (y32, g32, p32) = (flat(&[y32]), flat(&g32), flat(&p32));
    // (dtype, output and parameter tolerance, gradient tolerance)
    for (dtype, tol, grad_tol) in [(DType::BF16, 0.03, 0.08), (DType::F16, 0.005, 0.01)] {
        let (y, g, p) = run(dtype);
        assert_eq!(y.dtype(), dtype);
        assert!(g.iter().chain(&p).all(|t| t.dtype() == dtype), "{dtype:?}: gradients and parameters keep the dtype");
        let (y, g, p) = (flat(&[y]), flat(&g), flat(&p));
        assert!(p.iter().all(|v| v.is_finite()), "{dtype:?}: the step left a non-finite parameter");
        let (ey, eg, ep) = (max_rel(&y, &y32), norm_rel(&g, &g32), max_rel(&p, &p32));
        assert!(ey <= tol && eg <= grad_tol && ep <= tol, "{dtype:?}: output {ey:.4}, gradients {eg:.4}, parameters {ep:.4}");
    }
}

/// Ghost batch norm (MoCo's shuffled BN on one device) gives the bits of running each slice
/// of the batch through the network on its own: the same outputs, the same running
/// statistics and batch counts; a batch that does not divide into the groups is normalized
/// whole, and eval mode ignores the groups.
#[test]
fn ghost_batch_norm_matches_slices_run_one_at_a_time() {
    let bits = |t: &Tensor| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let state = |m: &ResNet| m.state_dict().into_iter().map(|(k, t)| (k, t.to_vec_f64().unwrap())).collect::<Vec<_>>();
    let make = || ResNet::new(&ResNetConfig::narrow(), &mut Generator::new(7)).unwrap();
    let x = Generator::new(3).normal(&[12, 1, 28, 28], 0.0, 1.0, DType::F32).unwrap();
    let (sliced, ghost) = (make(), make());
    let parts: Vec<Tensor> = (0..4).map(|g| sliced.forward(&Var::constant(x.narrow(0, g * 3, 3).unwrap())).unwrap().value()).collect();
    let want = Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0).unwrap();
    let got = {
        let _ghost = ghost_batch_norm(4);
        ghost.forward(&Var::constant(x.clone())).unwrap().value()
    };
    assert_eq!(bits(&got), bits(&want), "outputs");
    assert_eq!(state(&ghost), state(&sliced), "running statistics");
    // 12 samples do not make 5 groups: the whole batch is normalized at once.
    let (plain, ragged) = (make(), make());
    let want = plain.forward(&Var::constant(x.clone())).unwrap().value();
    let got = {
        let _ghost = ghost_batch_norm(5);
        ragged.forward(&Var::constant(x.clone())).unwrap().value()
    };
    assert_eq!(bits(&got), bits(&want), "a batch the groups do not divide");
    // The guard restores the whole batch when it goes.
    let again = make();
    assert_eq!(bits(&again.forward(&Var::constant(x.clone())).unwrap().value()), bits(&want), "after the guard");
    // Eval mode normalizes with the running statistics, whatever the groups.
    ghost.set_training(false);
    let eval = ghost.forward(&Var::constant(x.clone())).unwrap().value();
    let _ghost = ghost_batch_norm(4);
    assert_eq!(bits(&ghost.forward(&Var::constant(x.clone())).unwrap().value()), bits(&eval), "eval mode");
    // Slices of one sample: batch norm over [1, C] is an error there as it is for one sample.
    let bn = BatchNorm::new_1d(3).unwrap();
    let _one = ghost_batch_norm(2);
    let err = bn.forward(&Var::constant(Tensor::zeros(&[2, 3], DType::F32).unwrap())).unwrap_err().to_string();
    assert!(err.contains("BatchNorm") && err.contains("more than 1 value per channel") && err.contains("[1, 3]"), "{err}");
}

/// Training-mode batch norm needs two values per channel: one sample of a `[N, C]` input, or
/// a `[1, C, 1, 1]` map, is refused with PyTorch's message naming the shape (not a NaN
/// variance); eval mode takes it, and so does one sample with a spatial extent.
#[test]
fn batch_norm_rejects_a_single_value_per_channel_in_training() {
    let zeros = |shape: &[usize]| Var::constant(Tensor::zeros(shape, DType::F32).unwrap());
    for (bn, shape) in [(BatchNorm::new_1d(3).unwrap(), vec![1, 3]), (BatchNorm::new_2d(3).unwrap(), vec![1, 3, 1, 1])] {
        let err = bn.forward(&zeros(&shape)).unwrap_err().to_string();
        let want = format!("expected more than 1 value per channel when training, got input of shape {shape:?}");
        assert!(err.contains("BatchNorm") && err.contains(&want), "{err}");
        bn.set_training(false);
        assert!(bn.forward(&zeros(&shape)).is_ok(), "eval mode, {shape:?}");
    }
    assert!(BatchNorm::new_2d(3).unwrap().forward(&zeros(&[1, 3, 2, 1])).is_ok(), "one sample, two positions");
}
