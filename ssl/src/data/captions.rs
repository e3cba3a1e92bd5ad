//! Captions for image–text methods (CLIP): where each training image's text comes from, and
//! the batch task that draws one caption per image and tokenizes it.
//!
//! A dataset either carries its own captions (`pairs:DIR`, several per image allowed) or,
//! for a labelled image dataset such as the embedded Fashion-MNIST, gets captions generated
//! from its class names: a template ("a black and white picture of a {}.") filled with one of
//! the class's synonyms, drawn afresh each epoch so the text tower has to generalise across
//! wordings. **Generated captions carry the labels**: CLIP trained on them is supervised by
//! the class names, not label-free.

use std::sync::Arc;

use tessera_engine::{Generator, Tensor};

use super::error::{DataError, Result};
use super::recipe::{BatchTask, TrainBatch};
use super::tokenizer::ClipTokenizer;

/// Templates of the generated captions; `{}` is replaced by a class name or synonym. They
/// also serve as the default zero-shot prompts (CLIP's prompt ensembling).
pub const CAPTION_TEMPLATES: &[&str] = &[
    "a photo of a {}.",
    "a black and white picture of a {}.",
    "a grayscale photo of the {}.",
    "a low resolution photo of a {}.",
    "a small picture of a {}.",
    "an image of a {}.",
    "a product photo of a {}.",
    "a photo of my {}.",
    "a close-up photo of the {}.",
    "this is a {}.",
    "a centered photo of a {}.",
    "a blurry photo of a {}.",
];

/// Synonyms of Fashion-MNIST's classes (the first is the name prompts use).
const FASHION_SYNONYMS: &[(&str, &[&str])] = &[
    ("T-shirt/top", &["t-shirt", "top", "tee"]),
    ("Trouser", &["pair of trousers", "pair of pants", "pair of jeans"]),
    ("Pullover", &["pullover", "sweater", "jumper"]),
    ("Dress", &["dress", "gown", "frock"]),
    ("Coat", &["coat", "jacket", "overcoat"]),
    ("Sandal", &["sandal", "flip-flop", "summer sandal"]),
    ("Shirt", &["shirt", "button-down shirt", "blouse"]),
    ("Sneaker", &["sneaker", "running shoe", "trainer"]),
    ("Bag", &["bag", "handbag", "purse"]),
    ("Ankle boot", &["ankle boot", "boot", "short boot"]),
];

/// The names a class goes by in captions and prompts: the synonyms above for Fashion-MNIST's
/// classes, otherwise the class name itself (lower-case, `_` read as a space).
pub fn class_names(class: &str) -> Vec<String> {
    match FASHION_SYNONYMS.iter().find(|(c, _)| *c == class) {
        Some((_, names)) => names.iter().map(|s| s.to_string()).collect(),
        None => vec![class.to_lowercase().replace('_', " ")],
    }
}

/// `template` with its `{}` (or `{class}`) replaced by `name`.
pub fn fill_template(template: &str, name: &str) -> String {
    template.replace("{class}", name).replace("{}", name)
}

/// Where each training image's captions come from.
#[derive(Debug, Clone)]
pub enum CaptionSource {
    /// The dataset's own captions, per image (`pairs:DIR`).
    PerImage(Arc<Vec<Vec<String>>>),
    /// A template filled with a synonym of the image's class (`names[label]`).
    Templated { names: Vec<Vec<String>>, labels: Arc<Vec<i64>> },
}

impl CaptionSource {
    /// The dataset's captions where it has them, else captions generated from its classes.
    pub fn for_dataset(ds: &super::Dataset) -> CaptionSource {
        match ds.captions() {
            Some(c) => CaptionSource::PerImage(c.clone()),
            None => CaptionSource::Templated {
                names: ds.classes().iter().map(|c| class_names(c)).collect(),
                labels: Arc::new(ds.labels().to_vec()),
            },
        }
    }

    /// One caption of image `index`, drawn with `rng`.
    pub fn draw(&self, index: usize, rng: &mut Generator) -> Result<String> {
        let pick = |n: usize, rng: &mut Generator| rng.next_below(n as u64) as usize;
        let out_of_range = || DataError::invalid("CaptionSource::draw", format!("image index {index} is out of range"));
        match self {
            CaptionSource::PerImage(c) => {
                let list = c.get(index).ok_or_else(out_of_range)?;
                Ok(list[pick(list.len(), rng)].clone())
            }
            CaptionSource::Templated { names, labels } => {
                let label = *labels.get(index).ok_or_else(out_of_range)? as usize;
                let (t, names) = (pick(CAPTION_TEMPLATES.len(), rng), &names[label]);
                Ok(fill_template(CAPTION_TEMPLATES[t], &names[pick(names.len(), rng)]))
            }
        }
    }

    /// Every caption this source can produce, sorted and without repeats (the corpus a
    /// tokenizer vocabulary is trained on).
    pub fn corpus(&self) -> Vec<String> {
        let mut all: Vec<String> = match self {
            CaptionSource::PerImage(c) => c.iter().flatten().cloned().collect(),
            CaptionSource::Templated { names, .. } => {
                names.iter().flatten().flat_map(|n| CAPTION_TEMPLATES.iter().map(move |t| fill_template(t, n))).collect()
            }
        };
        all.sort();
        all.dedup();
        all
    }
}

/// The batch task of image–text methods: one caption per image, drawn from the image's
/// own random stream (so it depends on the seed, the epoch and the image, not on the batch
/// or the thread count), tokenized into `TrainBatch::tokens [B, T]`.
pub struct CaptionTask {
    pub source: CaptionSource,
    pub tokenizer: Arc<ClipTokenizer>,
}

impl BatchTask for CaptionTask {
    fn apply(&self, mut batch: TrainBatch, rng: &Generator) -> Result<TrainBatch> {
        let texts: Vec<String> = batch.indices.iter().map(|&i| self.source.draw(i, &mut rng.fork(i as u64))).collect::<Result<_>>()?;
        let tokens: Tensor = self.tokenizer.encode_batch(&texts)?;
        batch.tokens = Some(tokens);
        Ok(batch)
    }
}
