//! Masked image modelling by naive references and known answers: MAE's and SimMIM's losses
//! written out as loops, the masks (exact ratio per sample, kept/restore round trip), the
//! decoder's shape and its unshuffling, and both methods' pictures.

use tessera::autograd::Var;
use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::data::tasks::masking::mae_keep_count;
use tessera::ssl::data::tasks::{mae_mask_batch, SimMimMasker};
use tessera::ssl::methods::{build_default, kept_and_restore, mae_loss, simmim_loss, StepContext, TrainBatch};
use tessera::ssl::nn::{EncoderSpec, MaeDecoder, MaeDecoderConfig, Pool};

fn normal(shape: &[usize], seed: u64) -> Tensor {
    Generator::new(seed).normal(shape, 0.0, 1.0, DType::F64).unwrap()
}

/// MAE's loss as loops: patch (i, j) of image n, pixel (y, x), channel c at column
/// `(y·p + x)·C + c` of row `i·(W/p) + j`.
fn naive_mae(img: &[f64], [n, c, h, w]: [usize; 4], pred: &[f64], mask: &[f64], p: usize, norm: bool) -> f64 {
    let (gw, l, d) = (w / p, (h / p) * (w / p), p * p * c);
    let (mut num, mut den) = (0.0, 0.0);
    for b in 0..n {
        for patch in 0..l {
            let (i, j) = (patch / gw, patch % gw);
            let mut t = Vec::with_capacity(d);
            for y in 0..p {
                for x in 0..p {
                    for ch in 0..c {
                        t.push(img[((b * c + ch) * h + i * p + y) * w + j * p + x]);
                    }
                }
            }
            if norm {
                let mean = t.iter().sum::<f64>() / d as f64;
                let var = t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (d as f64 - 1.0);
                t.iter_mut().for_each(|v| *v = (*v - mean) / (var + 1e-6).sqrt());
            }
            let row = &pred[(b * l + patch) * d..][..d];
            let mse = row.iter().zip(&t).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / d as f64;
            num += mse * mask[b * l + patch];
            den += mask[b * l + patch];
        }
    }
    num / den
}

#[test]
fn mae_loss_matches_a_naive_reference_with_and_without_normalized_targets() {
    let (shape, p) = ([2, 3, 4, 6], 2);
    let (l, d) = (6, p * p * 3);
    let img = normal(&shape, 1);
    let pred = normal(&[2, l, d], 2);
    let mask: Vec<f64> = vec![1., 0., 1., 1., 0., 0., 0., 1., 1., 0., 1., 0.];
    let m = Tensor::from_vec(mask.clone(), &[2, l]).unwrap();
    for norm in [false, true] {
        let got = mae_loss(&Var::constant(img.clone()), &Var::constant(pred.clone()), &m, p, norm).unwrap().value().item().unwrap();
        let want = naive_mae(&img.to_vec::<f64>().unwrap(), shape, &pred.to_vec::<f64>().unwrap(), &mask, p, norm);
        assert!((got - want).abs() < 1e-12, "norm {norm}: {got} vs {want}");
    }
    let err = mae_loss(&Var::constant(img), &Var::constant(normal(&[2, l, d + 1], 3)), &m, p, true).unwrap_err().to_string();
    assert!(err.contains("mae_loss") && err.contains("[2, 6, 13]") && err.contains("[2, 6, 12]"), "{err}");
}

