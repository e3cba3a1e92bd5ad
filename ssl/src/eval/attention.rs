//! Where a Vision Transformer looks: the class token's attention to the patches, per head,
//! and attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in
//! Transformers"): each layer's heads averaged, the identity added for the residual
//! connection and the rows renormalized, then the layers multiplied, last on the left. Both
//! read the attention probabilities a ViT reports (`VisionTransformer::attention_maps`),
//! `[B, H, L, L]` per layer with the class token at position 0.

use tessera_engine::{Device, Error, Result, Tensor};

/// The shape `[B, H, L, L]` of one layer's attention; an error names what is wrong.
fn attention_shape(layer: &Tensor) -> Result<[usize; 4]> {
    match *layer.shape() {
        [b, h, l, l2] if l == l2 && l >= 2 && h >= 1 => Ok([b, h, l, l2]),
        ref s => Err(Error::invalid("attention", format!("expects attention probabilities [B, H, L, L] with L ≥ 2, got {s:?}"))),
    }
}

/// The class token's attention to each patch, per head: `[B, H, L, L]` → `[B, H, L − 1]`
/// (row 0 without its first column, the class token's attention to itself).
pub fn class_token_attention(layer: &Tensor) -> Result<Tensor> {
    let [b, h, l, _] = attention_shape(layer)?;
    layer.narrow(2, 0, 1)?.narrow(3, 1, l - 1)?.contiguous()?.reshape_to(&[b, h, l - 1])
}

/// Attention rollout of `layers` (first layer first, each `[B, H, L, L]`): per image,
/// `R = Ã_n ⋯ Ã_1` with `Ã = rownorm(mean_heads(A) + I)`, as f64 `[B, L, L]`. Each row of R
/// sums to 1 when each layer's rows do; row 0 is how much of the class token's final state
/// flows from each input token.
pub fn attention_rollout(layers: &[Tensor]) -> Result<Tensor> {
    let Some(first) = layers.first() else {
        return Err(Error::invalid("attention_rollout", "needs at least one layer of attention"));
    };
    let [b, _, l, _] = attention_shape(first)?;
    let mut rollout: Vec<Vec<f64>> = (0..b).map(|_| identity(l)).collect();
    for layer in layers {
        let [lb, h, ll, _] = attention_shape(layer)?;
        if (lb, ll) != (b, l) {
            return Err(Error::shapes_hint(
                "attention_rollout",
                first.shape(),
                layer.shape(),
                "every layer must see the same images and tokens",
            ));
        }
        let values = layer.to_device(Device::Cpu)?.to_vec_f64()?;
        for (image, r) in rollout.iter_mut().enumerate() {
            let heads = &values[image * h * l * l..][..h * l * l];
            *r = matmul(&with_residual(heads, h, l), r, l);
        }
    }
    Tensor::from_vec(rollout.concat(), &[b, l, l])
}

fn identity(l: usize) -> Vec<f64> {
    (0..l * l).map(|i| if i / l == i % l { 1.0 } else { 0.0 }).collect()
}

/// `rownorm(mean over heads + I)` of one image's `[H, L, L]` attention.
fn with_residual(heads: &[f64], h: usize, l: usize) -> Vec<f64> {
    let mut a = identity(l);
    for head in heads.chunks(l * l) {
        for (x, p) in a.iter_mut().zip(head) {
            *x += p / h as f64;
        }
    }
    for row in a.chunks_mut(l) {
        let sum: f64 = row.iter().sum();
        if sum > 0.0 {
            row.iter_mut().for_each(|x| *x /= sum);
        }
    }
    a
}

