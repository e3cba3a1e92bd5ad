//! Jigsaw puzzles (Noroozi & Favaro 2016): a 3×3 grid of tiles, each cropped at a random
//! offset inside its cell (the gap and jitter hide matching edges) and normalized on its
//! own, shuffled by one of P permutations chosen for maximal Hamming distance; a shared
//! (siamese) encoder embeds each tile, the features are concatenated in shuffled order and
//! a classifier names the permutation. The shared encoder is evaluated on whole images.
//!
//! ```text
//! tiles, p = jigsaw(x)                     # 9 tiles per image, p ∈ 0..P (data side)
//! z = concat(f(tile₁), …, f(tile₉))        # one encoder for every tile
//! loss = CE(head(z), p)
//! ```
//!
//! The permutation set is a buffer (`permutations`, i64 `[P, 9]`), so the checkpoint and
//! the exported weights carry the exact set the classifier's outputs refer to.

use std::sync::Arc;

use super::options::{nonzero, parse_options, resolve_options, MethodOptions, OptionsContext};
use super::pretext::{class_targets, classify, mean_where, pretext_view};
use super::{Backbone, BuildContext, DataRecipe, Family, Method, MethodInfo, Preset, StepContext, StepOutput, TrainBatch, ViewAugment};
use crate::data::tasks::{Jigsaw, JigsawTask, PermutationSet};
use crate::nn::{join, Buffer, Entry, Module, ProjectionHead};
use serde::{Deserialize, Serialize};
use tessera_autograd::{no_grad, Result, Var};
use tessera_engine::{Error, Generator, Tensor};

/// Jigsaw's registry entry.
pub const INFO: MethodInfo = MethodInfo {
    name: "jigsaw",
    family: Family::Pretext,
    paper: "Noroozi, Favaro 2016, Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles",
    default_encoder: "resnet-narrow",
    presets: &[Preset {
        datasets: &["default", "fashion-mnist", "mnist", "cifar10", "folder", "synthetic"],
        file: "jigsaw-fashion-mnist.toml",
        toml: include_str!("../../../configs/jigsaw-fashion-mnist.toml"),
    }],
    resolve: |t, c| resolve_options::<JigsawOptions>("jigsaw", t, c),
    build,
};

/// The `[jigsaw]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JigsawOptions {
    /// Cells per side (3: nine tiles).
    pub grid: usize,
    /// Tile side in pixels; 0 takes 64/75 of the cell, the paper's ratio (7 px of a 9-px
    /// cell on 28×28, 8 of 10 on 32×32).
    pub tile: usize,
    /// Size P of the permutation set (the classes; 100 is common, 1000 in the paper).
    pub permutations: usize,
    /// Layers and hidden width of the classifier over the concatenated tile features.
    pub head_layers: usize,
    pub head_hidden: usize,
    /// The images before cutting: `plain` or `light` (random resized crop and flip).
    pub augment: String,
    /// Where batch norm's running statistics come from: `whole` (a no-grad pass over the
    /// whole images each step; evaluation sees whole images) or `tiles` (the tiles the
    /// encoder trains on, as a plain siamese network would).
    pub bn_stats: String,
}

impl Default for JigsawOptions {
    fn default() -> Self {
        JigsawOptions {
            grid: 3,
            tile: 0,
            permutations: 100,
            head_layers: 2,
            head_hidden: 512,
            augment: "plain".into(),
            bn_stats: "tiles".into(),
        }
    }
}

impl MethodOptions for JigsawOptions {
    fn validate(&self, _: &OptionsContext) -> std::result::Result<(), String> {
        if !(2..=4).contains(&self.grid) {
            return Err(format!("grid must be 2, 3 or 4 (got {})", self.grid));
        }
        nonzero("permutations", self.permutations)?;
        nonzero("head_layers", self.head_layers)?;
        nonzero("head_hidden", self.head_hidden)?;
        whole_image_stats(&self.bn_stats)?;
        pretext_view(&self.augment).map(|_| ())
    }
}

/// `bn_stats`: true for `whole`, false for `tiles`.
fn whole_image_stats(bn_stats: &str) -> std::result::Result<bool, String> {
    match bn_stats {
        "whole" => Ok(true),
        "tiles" => Ok(false),
        other => Err(format!("bn_stats must be 'whole' or 'tiles' (got '{other}')")),
    }
}

/// The tile side `o.tile` asks for on images of side `side`; an error when a cell cannot
/// hold it.
fn tile_side(o: &JigsawOptions, side: usize) -> std::result::Result<usize, String> {
    let cell = side / o.grid;
    let tile = if o.tile == 0 { (cell * 64 / 75).max(1) } else { o.tile };
    if tile > cell {
        return Err(format!("jigsaw.tile {tile} does not fit a cell of {cell} pixels ({side}-pixel images in a {0}x{0} grid)", o.grid));
    }
    Ok(tile)
}

fn build(ctx: &BuildContext) -> std::result::Result<Box<dyn Method>, String> {
    let o: JigsawOptions = parse_options("jigsaw", ctx.options)?;
    let tile = tile_side(&o, ctx.encoder.side)?;
    let perms = PermutationSet::greedy(o.grid * o.grid, o.permutations, ctx.seed).map_err(|e| format!("jigsaw.permutations: {e}"))?;
    let mut gen = Generator::new(ctx.seed);
    let backbone = Backbone::build(ctx.encoder, &mut gen)?;
    let tiles = o.grid * o.grid;
    let head = ProjectionHead::new(tiles * backbone.dim, o.head_hidden, o.permutations, o.head_layers, false, &mut gen)
        .map_err(|e| e.to_string())?;
    let rows: Vec<i64> = (0..perms.len()).flat_map(|i| perms.get(i).iter().map(|&c| c as i64)).collect();
    let permutations = Buffer::new(Tensor::from_vec(rows, &[perms.len(), tiles]).map_err(|e| e.to_string())?);
    let whole_image_stats = whole_image_stats(&o.bn_stats)?;
    Ok(Box::new(JigsawMethod { backbone, head, permutations, grid: o.grid, tile, view: pretext_view(&o.augment)?, whole_image_stats }))
}

