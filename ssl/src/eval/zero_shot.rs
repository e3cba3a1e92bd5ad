//! Zero-shot classification with an image–text model (CLIP, section 3.1.2): each class is
//! embedded from text prompts ("a photo of a {class}."), the prompts' embeddings normalized,
//! averaged and normalized again (prompt ensembling), and an image is assigned the class
//! whose embedding has the largest cosine with its own. No training data is read.

use crate::data::captions::{class_names, fill_template};
use crate::data::Dataset;
use tessera_autograd::Result;
use tessera_engine::{Error, Tensor};

use super::features::image_batches;

/// A model with an image and a text tower mapping into one space.
pub trait DualEncoder {
    /// Image embeddings `[B, E]` of normalized images `[B, C, H, W]` (eval mode, no graph).
    fn embed_images(&self, images: &Tensor) -> Result<Tensor>;
    /// Text embeddings `[N, E]` (eval mode, no graph).
    fn embed_texts(&self, texts: &[String]) -> Result<Tensor>;
}

/// Rows scaled to unit length.
fn unit_rows(x: &Tensor) -> tessera_engine::Result<Tensor> {
    crate::methods::l2_normalize_rows(x)
}

/// One unit-length embedding per class `[C, E]`: every `(template, name)` prompt of the class
/// embedded and normalized, averaged, normalized. `names[c]` are the names class `c` goes by
/// (their prompts are all averaged); templates hold `{}` where the name goes.
pub fn class_embeddings(model: &dyn DualEncoder, names: &[Vec<String>], templates: &[String]) -> Result<Tensor> {
    if names.is_empty() || templates.is_empty() || names.iter().any(|n| n.is_empty()) {
        return Err(Error::invalid("class_embeddings", "needs at least one class, one name per class and one template").into());
    }
    let mut rows = Vec::with_capacity(names.len());
    for class in names {
        let prompts: Vec<String> = class.iter().flat_map(|n| templates.iter().map(move |t| fill_template(t, n))).collect();
        let e = unit_rows(&model.embed_texts(&prompts)?)?;
        rows.push(e.mean(&[0], true)?);
    }
    let refs: Vec<&Tensor> = rows.iter().collect();
    Ok(unit_rows(&Tensor::cat(&refs, 0)?)?)
}

/// The predicted class of each image embedding `[N, E]` against class embeddings `[C, E]`:
/// the largest cosine.
pub fn zero_shot_predict(images: &Tensor, classes: &Tensor) -> Result<Vec<i64>> {
    let (is, cs) = (images.shape(), classes.shape());
    if is.len() != 2 || cs.len() != 2 || is[1] != cs[1] || cs[0] == 0 {
        return Err(Error::shapes_hint("zero_shot_predict", is, cs, "images [N, E] and classes [C, E] must share E").into());
    }
    let sim = unit_rows(images)?.matmul(&unit_rows(classes)?.t()?)?.to_dtype(tessera_engine::DType::F64)?.to_vec::<f64>()?;
    Ok(sim
        .chunks_exact(cs[0])
        .map(|row| row.iter().enumerate().fold((0, f64::NEG_INFINITY), |best, (c, &v)| if v > best.1 { (c, v) } else { best }).0 as i64)
        .collect())
}

/// Zero-shot accuracy on a labelled dataset: class names from [`class_names`] (Fashion-MNIST's
/// first synonym, otherwise the class name), prompts from `templates`; images normalized by
/// `norm` as in training.
pub fn zero_shot_accuracy(model: &dyn DualEncoder, ds: &Dataset, templates: &[String], norm: (f32, f32)) -> Result<f64> {
    let names: Vec<Vec<String>> = ds.classes().iter().map(|c| class_names(c).into_iter().take(1).collect()).collect();
    let classes = class_embeddings(model, &names, templates)?;
    let mut correct = 0usize;
    let mut seen = 0usize;
    for x in image_batches(ds, 512, Some(norm)) {
        let pred = zero_shot_predict(&model.embed_images(&x?)?, &classes)?;
        correct += pred.iter().zip(&ds.labels()[seen..]).filter(|(p, l)| p == l).count();
        seen += pred.len();
    }
    Ok(correct as f64 / seen.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_engine::DType;

    /// Texts map to the axis of the class word they contain; images are their pixel vectors.
    struct Toy;
    const WORDS: [&str; 3] = ["cat", "dog", "bird"];

    impl DualEncoder for Toy {
        fn embed_images(&self, images: &Tensor) -> Result<Tensor> {
            let n = images.shape()[0];
            Ok(images.reshape_to(&[n, 3])?)
        }
        fn embed_texts(&self, texts: &[String]) -> Result<Tensor> {
            let rows: Vec<f32> = texts.iter().flat_map(|t| WORDS.iter().map(move |w| if t.contains(w) { 1.0 } else { 0.0 })).collect();
            Ok(Tensor::from_vec(rows, &[texts.len(), 3])?)
        }
    }

    #[test]
    fn zero_shot_assigns_the_class_of_the_nearest_prompt_embedding() {
        // Six 1×1×3 "images"; the brightest channel is the class, except the last, labelled
        // wrongly on purpose: 5 of 6 right.
        let px: Vec<u8> = vec![200, 10, 10, 10, 200, 10, 10, 10, 200, 90, 80, 10, 10, 20, 30, 200, 10, 10];
        let ds = Dataset::new("toy", [3, 1, 1], px, vec![0, 1, 2, 0, 2, 2], WORDS.map(String::from).to_vec()).unwrap();
        let templates = vec!["a photo of a {}.".to_string(), "a {class} again".to_string()];
        let acc = zero_shot_accuracy(&Toy, &ds, &templates, (0.0, 1.0)).unwrap();
        assert!((acc - 5.0 / 6.0).abs() < 1e-12, "{acc}");
        let classes = class_embeddings(&Toy, &[vec!["cat".into()], vec!["dog".into()]], &templates).unwrap();
        assert_eq!(classes.to_vec::<f32>().unwrap(), vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn predictions_refuse_mismatched_widths() {
        let (a, b) = (Tensor::zeros(&[2, 3], DType::F32).unwrap(), Tensor::zeros(&[4, 5], DType::F32).unwrap());
        let msg = zero_shot_predict(&a, &b).unwrap_err().to_string();
        assert!(msg.contains("[2, 3]") && msg.contains("[4, 5]"), "{msg}");
    }
}
