//! CLIP's text tower: token and learned position embeddings, pre-norm transformer blocks
//! with a causal mask, a final LayerNorm, the features of the end-of-text token, and a
//! linear projection to the joint image–text space. Top-level names follow open_clip
//! (`token_embedding.weight`, `positional_embedding`, `transformer.resblocks.{i}`,
//! `ln_final`, `text_projection`); inside a block they are timm's (`norm1`, `attn.qkv`, ...,
//! the same tensors as open_clip's `ln_1`, `attn.in_proj_weight`, ...).

use super::attention::TransformerBlock;
use super::embedding::Embedding;
use super::layernorm::LayerNorm;
use super::module::{join, Entry, Module, Param};
use tessera_autograd::{Result, Var};
use tessera_engine::{DType, Device, Error, Generator, Tensor};

/// The text tower's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextConfig {
    /// Rows of the token embedding (the tokenizer's vocabulary size).
    pub vocab_size: usize,
    /// Sequence length T.
    pub context_length: usize,
    pub width: usize,
    pub heads: usize,
    pub layers: usize,
    /// Width of the joint space.
    pub embed_dim: usize,
    /// The end-of-text token id: its position's features are the text's.
    pub eot_id: i64,
}

/// The text encoder: token ids `[B, T]` (i64) → text features `[B, embed_dim]`.
pub struct TextTransformer {
    pub token_embedding: Embedding,
    pub positional_embedding: Param,
    pub blocks: Vec<TransformerBlock>,
    pub ln_final: LayerNorm,
    pub text_projection: Param,
    pub config: TextConfig,
}

impl TextTransformer {
    /// open_clip's initialization (`TextTransformer.init_parameters`): tokens std 0.02,
    /// positions 0.01, and normals scaled to the width `w` and depth `L`: the fused q/k/v
    /// projection std w^-1/2, the MLP's first layer (2w)^-1/2, the attention output and
    /// the MLP's second layer w^-1/2 · (2L)^-1/2 (so the residual stream grows as O(1)
    /// over the blocks), the text projection w^-1/2; biases zero. ViT's std 0.02 would be
    /// 4× smaller at w = 128: attention would start uniform, and captions of one length
    /// would reach the end token nearly alike.
    pub fn new(c: &TextConfig, gen: &mut Generator) -> Result<TextTransformer> {
        if c.vocab_size == 0 || c.context_length == 0 || c.layers == 0 || c.embed_dim == 0 {
            return Err(Error::invalid("TextTransformer", format!("every size must be positive: {c:?}")).into());
        }
        let token_embedding = Embedding { weight: Param::new(gen.normal(&[c.vocab_size, c.width], 0.0, 0.02, DType::F32)?)? };
        let positional_embedding = Param::new(gen.normal(&[c.context_length, c.width], 0.0, 0.01, DType::F32)?)?;
        let blocks =
            (0..c.layers).map(|_| Ok(TransformerBlock::new(c.width, c.heads, 4.0, true, gen)?.causal())).collect::<Result<Vec<_>>>()?;
        let width = c.width as f64;
        let (attn_std, fc_std, proj_std) = (width.powf(-0.5), (2.0 * width).powf(-0.5), (width * 2.0 * c.layers as f64).powf(-0.5));
        for b in &blocks {
            for (w, std) in [
                (&b.attn.qkv.weight, attn_std),
                (&b.attn.proj.weight, proj_std),
                (&b.mlp.fc1.weight, fc_std),
                (&b.mlp.fc2.weight, proj_std),
            ] {
                w.var().set_value(gen.normal(w.value().shape(), 0.0, std, DType::F32)?)?;
            }
        }
        let text_projection = Param::new(gen.normal(&[c.width, c.embed_dim], 0.0, (c.width as f64).powf(-0.5), DType::F32)?)?;
        Ok(TextTransformer {
            token_embedding,
            positional_embedding,
            blocks,
            ln_final: LayerNorm::new(c.width, 1e-5)?,
            text_projection,
            config: *c,
        })
    }

    /// Row-major flat positions (`b · T + t`) of each sequence's first end-of-text token; an
    /// error names a sequence without one.
    fn eot_positions(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = (tokens.shape()[0], tokens.shape()[1]);
        let ids = tokens.to_device(Device::Cpu)?.to_vec::<i64>()?;
        let mut out = Vec::with_capacity(b);
        for (row, seq) in ids.chunks_exact(t.max(1)).enumerate() {
            let pos = seq.iter().position(|&i| i == self.config.eot_id).ok_or_else(|| {
                Error::invalid("TextTransformer", format!("sequence {row} has no end-of-text token (id {})", self.config.eot_id))
            })?;
            out.push((row * t + pos) as i64);
        }
        Ok(Tensor::from_vec(out, &[b])?.to_device(self.text_projection.value().device())?)
    }

