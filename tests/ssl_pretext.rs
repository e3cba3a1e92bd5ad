//! The pretext methods through the Method API: their recipes, steps, metrics, saved state
//! (permutation set, colour bins and weights) and pictures.

use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::data::tasks::{ColourPrior, PermutationSet};
use tessera::ssl::data::{synthetic_colour, Dataset, SyntheticConfig, TrainBatch};
use tessera::ssl::methods::{self, BuildContext, Method, OptionsContext, StepContext};
use tessera::ssl::nn::{EncoderSpec, Entry, Module, Pool};

fn spec(channels: usize, side: usize) -> EncoderSpec {
    EncoderSpec { name: "resnet-narrow".into(), channels, side, patch_size: 0, pool: Pool::Token }
}

/// A method with its default options (the CLI tests cover configured ones).
fn build(name: &str, channels: usize, side: usize, train: Option<&Dataset>) -> Result<Box<dyn Method>, String> {
    let info = methods::find(name)?;
    let resolved = (info.resolve)(&Default::default(), &OptionsContext { encoder: "resnet-narrow", batch_size: 8 })?;
    (info.build)(&BuildContext { options: &resolved, encoder: &spec(channels, side), seed: 3, batch_size: 8, train, run: None })
}

/// A batch as the training loop makes it: the recipe's task applied to the views.
fn batch(method: &dyn Method, images: Tensor) -> TrainBatch {
    let n = images.shape()[0];
    let recipe = method.data_recipe();
    let views = recipe.views.iter().map(|_| images.clone()).collect();
    let tb = TrainBatch {
        views,
        targets: None,
        mask: None,
        tokens: None,
        labels: Tensor::zeros(&[n], DType::I64).unwrap(),
        indices: (0..n).collect(),
    };
    recipe.task.expect("pretext methods have a batch task").apply(tb, &Generator::new(5)).unwrap()
}

fn buffer(method: &dyn Method, name: &str) -> Tensor {
    let mut found = None;
    method.visit("", &mut |n, e| {
        if let (true, Entry::Buffer(b)) = (n == name, e) {
            found = Some(b.get());
        }
    });
    found.unwrap_or_else(|| panic!("no buffer {name}"))
}

fn metric(out: &methods::StepOutput, name: &str) -> f64 {
    out.metrics.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no metric {name}")).1
}

#[test]
fn rotation_step_logs_per_rotation_accuracy_and_probes_upright_images() {
    let m = build("rotation", 1, 28, None).unwrap();
    let x = Generator::new(1).normal(&[3, 1, 28, 28], 0.0, 1.0, DType::F32).unwrap();
    let out = m.training_step(&batch(m.as_ref(), x), &StepContext { step: 0, total_steps: 1 }).unwrap();
    assert!(out.loss.value().item().unwrap().is_finite());
    assert_eq!(out.features.shape(), [3, 128], "one probe row per original image");
    let per: Vec<f64> = methods::ROTATION_METRICS.iter().map(|n| metric(&out, n)).collect();
    assert!((metric(&out, "pretext_acc") - per.iter().sum::<f64>() / 4.0).abs() < 1e-12, "{per:?}");
    out.loss.backward().unwrap();
    let no_targets = TrainBatch {
        views: vec![Tensor::zeros(&[2, 1, 28, 28], DType::F32).unwrap()],
        targets: None,
        mask: None,
        tokens: None,
        labels: Tensor::zeros(&[2], DType::I64).unwrap(),
        indices: (0..2).collect(),
    };
    let err = m.training_step(&no_targets, &StepContext { step: 0, total_steps: 1 }).err().unwrap().to_string();
    assert!(err.contains("rotation") && err.contains("targets"), "{err}");
}

#[test]
fn jigsaw_saves_its_permutation_set_and_classifies_it() {
    let m = build("jigsaw", 1, 28, None).unwrap();
    let saved = buffer(m.as_ref(), "permutations");
    assert_eq!(saved.shape(), [100, 9]);
    let want = PermutationSet::greedy(9, 100, 3).unwrap();
    let rows = saved.to_vec::<i64>().unwrap();
    for i in 0..100 {
        assert_eq!(rows[i * 9..(i + 1) * 9].iter().map(|&v| v as usize).collect::<Vec<_>>(), want.get(i));
    }
    let x = Generator::new(1).normal(&[4, 1, 28, 28], 0.0, 1.0, DType::F32).unwrap();
    let tb = batch(m.as_ref(), x);
    assert_eq!(tb.views[0].shape(), [36, 1, 7, 7], "9 tiles of 7 px (64/75 of a 9-px cell) per image");
    let out = m.training_step(&tb, &StepContext { step: 0, total_steps: 1 }).unwrap();
    assert_eq!(out.features.shape(), [4, 128], "whole-image features for the probe");
    assert!(metric(&out, "pretext_acc") >= 0.0);
    // 8-pixel cells (a 24-pixel image) hold the 6-pixel tiles 64/75 of a cell gives.
    assert!(build("jigsaw", 1, 24, None).is_ok());
}

