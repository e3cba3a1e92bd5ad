//! One fuzz target per parser a user's files reach: its seeds (valid files) and how one
//! input is written into a case folder and loaded. A target returns the loader's error as
//! text; the harness checks that it names a file of the case folder.
//!
//! The seeds are committed under `tests/fuzz/seeds/<target>/` ([`Target::all_seeds`] reads
//! them), written there by the generators here ([`Target::seeds`]) through the ignored
//! test `write_seeds`; the generated ones are used too, so a writer's newer output is
//! fuzzed alongside the committed files.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};

use tessera_engine::Generator;
use tessera_ssl::cli::config::{preset, Config};
use tessera_ssl::data::{self, CifarKind, FolderOptions, ImageLimits};
use tessera_ssl::methods::{Backbone, Method, SimClr};
use tessera_ssl::nn::{Optim, ProjectionHead};
use tessera_ssl::train::{self, RunDir, TrainConfig, TrainState};

/// A parser under test.
pub struct Target {
    pub name: &'static str,
    /// Valid inputs the mutations start from, each with its file name under
    /// `tests/fuzz/seeds/<target>/`.
    pub seeds: fn() -> Vec<(String, Vec<u8>)>,
    /// Writes the input (and any companion file) into the folder and loads it.
    pub run: fn(&Path, &[u8]) -> Result<(), String>,
}

pub const TARGETS: &[Target] = &[
    Target { name: "idx", seeds: || vec![("ten-images.idx".into(), idx_images(10))], run: run_idx },
    Target { name: "idx_gz", seeds: idx_gz_seeds, run: run_idx_gz },
    Target { name: "cifar", seeds: || vec![("three-records.bin".into(), cifar_records(3))], run: run_cifar },
    Target { name: "image_folder", seeds: image_seeds, run: run_image_folder },
    Target { name: "checkpoint", seeds: checkpoint_seeds, run: run_checkpoint },
    Target { name: "run_config", seeds: config_seeds, run: run_config },
];

pub fn target(name: &str) -> &'static Target {
    TARGETS.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no fuzz target {name}"))
}

impl Target {
    /// Where this target's committed seeds lie.
    pub fn seed_dir(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds").join(self.name)
    }

    /// The committed seeds, by file name.
    pub fn committed_seeds(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let Ok(entries) = std::fs::read_dir(self.seed_dir()) else { return Vec::new() };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        paths.sort();
        paths.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
    }

    /// What the mutations start from: the committed seeds, then each generated one that
    /// differs from all of them.
    pub fn all_seeds(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self.committed_seeds().into_iter().map(|(_, b)| b).collect();
        for (_, bytes) in (self.seeds)() {
            if !out.contains(&bytes) {
                out.push(bytes);
            }
        }
        out
    }
}

/// Bytes to gzip format (one member).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// An IDX image file of `n` 28×28 images.
pub fn idx_images(n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0x0803, n, 28, 28] {
        out.extend_from_slice(&u32::to_be_bytes(v));
    }
    out.extend((0..n as usize * 784).map(|i| (i * 7 % 251) as u8));
    out
}

fn idx_labels(n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0x0801, n] {
        out.extend_from_slice(&u32::to_be_bytes(v));
    }
    out.extend((0..n).map(|i| (i % 10) as u8));
    out
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn text<E: std::fmt::Display>(r: Result<impl Sized, E>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

/// The 10-image file gzipped whole and in two members (as `gzip -c a b` writes a file
/// split in two), and raw (compressed after mutation, see [`run_idx_gz`]).
fn idx_gz_seeds() -> Vec<(String, Vec<u8>)> {
    let raw = idx_images(10);
    let (a, b) = raw.split_at(3000);
    vec![
        ("ten-images.idx.gz".into(), gzip(&raw)),
        ("ten-images-two-members.idx.gz".into(), [gzip(a), gzip(b)].concat()),
        ("ten-images.idx".into(), raw.clone()),
    ]
}

/// The input as the image file of a 10-image pair whose label file is valid.
fn run_idx(dir: &Path, input: &[u8]) -> Result<(), String> {
    let (images, labels) = (dir.join("train-images-idx3-ubyte"), dir.join("train-labels-idx1-ubyte"));
    write(&images, input);
    write(&labels, &idx_labels(10));
    text(data::load_idx(&images, &labels, (0..10).map(|i| i.to_string()).collect()))
}

/// Mutated compressed bytes rarely get past the gzip checks, so a mutated raw seed is
/// compressed after mutation: valid gzip around broken IDX content.
fn run_idx_gz(dir: &Path, input: &[u8]) -> Result<(), String> {
    if input.starts_with(&[0x1f, 0x8b]) {
        run_idx(dir, input)
    } else {
        run_idx(dir, &gzip(input))
    }
}

pub fn cifar_records(n: usize) -> Vec<u8> {
    (0..n).flat_map(|r| std::iter::once((r % 10) as u8).chain((0..3072).map(move |i| ((i + r) % 256) as u8))).collect()
}

fn run_cifar(dir: &Path, input: &[u8]) -> Result<(), String> {
    let path = dir.join("data_batch_1.bin");
    write(&path, input);
    text(data::load_cifar_files(&[path], CifarKind::Cifar10, "fuzz"))
}

/// A 16×12 gradient as RGB, RGBA and grey PNG and as RGB and grey JPEG.
fn image_seeds() -> Vec<(String, Vec<u8>)> {
    let rgb = image::RgbImage::from_fn(16, 12, |x, y| image::Rgb([(x * 16) as u8, (y * 20) as u8, ((x + y) * 9) as u8]));
    let rgba = image::DynamicImage::ImageRgba8(image::DynamicImage::ImageRgb8(rgb.clone()).to_rgba8());
    let rgb = image::DynamicImage::ImageRgb8(rgb);
    let grey = image::DynamicImage::ImageLuma8(rgb.to_luma8());
    [("rgb.png", &rgb), ("rgba.png", &rgba), ("grey.png", &grey), ("rgb.jpg", &rgb), ("grey.jpg", &grey)]
        .into_iter()
        .map(|(name, img)| {
            let format = if name.ends_with(".png") { image::ImageFormat::Png } else { image::ImageFormat::Jpeg };
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, format).unwrap();
            (name.to_string(), out.into_inner())
        })
        .collect()
}

