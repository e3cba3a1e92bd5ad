//! CLIP's text tokenization on HuggingFace `tokenizers`: byte-level BPE over lower-cased
//! text, every sequence `<|startoftext|> … <|endoftext|>` padded with zeros (CLIP's padding
//! id) to a fixed context length; a longer text is truncated and still ends with
//! `<|endoftext|>`, as CLIP's `tokenize(truncate=True)` does. The vocabulary is either a
//! `tokenizer.json` a user brings (open_clip's, say) or trained on the caption corpus.
//!
//! Differences from OpenAI's tokenizer: the word boundary is GPT-2's byte-level space marker
//! rather than an end-of-word suffix, and a trained vocabulary is small (it is fitted to the
//! captions at hand).

use std::path::Path;

use tessera_engine::Tensor;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::{Lowercase, Sequence, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use super::error::{DataError, Result};

/// The start-of-text token.
pub const START_OF_TEXT: &str = "<|startoftext|>";
/// The end-of-text token: the text tower reads its features there.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A BPE tokenizer producing fixed-length id sequences for CLIP's text tower.
pub struct ClipTokenizer {
    inner: Tokenizer,
    sot: u32,
    eot: u32,
    context: usize,
}

fn err(what: &'static str, e: impl std::fmt::Display) -> DataError {
    DataError::invalid(what, e.to_string())
}

impl ClipTokenizer {
    /// Trains a byte-level BPE vocabulary of at most `vocab_size` tokens (the 256 byte
    /// symbols and the two special tokens included) on `corpus`. Deterministic: the same
    /// corpus gives the same vocabulary.
    pub fn train(corpus: &[String], vocab_size: usize, context: usize) -> Result<ClipTokenizer> {
        if vocab_size < 258 {
            return Err(DataError::invalid(
                "ClipTokenizer::train",
                format!("vocab_size must be at least 258 (256 bytes + 2 special tokens), got {vocab_size}"),
            ));
        }
        if corpus.is_empty() {
            return Err(DataError::invalid("ClipTokenizer::train", "the caption corpus is empty"));
        }
        let mut tok = Tokenizer::new(BPE::default());
        tok.with_normalizer(Some(Sequence::new(vec![NFC.into(), Lowercase.into()]))).map_err(|e| err("ClipTokenizer::train", e))?;
        tok.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        tok.with_decoder(Some(ByteLevel::default()));
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(1)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(START_OF_TEXT, true), AddedToken::from(END_OF_TEXT, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        tok.train(&mut trainer, corpus.iter()).map_err(|e| err("ClipTokenizer::train", e))?;
        Self::from_tokenizer(tok, context, "trained vocabulary")
    }

    /// A tokenizer from the text of a `tokenizer.json`; `origin` names it in errors.
    pub fn from_json(json: &str, context: usize, origin: &str) -> Result<ClipTokenizer> {
        let tok: Tokenizer = json.parse().map_err(|e| DataError::format(origin, format!("not a tokenizer.json: {e}")))?;
        Self::from_tokenizer(tok, context, origin)
    }

    /// A tokenizer from a `tokenizer.json` file (it must define both special tokens).
    pub fn from_file(path: &Path, context: usize) -> Result<ClipTokenizer> {
        let json = std::fs::read_to_string(path).map_err(|e| DataError::io(path, "cannot read tokenizer", e))?;
        Self::from_json(&json, context, &path.display().to_string())
    }

    fn from_tokenizer(inner: Tokenizer, context: usize, origin: &str) -> Result<ClipTokenizer> {
        if context < 2 {
            return Err(DataError::invalid("ClipTokenizer", format!("the context length must be at least 2, got {context}")));
        }
        let id = |t: &str| inner.token_to_id(t).ok_or_else(|| DataError::format(origin, format!("the vocabulary has no {t} token")));
        let (sot, eot) = (id(START_OF_TEXT)?, id(END_OF_TEXT)?);
        Ok(ClipTokenizer { inner, sot, eot, context })
    }

    /// The `tokenizer.json` text (what a run folder saves).
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(true).map_err(|e| err("ClipTokenizer::to_json", e))
    }

    /// Tokens in the vocabulary (rows of the text tower's embedding table).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of `<|endoftext|>`.
    pub fn eot_id(&self) -> i64 {
        self.eot as i64
    }

    /// Length T of every sequence.
    pub fn context_length(&self) -> usize {
        self.context
    }

    /// `text` as `T` ids: start token, at most `T − 2` text tokens, end token, zeros.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let enc = self.inner.encode(text, false).map_err(|e| err("ClipTokenizer::encode", e))?;
        let body = &enc.get_ids()[..enc.get_ids().len().min(self.context - 2)];
        let mut ids = Vec::with_capacity(self.context);
        ids.push(self.sot as i64);
        ids.extend(body.iter().map(|&i| i as i64));
        ids.push(self.eot as i64);
        ids.resize(self.context, 0);
        Ok(ids)
    }

    /// Several texts as an i64 tensor `[N, T]`.
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor> {
        let mut ids = Vec::with_capacity(texts.len() * self.context);
        for t in texts {
            ids.extend(self.encode(t.as_ref())?);
        }
        Ok(Tensor::from_vec(ids, &[texts.len(), self.context])?)
    }

    /// The text of an id sequence, special tokens and padding dropped.
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let end = ids.iter().position(|&i| i == self.eot as i64).unwrap_or(ids.len());
        let body: Vec<u32> = ids[..end].iter().filter(|&&i| i != self.sot as i64).map(|&i| i as u32).collect();
        self.inner.decode(&body, true).map_err(|e| err("ClipTokenizer::decode", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        ["a photo of a sandal.", "a black and white picture of a coat.", "an image of a bag.", "a photo of my boot."]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn encodes_with_start_end_and_padding_and_round_trips() {
        let t = ClipTokenizer::train(&corpus(), 300, 16).unwrap();
        let ids = t.encode("A Photo of a Sandal.").unwrap();
        assert_eq!(ids.len(), 16);
        assert_eq!(ids[0], t.sot as i64);
        let end = ids.iter().position(|&i| i == t.eot_id()).unwrap();
        assert!(ids[end + 1..].iter().all(|&i| i == 0), "{ids:?}");
        // Lower-cased on the way in; unseen words fall back to bytes and still round-trip.
        assert_eq!(t.decode(&ids).unwrap(), "a photo of a sandal.");
        let wide = ClipTokenizer::from_json(&t.to_json().unwrap(), 64, "wide").unwrap();
        assert_eq!(wide.decode(&wide.encode("a zebra-striped Ü sock").unwrap()).unwrap(), "a zebra-striped ü sock");
    }

    #[test]
    fn truncates_to_the_context_and_keeps_the_end_token() {
        let t = ClipTokenizer::train(&corpus(), 300, 6).unwrap();
        let ids = t.encode("a black and white picture of a coat and a bag and a boot").unwrap();
        assert_eq!(ids.len(), 6);
        assert_eq!((ids[0], ids[5]), (t.sot as i64, t.eot_id()));
        let tokens = t.encode_batch(&["a", "a photo of my boot"]).unwrap();
        assert_eq!(tokens.shape(), &[2, 6]);
    }

    #[test]
    fn training_is_deterministic_and_the_json_reloads_exactly() {
        let (a, b) = (ClipTokenizer::train(&corpus(), 300, 16).unwrap(), ClipTokenizer::train(&corpus(), 300, 16).unwrap());
        assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
        let c = ClipTokenizer::from_json(&a.to_json().unwrap(), 16, "saved").unwrap();
        assert_eq!(c.vocab_size(), a.vocab_size());
        assert_eq!(c.encode("a photo of a coat.").unwrap(), a.encode("a photo of a coat.").unwrap());
    }

    #[test]
    fn a_vocabulary_without_the_special_tokens_is_refused() {
        let t = ClipTokenizer::train(&corpus(), 300, 16).unwrap();
        let json = t.to_json().unwrap().replace(END_OF_TEXT, "<|end|>");
        let err = ClipTokenizer::from_json(&json, 16, "my/tokenizer.json").err().unwrap().to_string();
        assert!(err.contains("my/tokenizer.json") && err.contains(END_OF_TEXT), "{err}");
    }
}