/// The jigsaw model: the shared tile encoder, the permutation classifier and the set.
pub struct JigsawMethod {
    pub backbone: Backbone,
    pub head: ProjectionHead,
    /// The permutation set, i64 `[P, grid²]`: row `p` lists, for each shuffled position, the
    /// cell its tile comes from.
    pub permutations: Buffer,
    grid: usize,
    tile: usize,
    view: ViewAugment,
    whole_image_stats: bool,
}

impl JigsawMethod {
    /// The permutation set held in the buffer (a resumed run's, once loaded).
    pub fn permutation_set(&self) -> Result<PermutationSet> {
        let t = self.permutations.get();
        let (p, n) = (t.shape()[0], t.shape()[1]);
        let v = t.to_vec::<i64>()?;
        let rows = (0..p).map(|i| v[i * n..(i + 1) * n].iter().map(|&c| c as usize).collect()).collect();
        PermutationSet::from_rows(n, rows).map_err(|e| Error::invalid("jigsaw", e.to_string()).into())
    }
}

impl Method for JigsawMethod {
    fn name(&self) -> &'static str {
        "jigsaw"
    }

    fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    fn data_recipe(&self) -> DataRecipe {
        // The buffer always holds a valid set (built by `greedy`, or loaded over one of the
        // same shape); the task is rebuilt from it whenever the recipe is asked for.
        let task = self
            .permutation_set()
            .and_then(|p| Jigsaw::new(self.grid, self.tile, p).map_err(|e| Error::invalid("jigsaw", e.to_string()).into()));
        let recipe = DataRecipe::views(vec![self.view]);
        match task {
            Ok(jigsaw) => recipe.with_task(Arc::new(JigsawTask { jigsaw })),
            Err(_) => recipe,
        }
    }

    fn training_step(&self, batch: &TrainBatch, _: &StepContext) -> Result<StepOutput> {
        let targets = class_targets("jigsaw", batch.targets.as_ref())?;
        let (tiles, whole) = match batch.views.as_slice() {
            [t, w, ..] => (t, w),
            other => {
                return Err(
                    Error::invalid("jigsaw", format!("needs the tiles and the whole images, the batch has {} views", other.len())).into()
                )
            }
        };
        let n = targets.shape()[0];
        let t = self.grid * self.grid;
        if tiles.shape()[0] != n * t {
            return Err(Error::shapes_hint("jigsaw", tiles.shape(), targets.shape(), format!("{t} tiles per target")).into());
        }
        let running_stats = self.whole_image_stats.then(|| self.encoder_buffers());
        let h = self.backbone.net.forward(&Var::constant(tiles.clone()))?;
        if let Some(saved) = running_stats {
            self.restore_encoder_buffers(saved)?;
        }
        // Rows of one image's tiles are consecutive, in shuffled order: concatenating them is
        // a reshape.
        let z = h.reshape_to(&[n, t * self.backbone.dim])?;
        let (loss, hits) = classify(&self.head.forward(&z)?, targets)?;
        Ok(StepOutput::new(loss, self.probe_features(whole)?).with_metric("pretext_acc", mean_where(&hits, |_| true)))
    }
}

impl JigsawMethod {
    /// Whole-image features for the online probe (the tiles' features would not tell how the
    /// encoder does on whole images), without a graph. With `bn_stats = whole` the pass runs
    /// in training mode, so batch norm's running statistics — used only by evaluation, which
    /// sees whole images — track whole images; otherwise it runs as evaluation does.
    fn probe_features(&self, whole: &Tensor) -> Result<Tensor> {
        let _g = no_grad();
        if self.whole_image_stats {
            return Ok(self.backbone.net.forward(&Var::constant(whole.clone()))?.value());
        }
        self.backbone.net.set_training(false);
        let f = self.backbone.net.forward(&Var::constant(whole.clone()));
        self.backbone.net.set_training(true);
        Ok(f?.value())
    }

    /// The encoder's buffers (batch norm's running statistics), in visiting order.
    fn encoder_buffers(&self) -> Vec<Tensor> {
        let mut saved = Vec::new();
        self.backbone.net.visit("", &mut |_, e| {
            if let Entry::Buffer(b) = e {
                saved.push(b.get());
            }
        });
        saved
    }

    /// Puts back what [`encoder_buffers`](Self::encoder_buffers) saved: the tile pass leaves
    /// the running statistics as they were.
    fn restore_encoder_buffers(&self, saved: Vec<Tensor>) -> Result<()> {
        let mut saved = saved.into_iter();
        let mut result = Ok(());
        self.backbone.net.visit("", &mut |_, e| {
            if let Entry::Buffer(b) = e {
                if let (Some(t), true) = (saved.next(), result.is_ok()) {
                    result = b.set(t);
                }
            }
        });
        result
    }
}

impl Module for JigsawMethod {
    /// The representation f(x) of whole images.
    fn forward(&self, x: &Var) -> Result<Var> {
        self.backbone.net.forward(x)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.backbone.visit(prefix, f);
        self.head.visit(&join(prefix, "head"), f);
        f(&join(prefix, "permutations"), Entry::Buffer(&self.permutations));
    }
}
