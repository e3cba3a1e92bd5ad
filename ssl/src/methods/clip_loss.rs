//! CLIP's symmetric contrastive loss (Radford et al. 2021, Figure 3), gradient-checked in
//! `tests/ssl_gradcheck.rs` (the log scale included).

use tessera_autograd::{fused, Result, Var};
use tessera_engine::{DType, Error, Tensor};

/// The CLIP loss of `N` matching image–text pairs. `image [N, d]` and `text [N, d]` are the
/// projected features (L2-normalized here, rows of both sets must be paired: pair `i` is row
/// `i` of each); `log_scale` is the learnable scalar s (shape `[]` or `[1]`), the logits are
/// `exp(s) · îᵀ̂t` (`[N, N]`) and the loss is the mean of the image→text and text→image
/// cross-entropies toward the diagonal. The gradient reaches all three inputs. (The clamp
/// of s at ln 100 happens on the parameter after each step, not here.)
pub fn clip_loss(image: &Var, text: &Var, log_scale: &Var) -> Result<Var> {
    let (is, ts) = (image.shape(), text.shape());
    if is.len() != 2 || is[0] == 0 || ts != is {
        return Err(Error::shapes_hint("clip_loss", &is, &ts, "image and text features must both be [N, d] with N ≥ 1").into());
    }
    if log_scale.shape().iter().product::<usize>() != 1 {
        return Err(Error::invalid("clip_loss", format!("the log scale must hold one value, got shape {:?}", log_scale.shape())).into());
    }
    let logits = clip_logits(image, text, log_scale)?;
    let targets = Tensor::arange(0.0, is[0] as f64, 1.0, DType::I64)?.to_device(image.value().device())?;
    let image_to_text = fused::cross_entropy(&logits, &targets, 0.0)?;
    let text_to_image = fused::cross_entropy(&logits.t()?, &targets, 0.0)?;
    image_to_text.add(&text_to_image)?.mul_scalar(0.5)
}

/// `exp(s) · normalize(image) · normalize(text)ᵀ`, `[N_image, N_text]`.
pub fn clip_logits(image: &Var, text: &Var, log_scale: &Var) -> Result<Var> {
    let similarity = image.normalize(1, 1e-12)?.matmul(&text.normalize(1, 1e-12)?.t()?)?;
    similarity.mul(&log_scale.reshape_to(&[1, 1])?.exp()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_engine::Generator;

    /// The loss written out with loops in f64: normalize, scale, two log-softmaxes.
    fn naive(img: &[f64], txt: &[f64], n: usize, d: usize, s: f64) -> f64 {
        let unit = |v: &[f64]| -> Vec<f64> {
            v.chunks(d)
                .flat_map(|r| {
                    let l = r.iter().map(|x| x * x).sum::<f64>().sqrt();
                    r.iter().map(move |x| x / l)
                })
                .collect()
        };
        let (a, b) = (unit(img), unit(txt));
        let logit = |i: usize, j: usize| s.exp() * (0..d).map(|k| a[i * d + k] * b[j * d + k]).sum::<f64>();
        let ce = |row: &dyn Fn(usize) -> f64, target: usize| (0..n).map(row).map(f64::exp).sum::<f64>().ln() - row(target);
        let i2t: f64 = (0..n).map(|i| ce(&|j| logit(i, j), i)).sum::<f64>() / n as f64;
        let t2i: f64 = (0..n).map(|j| ce(&|i| logit(i, j), j)).sum::<f64>() / n as f64;
        (i2t + t2i) / 2.0
    }

    #[test]
    fn clip_loss_matches_a_naive_reference() {
        let (n, d) = (5, 3);
        let mut g = Generator::new(7);
        let (img, txt) = (g.normal(&[n, d], 0.0, 1.0, DType::F64).unwrap(), g.normal(&[n, d], 0.0, 1.0, DType::F64).unwrap());
        for s in [0.0, (1.0f64 / 0.07).ln(), 100f64.ln()] {
            let loss = clip_loss(&Var::constant(img.clone()), &Var::constant(txt.clone()), &Var::constant(Tensor::scalar(s))).unwrap();
            let want = naive(&img.to_vec::<f64>().unwrap(), &txt.to_vec::<f64>().unwrap(), n, d, s);
            assert!((loss.value().item().unwrap() - want).abs() < 1e-10, "s = {s}: {} vs {want}", loss.value().item().unwrap());
        }
    }

    #[test]
    fn clip_loss_refuses_mismatched_shapes_naming_both() {
        let a = Var::constant(Tensor::zeros(&[4, 3], DType::F32).unwrap());
        let b = Var::constant(Tensor::zeros(&[5, 3], DType::F32).unwrap());
        let msg = clip_loss(&a, &b, &Var::constant(Tensor::scalar(0f32))).unwrap_err().to_string();
        assert!(msg.contains("clip_loss") && msg.contains("[4, 3]") && msg.contains("[5, 3]"), "{msg}");
    }

    #[test]
    fn perfectly_matched_pairs_give_a_small_loss_at_a_large_scale() {
        let eye = Tensor::eye(4, DType::F64).unwrap();
        let (x, s) = (Var::constant(eye), Var::constant(Tensor::scalar(100f64.ln())));
        assert!(clip_loss(&x, &x, &s).unwrap().value().item().unwrap() < 1e-10);
    }
}