#[test]
fn simmim_loss_matches_a_naive_reference() {
    let (n, c, h, w) = (2, 3, 4, 4);
    let (x, r) = (normal(&[n, c, h, w], 4), normal(&[n, c, h, w], 5));
    let mask: Vec<f64> = (0..n * h * w).map(|i| ((i * 7) % 3 == 0) as u8 as f64).collect();
    let m = Tensor::from_vec(mask.clone(), &[n, 1, h, w]).unwrap();
    let got = simmim_loss(&Var::constant(x.clone()), &Var::constant(r.clone()), &m).unwrap().value().item().unwrap();
    let (xv, rv) = (x.to_vec::<f64>().unwrap(), r.to_vec::<f64>().unwrap());
    let mut sum = 0.0;
    for b in 0..n {
        for ch in 0..c {
            for px in 0..h * w {
                let i = (b * c + ch) * h * w + px;
                sum += (xv[i] - rv[i]).abs() * mask[b * h * w + px];
            }
        }
    }
    let want = sum / (mask.iter().sum::<f64>() + 1e-5) / c as f64;
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

#[test]
fn mae_masks_hide_exactly_the_ratio_of_every_sample_and_restore_round_trips() {
    let (b, l, ratio) = (16, 49, 0.75);
    let m = mae_mask_batch(b, l, ratio, &Generator::new(7)).unwrap();
    let keep = mae_keep_count(l, ratio);
    assert_eq!(keep, 12);
    for row in m.mask.chunks(l) {
        assert_eq!(row.iter().filter(|&&v| v == 0.0).count(), keep);
    }
    let mask = Tensor::from_vec(m.mask.iter().map(|&v| v as u8).collect(), &[b, l]).unwrap();
    let (kept, restore) = kept_and_restore(&mask).unwrap();
    let (kept, restore) = (kept.to_vec::<i64>().unwrap(), restore.to_vec::<i64>().unwrap());
    for s in 0..b {
        // The kept patches are the unmasked ones, and restore puts every patch back in place:
        // gathering "kept, then masked" by restore gives 0..L.
        let row = &m.mask[s * l..][..l];
        let k = &kept[s * keep..][..keep];
        assert!(k.iter().all(|&i| row[i as usize] == 0.0));
        let masked: Vec<i64> = (0..l as i64).filter(|&i| row[i as usize] == 1.0).collect();
        let shuffled: Vec<i64> = k.iter().copied().chain(masked).collect();
        let back: Vec<i64> = restore[s * l..][..l].iter().map(|&r| shuffled[r as usize]).collect();
        assert_eq!(back, (0..l as i64).collect::<Vec<_>>());
    }
}

#[test]
fn simmim_masks_are_blocks_of_the_configured_ratio() {
    let masker = SimMimMasker::new((32, 32), 8, 4, 0.6).unwrap();
    assert_eq!(masker.model_grid(), (8, 8));
    let masks = masker.sample_batch(4, &Generator::new(3));
    for m in masks.chunks(64) {
        assert_eq!(m.iter().filter(|&&v| v == 1.0).count(), masker.masked_cells() * 4);
        // Every 2×2 block of patches is all masked or all visible.
        for (i, j) in (0..4).flat_map(|i| (0..4).map(move |j| (i, j))) {
            let cell: Vec<f32> = (0..4).map(|k| m[(2 * i + k / 2) * 8 + 2 * j + k % 2]).collect();
            assert!(cell.iter().all(|&v| v == cell[0]));
        }
    }
    assert!(SimMimMasker::new((28, 28), 8, 4, 0.6).is_err(), "an 8-px block does not tile 28 px");
}

#[test]
fn the_decoder_predicts_every_patch_and_puts_tokens_back_in_place() {
    let cfg = MaeDecoderConfig { encoder_dim: 8, dim: 8, depth: 1, num_heads: 2, grid: 2, patch_values: 12 };
    let dec = MaeDecoder::new(&cfg, &mut Generator::new(1)).unwrap();
    let latent = Var::constant(normal(&[3, 1 + 2, 8], 2).to_dtype(DType::F32).unwrap());
    let mask = Tensor::from_vec(vec![1u8, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1], &[3, 4]).unwrap();
    let (_, restore) = kept_and_restore(&mask).unwrap();
    let out = dec.forward_masked(&latent, &restore).unwrap();
    assert_eq!(out.shape(), [3, 4, 12]);
    // Swapping which patches are kept moves the kept tokens' predictions with them: the
    // decoder sees positions, so a sample's output depends on where its tokens go.
    let other = Tensor::from_vec(vec![0u8, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1], &[3, 4]).unwrap();
    let (_, restore2) = kept_and_restore(&other).unwrap();
    let out2 = dec.forward_masked(&latent, &restore2).unwrap().value().to_vec::<f32>().unwrap();
    let out = out.value().to_vec::<f32>().unwrap();
    assert_ne!(out[..48], out2[..48]);
    assert_eq!(out[48..], out2[48..], "samples 1 and 2 kept the same patches");
    let bad = dec.forward_masked(&latent, &Tensor::zeros(&[3, 5], DType::I64).unwrap()).unwrap_err().to_string();
    assert!(bad.contains("MaeDecoder") && bad.contains("[3, 5]"), "{bad}");
}

fn tiny_vit() -> EncoderSpec {
    EncoderSpec { name: "vit-tiny".into(), channels: 1, side: 28, patch_size: 7, pool: Pool::Mean }
}

#[test]
fn both_methods_train_a_step_and_draw_their_reconstructions() {
    for name in ["mae", "simmim"] {
        let method = build_default(name, &tiny_vit(), 4, 0).unwrap();
        let recipe = method.data_recipe();
        let images = Generator::new(1).uniform(&[4, 1, 28, 28], 0.0, 1.0, DType::F32).unwrap();
        let batch = TrainBatch {
            views: vec![images.clone()],
            targets: None,
            mask: None,
            tokens: None,
            labels: Tensor::zeros(&[4], DType::I64).unwrap(),
            indices: (0..4).collect(),
        };
        let batch = recipe.task.as_ref().unwrap().apply(batch, &Generator::new(2)).unwrap();
        assert_eq!(batch.mask.as_ref().unwrap().shape(), [4, 16]);
        let out = method.training_step(&batch, &StepContext { step: 0, total_steps: 1 }).unwrap();
        assert!(out.loss.value().item().unwrap().is_finite());
        assert_eq!(out.features.shape(), [4, 192]);
        out.loss.backward().unwrap();
        let grid = method.visualize(&images, (0.5, 0.25)).unwrap().expect("a picture");
        assert_eq!(grid.titles(), ["original", "masked input", "reconstruction", "reconstruction + visible"]);
        let img = grid.render().unwrap();
        assert!(img.height() > 4 * 28 && img.width() > 4 * 28, "{name}: {:?}", img.shape());
    }
    let cnn = EncoderSpec { name: "resnet-narrow".into(), ..tiny_vit() };
    let err = build_default("mae", &cnn, 4, 0).err().unwrap();
    assert!(err.contains("mae needs a Vision Transformer") && err.contains("resnet-narrow"), "{err}");
}

/// SimMIM's `init` option: `xavier` (the default, MAE's init) draws the encoder's matrices
/// about 2.5× wider than `timm` (std 0.02); anything else is refused by name.
#[test]
fn simmim_init_option_picks_the_encoder_init() {
    let info = tessera::ssl::methods::find("simmim").unwrap();
    let ctx = tessera::ssl::methods::OptionsContext { encoder: "vit-tiny", batch_size: 4 };
    let qkv_std = |init: &str| {
        let table: toml::Table = toml::from_str(&format!("init = \"{init}\"")).unwrap();
        let options = (info.resolve)(&table, &ctx).unwrap();
        let build =
            tessera::ssl::methods::BuildContext { options: &options, encoder: &tiny_vit(), train: None, seed: 0, batch_size: 4, run: None };
        let method = (info.build)(&build).unwrap();
        let w = method.state_dict().into_iter().find(|(n, _)| n.ends_with("blocks.0.attn.qkv.weight")).unwrap().1;
        let v = w.to_vec_f64().unwrap();
        (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
    };
    let (xavier, timm) = (qkv_std("xavier"), qkv_std("timm"));
    // Xavier-uniform on the fused [576, 192] matrix: std √(6 / 768) / √3 ≈ 0.051.
    assert!((xavier - 0.051).abs() < 0.003, "xavier std {xavier}");
    assert!((timm - 0.02).abs() < 0.002, "timm std {timm}");
    let bad: toml::Table = toml::from_str("init = \"he\"").unwrap();
    let err = (info.resolve)(&bad, &ctx).unwrap_err();
    assert!(err.contains("init") && err.contains("he"), "{err}");
}