#[test]
fn colorization_builds_from_colour_data_and_refuses_greyscale() {
    let grey = Dataset::new("grey", [1, 28, 28], vec![0; 784], vec![0], vec!["a".into()]).unwrap();
    let err = build("colorization", 1, 28, Some(&grey)).err().unwrap();
    assert!(err.contains("needs colour images") && err.contains("synthetic"), "{err}");
    let ds = synthetic_colour(SyntheticConfig { len: 24, ..SyntheticConfig::default() }).unwrap();
    assert!(build("colorization", 3, 32, None).err().unwrap().contains("training data"));
    let m = build("colorization", 3, 32, Some(&ds)).unwrap();
    let prior = ColourPrior::from_dataset(&ds, 5.0, 0.5).unwrap();
    let q = prior.centers.len();
    assert_eq!(buffer(m.as_ref(), "ab_bins").shape(), [q, 2]);
    assert_eq!(buffer(m.as_ref(), "ab_weights").to_vec::<f32>().unwrap(), prior.weights, "the weights computed from the data are saved");
    assert_eq!(buffer(m.as_ref(), "ab_prior").to_vec::<f32>().unwrap(), prior.prior);
    assert_eq!(buffer(m.as_ref(), "encoder.input_norm").shape(), [2]);
    let x = Tensor::from_vec((0..4).flat_map(|i| ds.pixels(i).iter().map(|&p| p as f32 / 255.0)).collect(), &[4, 3, 32, 32]).unwrap();
    let out = m.training_step(&batch(m.as_ref(), x.clone()), &StepContext { step: 0, total_steps: 1 }).unwrap();
    assert!(out.loss.value().item().unwrap().is_finite());
    assert_eq!(out.features.shape(), [4, 128]);
    out.loss.backward().unwrap();
    // The evaluated encoder takes RGB images and sees only their lightness.
    let f = m.encoder().forward(&tessera::autograd::Var::constant(x.clone())).unwrap();
    assert_eq!(f.shape(), [4, 128]);
    m.set_training(false);
    let grid = m.visualize(&x, (0.0, 1.0)).unwrap().expect("colorization draws a picture");
    assert_eq!(grid.name, "colorization");
    assert_eq!(grid.columns.len(), 3);
    assert!(grid.titles()[0].contains("greyscale") && grid.titles()[2].contains("ground truth"));
    assert_eq!(grid.columns[1].1.shape(), [4, 3, 32, 32]);
}

/// The jigsaw shortcut on centred objects on black (Fashion-MNIST): a linear classifier on
/// one normalized tile's pixels, with no other tile to compare with, names the cell it came
/// from far above chance (1/9). BENCHMARKS.md ("Jigsaw") records the figure:
/// `cargo test --release --test ssl_pretext jigsaw_shortcut -- --nocapture`.
#[test]
fn jigsaw_shortcut_a_single_tile_gives_its_cell_away() {
    use tessera::ssl::data::tasks::{normalize_tile, Jigsaw};
    use tessera::ssl::data::{fashion_mnist_subset, Image, Split};
    use tessera::ssl::eval::{linear_probe_accuracy, LinearProbeConfig};
    let (train, test) = (fashion_mnist_subset(Split::Train).unwrap().take(2000), fashion_mnist_subset(Split::Test).unwrap().take(500));
    // The identity permutation only: tile j comes from cell j, so j is the label.
    let jig = Jigsaw::new(3, 7, PermutationSet::from_rows(9, vec![(0..9).collect()]).unwrap()).unwrap();
    let tiles = |ds: &Dataset, seed: u64| -> (Tensor, Vec<i64>) {
        let mut rng = Generator::new(seed);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..ds.len() {
            let s = jig.apply(&Image::from_u8(1, 28, 28, ds.pixels(i)).unwrap(), &mut rng).unwrap();
            for (cell, t) in s.tiles.iter().enumerate() {
                let mut v = t.data().to_vec();
                normalize_tile(&mut v);
                x.extend(v);
                y.push(cell as i64);
            }
        }
        (Tensor::from_vec(x, &[y.len(), 49]).unwrap(), y)
    };
    let ((xa, ya), (xb, yb)) = (tiles(&train, 1), tiles(&test, 2));
    let acc = linear_probe_accuracy(&xa, &ya, &xb, &yb, 9, &LinearProbeConfig { epochs: 10, ..LinearProbeConfig::default() }).unwrap();
    println!("jigsaw shortcut: a linear classifier on one 7x7 tile names its cell with accuracy {acc:.3} (chance 0.111)");
    assert!(acc > 0.3, "the tile's content should give its position away on centred objects: {acc}");
}