/// `x · y` for square `l × l` matrices, row-major.
fn matmul(x: &[f64], y: &[f64], l: usize) -> Vec<f64> {
    let mut out = vec![0.0; l * l];
    for i in 0..l {
        for k in 0..l {
            let xik = x[i * l + k];
            for j in 0..l {
                out[i * l + j] += xik * y[k * l + j];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attention(values: Vec<f64>, shape: &[usize]) -> Tensor {
        Tensor::from_vec(values, shape).unwrap()
    }

    #[test]
    fn rollout_of_identity_attention_is_the_identity() {
        // Two images, two heads, three tokens, three layers: every token attends to itself.
        let one = identity(3);
        let layer = attention([one.clone(), one.clone(), one.clone(), one].concat(), &[2, 2, 3, 3]);
        let r = attention_rollout(&[layer.clone(), layer.clone(), layer]).unwrap();
        assert_eq!(r.shape(), [2, 3, 3]);
        assert_eq!(r.to_vec_f64().unwrap(), [identity(3), identity(3)].concat());
    }

    #[test]
    fn rollout_averages_heads_adds_the_residual_and_multiplies_layers() {
        // One image, two tokens. Layer 1: head 1 looks at token 1, head 2 at token 0 → the
        // mean is uniform (½ everywhere); with I and rows renormalized: [[¾, ¼], [¼, ¾]].
        let layer1 = attention(vec![0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0], &[1, 2, 2, 2]);
        let r1 = attention_rollout(std::slice::from_ref(&layer1)).unwrap().to_vec_f64().unwrap();
        assert_eq!(r1, [0.75, 0.25, 0.25, 0.75]);
        // Layer 2, one head, everything to token 0: Ã = [[1, 0], [½, ½]]; R = Ã₂ · Ã₁.
        let layer2 = attention(vec![1.0, 0.0, 1.0, 0.0], &[1, 1, 2, 2]);
        let r = attention_rollout(&[layer1, layer2]).unwrap().to_vec_f64().unwrap();
        assert_eq!(r, [0.75, 0.25, 0.5, 0.5]);
        for row in r.chunks(2) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn class_token_attention_is_row_zero_without_the_class_token() {
        let values: Vec<f64> = (0..2 * 3 * 3).map(|i| i as f64).collect();
        let per_head = class_token_attention(&attention(values, &[1, 2, 3, 3])).unwrap();
        assert_eq!(per_head.shape(), [1, 2, 2]);
        assert_eq!(per_head.to_vec_f64().unwrap(), [1.0, 2.0, 10.0, 11.0]);
    }

    #[test]
    fn a_vits_attention_rows_sum_to_one_and_its_rollout_rows_too() {
        use crate::nn::{Module, Pool, PosEmbed, VisionTransformer, VitConfig};
        let cfg = VitConfig {
            img_size: 8,
            patch_size: 4,
            in_channels: 1,
            embed_dim: 8,
            depth: 2,
            num_heads: 2,
            mlp_ratio: 2.0,
            qkv_bias: true,
            pos_embed: PosEmbed::Learned,
            pool: Pool::Token,
            layer_scale: None,
            num_classes: None,
        };
        let vit = VisionTransformer::new(&cfg, &mut tessera_engine::Generator::new(3)).unwrap();
        let images = tessera_engine::Generator::new(4).normal(&[3, 1, 8, 8], 0.0, 1.0, tessera_engine::DType::F32).unwrap();
        let maps = vit.attention_maps(&images).unwrap();
        assert_eq!(maps.len(), 2);
        for m in &maps {
            assert_eq!(m.shape(), [3, 2, 5, 5], "[B, H, 1 + 4 patches, 1 + 4 patches]");
            for row in m.to_vec_f64().unwrap().chunks(5) {
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{row:?}");
            }
        }
        for row in attention_rollout(&maps).unwrap().to_vec_f64().unwrap().chunks(5) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{row:?}");
        }
        assert_eq!(class_token_attention(&maps[1]).unwrap().shape(), [3, 2, 4]);
        // Found through a boxed `dyn Module`, as methods hold their encoders.
        let boxed: Box<dyn Module> = Box::new(vit);
        assert!(boxed.as_vision_transformer().is_some());
        assert!(crate::nn::Identity.as_vision_transformer().is_none());
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(attention_rollout(&[]).unwrap_err().to_string().contains("at least one layer"));
        let not_square = attention(vec![0.0; 6], &[1, 1, 2, 3]);
        assert!(class_token_attention(&not_square).unwrap_err().to_string().contains("[B, H, L, L]"));
        let (a, b) = (attention(vec![0.5; 4], &[1, 1, 2, 2]), attention(vec![0.25; 16], &[1, 1, 4, 4]));
        assert!(attention_rollout(&[a, b]).unwrap_err().to_string().contains("same images and tokens"));
    }
}