/// The limits the image target runs under: small enough that the largest image they admit
/// decodes well inside a case's time budget, so the budget itself is what is tested.
pub const FUZZ_IMAGE_LIMITS: ImageLimits = ImageLimits { max_pixels: 1 << 20, max_decoded_bytes: 16 << 20 };

/// The input as one image of a one-class folder (the extension from its magic bytes).
fn run_image_folder(dir: &Path, input: &[u8]) -> Result<(), String> {
    let ext = if input.starts_with(b"\x89PNG") { "png" } else { "jpg" };
    write(&dir.join("root/class/image").with_extension(ext), input);
    let opts = FolderOptions { limits: FUZZ_IMAGE_LIMITS, ..FolderOptions::default() };
    text(data::load_image_folder(dir.join("root"), opts))
}

/// A SimCLR model and its AdamW optimizer, built once per thread (the checkpoint loader
/// needs a model to load into). Its encoder is a two-layer MLP (with batch norm, so the
/// checkpoint holds buffers too) rather than a ResNet, so that the committed seed is a few
/// KB: the loader reads a checkpoint the same way whatever model wrote it.
struct Model {
    method: Box<dyn Method>,
    opt: Box<dyn Optim>,
}

const EPOCHS: usize = 3;
const PER_EPOCH: usize = 10;

thread_local! {
    static MODEL: RefCell<Model> = RefCell::new(small_model());
}

fn small_model() -> Model {
    let mut gen = Generator::new(21);
    let encoder = ProjectionHead::new(6, 8, 4, 2, true, &mut gen).unwrap();
    let backbone = Backbone { net: Box::new(encoder), dim: 4 };
    let method: Box<dyn Method> = Box::new(SimClr::new(backbone, 4, 3, 0.5, &mut gen).unwrap());
    let tcfg = TrainConfig {
        epochs: EPOCHS,
        max_steps: None,
        lr: 0.1,
        weight_decay: 1e-4,
        optimizer: "adamw".into(),
        betas: [0.9, 0.999],
        warmup_epochs: 0.0,
        autocast: None,
        seed: 0,
        layer_norms_every: 0,
    };
    let opt = train::make_optimizer(method.as_ref(), &tcfg).unwrap();
    Model { method, opt }
}

/// The model's checkpoint at epoch 1, batch 4 (step 14 of 3 epochs of 10 steps).
fn checkpoint_seeds() -> Vec<(String, Vec<u8>)> {
    let dir = std::env::temp_dir().join(format!("tessera-fuzz-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = RunDir { root: dir.clone() };
    let state = TrainState { epoch: 1, batch: 4, step: 14 };
    MODEL.with_borrow(|m| train::save_checkpoint(&run, m.method.as_ref(), m.opt.as_ref(), None, &state)).unwrap();
    let seed = std::fs::read(run.path(train::CHECKPOINT_FILE)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    vec![("epoch1-batch4.safetensors".into(), seed)]
}

/// The input as a run's checkpoint, loaded as `--resume` does: tensors, metadata, the
/// model and optimizer state, then the saved position against the schedule.
fn run_checkpoint(dir: &Path, input: &[u8]) -> Result<(), String> {
    let run = RunDir { root: dir.to_path_buf() };
    write(&run.path(train::CHECKPOINT_FILE), input);
    MODEL.with_borrow_mut(|m| {
        let state = train::load_checkpoint(&run, m.method.as_ref(), m.opt.as_mut(), None)?;
        Ok(train::check_position(&run, &state.unwrap_or_default(), EPOCHS, PER_EPOCH)?)
    })
}

/// Every method's resolved `config.toml`.
fn config_seeds() -> Vec<(String, Vec<u8>)> {
    tessera_ssl::methods::METHODS
        .iter()
        .map(|m| {
            let mut cfg = Config::from_toml(preset(m.name, "default").unwrap(), "preset").unwrap();
            cfg.resolve().unwrap();
            (format!("{}.toml", m.name), cfg.to_toml().unwrap().into_bytes())
        })
        .collect()
}

/// The input as a run's `config.toml`, read and checked as `eval` and `--resume` read it.
fn run_config(dir: &Path, input: &[u8]) -> Result<(), String> {
    let path = dir.join("config.toml");
    write(&path, input);
    Ok(Config::read_run_file(&path).map(|_| ())?)
}