    /// Text features `[B, embed_dim]` of token ids `[B, T]` (T at most the context length).
    pub fn encode(&self, tokens: &Tensor) -> Result<Var> {
        let s = tokens.shape();
        let (c, w) = (self.config.context_length, self.config.width);
        if s.len() != 2 || s[0] == 0 || s[1] == 0 || s[1] > c || tokens.dtype() != DType::I64 {
            let hint = format!("token ids must be i64 [B, T] with 1 ≤ T ≤ {c}, got {}", tokens.dtype().name());
            return Err(Error::shapes_hint("TextTransformer", s, &[s.first().copied().unwrap_or(0), c], hint).into());
        }
        let (b, t) = (s[0], s[1]);
        let positions = self.positional_embedding.get().narrow(0, 0, t)?.reshape_to(&[1, t, w])?;
        let mut x = self.token_embedding.lookup(tokens)?.add(&positions)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        // LayerNorm works per token, so normalizing only the end-of-text rows is the same.
        let eot = x.reshape_to(&[b * t, w])?.index_select(0, &self.eot_positions(tokens)?)?;
        self.ln_final.forward(&eot)?.matmul(&self.text_projection.get())
    }
}

impl Module for TextTransformer {
    /// [`TextTransformer::encode`] of the input's value (token ids).
    fn forward(&self, x: &Var) -> Result<Var> {
        self.encode(&x.value())
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.token_embedding.visit(&join(prefix, "token_embedding"), f);
        f(&join(prefix, "positional_embedding"), Entry::Param(&self.positional_embedding));
        for (i, b) in self.blocks.iter().enumerate() {
            b.visit(&join(prefix, &format!("transformer.resblocks.{i}")), f);
        }
        self.ln_final.visit(&join(prefix, "ln_final"), f);
        f(&join(prefix, "text_projection"), Entry::Param(&self.text_projection));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tower() -> TextTransformer {
        let c = TextConfig { vocab_size: 20, context_length: 8, width: 16, heads: 2, layers: 2, embed_dim: 4, eot_id: 1 };
        TextTransformer::new(&c, &mut Generator::new(3)).unwrap()
    }

    #[test]
    fn a_later_token_cannot_change_an_earlier_tokens_features() {
        let t = tower();
        let x = Generator::new(5).normal(&[1, 8, 16], 0.0, 1.0, DType::F32).unwrap();
        let mut changed = x.to_vec::<f32>().unwrap();
        for v in &mut changed[5 * 16..6 * 16] {
            *v += 1.0;
        }
        let run = |x: Tensor| {
            let mut h = Var::constant(x);
            for b in &t.blocks {
                h = b.forward(&h).unwrap();
            }
            h.value().to_vec::<f32>().unwrap()
        };
        let (a, b) = (run(x), run(Tensor::from_vec(changed, &[1, 8, 16]).unwrap()));
        assert_eq!(a[..5 * 16], b[..5 * 16], "positions before the change moved");
        assert_ne!(a[5 * 16..6 * 16], b[5 * 16..6 * 16], "the changed position itself must move");
    }

    #[test]
    fn features_are_read_at_the_end_token_so_padding_after_it_does_not_matter() {
        let t = tower();
        let tokens = |tail: [i64; 3]| Tensor::from_vec(vec![0i64, 7, 9, 4, 1, tail[0], tail[1], tail[2]], &[1, 8]).unwrap();
        let a = t.encode(&tokens([0, 0, 0])).unwrap().value().to_vec::<f32>().unwrap();
        let b = t.encode(&tokens([5, 6, 7])).unwrap().value().to_vec::<f32>().unwrap();
        assert_eq!(a, b);
        let c = t.encode(&Tensor::from_vec(vec![0i64, 8, 9, 4, 1, 0, 0, 0], &[1, 8]).unwrap()).unwrap().value().to_vec::<f32>().unwrap();
        assert_ne!(a, c, "an earlier token must change the features");
    }

    #[test]
    fn a_sequence_without_an_end_token_is_an_error_naming_it() {
        let err = tower().encode(&Tensor::from_vec(vec![0i64; 16], &[2, 8]).unwrap()).err().unwrap().to_string();
        assert!(err.contains("sequence 0 has no end-of-text token"), "{err}");
    }
}
