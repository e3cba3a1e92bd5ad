//! A synthetic colour dataset: 32×32 RGB images of a shape (circle, square, triangle, cross,
//! ring) filled with a texture (solid, stripes, checker, dots) on a tinted background. The
//! class fixes the shape and texture, and the colours depend on the class and the shape, so
//! colour augmentations and colorization have real colour to work on. Position, size,
//! rotation, texture phase and colour shade vary per sample; everything is seeded.

use rayon::prelude::*;
use tessera_engine::Generator;

use super::augment::color::hsv_to_rgb;
use super::dataset::Dataset;
use super::error::{DataError, Result};

const SHAPES: [&str; 5] = ["circle", "square", "triangle", "cross", "ring"];
const TEXTURES: [&str; 4] = ["solid", "stripes", "checker", "dots"];

/// Parameters of [`synthetic_colour`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticConfig {
    /// Number of images.
    pub len: usize,
    /// Number of classes, 1 to 20 (5 shapes × 4 textures).
    pub num_classes: usize,
    /// Image side in pixels (at least 8).
    pub size: usize,
    /// Seed; image `i` is a function of `(seed, i)` only.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig { len: 10_000, num_classes: 10, size: 32, seed: 0 }
    }
}

/// Per-sample drawing parameters.
struct Scene {
    shape: usize,
    texture: usize,
    cx: f32,
    cy: f32,
    radius: f32,
    angle: f32,
    period: f32,
    phase: f32,
    fg: [f32; 3],
    accent: [f32; 3],
    bg: [[f32; 3]; 2],
    gradient: f32,
}

fn rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let (r, g, b) = hsv_to_rgb(h, s, v);
    [r, g, b]
}

fn scene(class: usize, size: usize, rng: &mut Generator) -> Scene {
    let (shape, texture) = (class % SHAPES.len(), class / SHAPES.len());
    let s = size as f32;
    let mut u = |lo: f32, hi: f32| lo + (hi - lo) * rng.next_f64() as f32;
    // The golden-ratio walk spreads class hues; the shape term makes colour depend on both.
    let hue = (class as f32 * 0.618_034 + shape as f32 * 0.11 + u(-0.03, 0.03)).rem_euclid(1.0);
    let value = u(0.75, 1.0);
    let radius = s * u(0.24, 0.38);
    Scene {
        shape,
        texture,
        cx: s / 2.0 + u(-0.12, 0.12) * s,
        cy: s / 2.0 + u(-0.12, 0.12) * s,
        radius,
        angle: u(0.0, std::f32::consts::TAU),
        period: u(3.0, 5.0),
        phase: u(0.0, 1.0),
        fg: rgb(hue, u(0.7, 0.95), value),
        accent: rgb((hue + 0.3 + 0.08 * shape as f32).rem_euclid(1.0), u(0.5, 0.8), value * 0.8),
        bg: [rgb((hue + 0.5).rem_euclid(1.0), u(0.15, 0.35), u(0.25, 0.45)), rgb((hue + 0.55).rem_euclid(1.0), u(0.1, 0.3), u(0.45, 0.6))],
        gradient: u(0.0, std::f32::consts::TAU),
    }
}

/// Whether the shape covers the point `(u, v)` in shape-aligned coordinates.
fn inside(shape: usize, u: f32, v: f32, r: f32) -> bool {
    match shape {
        0 => u * u + v * v <= r * r,
        1 => u.abs().max(v.abs()) <= 0.8 * r,
        2 => v <= 0.5 * r && v >= 1.732 * u.abs() - r,
        3 => (u.abs() <= r / 3.0 && v.abs() <= r) || (v.abs() <= r / 3.0 && u.abs() <= r),
        _ => {
            let d2 = u * u + v * v;
            d2 <= r * r && d2 >= (0.55 * r).powi(2)
        }
    }
}

/// Whether the texture shows the accent colour at `(u, v)`.
fn accent_at(texture: usize, u: f32, v: f32, period: f32, phase: f32) -> bool {
    let (a, b) = (u / period + phase, v / period + phase);
    match texture {
        0 => false,
        1 => a.rem_euclid(1.0) < 0.5,
        2 => (a.floor() + b.floor()).rem_euclid(2.0) < 1.0,
        _ => (a.rem_euclid(1.0) - 0.5).powi(2) + (b.rem_euclid(1.0) - 0.5).powi(2) < 0.09,
    }
}

/// Renders one C×H×W (3×size×size) image with 2×2 supersampling for smooth edges.
fn render(sc: &Scene, size: usize) -> Vec<u8> {
    let (sin, cos) = sc.angle.sin_cos();
    let (gs, gc) = sc.gradient.sin_cos();
    let n = size * size;
    let mut out = vec![0u8; 3 * n];
    for y in 0..size {
        for x in 0..size {
            let mut acc = [0.0f32; 3];
            for (oy, ox) in [(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)] {
                let (px, py) = (x as f32 + ox - sc.cx, y as f32 + oy - sc.cy);
                let (u, v) = (cos * px + sin * py, -sin * px + cos * py);
                let colour = if inside(sc.shape, u, v, sc.radius) {
                    if accent_at(sc.texture, u, v, sc.period, sc.phase) {
                        sc.accent
                    } else {
                        sc.fg
                    }
                } else {
                    let t = (0.5 + (gc * px + gs * py) / size as f32).clamp(0.0, 1.0);
                    [0, 1, 2].map(|k| sc.bg[0][k] + t * (sc.bg[1][k] - sc.bg[0][k]))
                };
                (0..3).for_each(|k| acc[k] += 0.25 * colour[k]);
            }
            for (k, a) in acc.iter().enumerate() {
                out[k * n + y * size + x] = (a.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    out
}

/// Generates the synthetic colour dataset: `len` images `[3, size, size]`, labels cycling
/// through the classes (`i % num_classes`, balanced), class names like `"circle-stripes"`.
/// Generation is parallel and deterministic from the seed.
pub fn synthetic_colour(cfg: SyntheticConfig) -> Result<Dataset> {
    let max = SHAPES.len() * TEXTURES.len();
    if !(1..=max).contains(&cfg.num_classes) {
        return Err(DataError::invalid("synthetic_colour", format!("num_classes must be in 1..={max}, got {}", cfg.num_classes)));
    }
    if cfg.size < 8 {
        return Err(DataError::invalid("synthetic_colour", format!("size must be at least 8, got {}", cfg.size)));
    }
    let root = Generator::new(cfg.seed);
    let images: Vec<Vec<u8>> =
        (0..cfg.len).into_par_iter().map(|i| render(&scene(i % cfg.num_classes, cfg.size, &mut root.fork(i as u64)), cfg.size)).collect();
    let classes = (0..cfg.num_classes).map(|k| format!("{}-{}", SHAPES[k % SHAPES.len()], TEXTURES[k / SHAPES.len()])).collect();
    let labels = (0..cfg.len).map(|i| (i % cfg.num_classes) as i64).collect();
    Dataset::new(format!("synthetic-colour/seed{}", cfg.seed), [3, cfg.size, cfg.size], images.concat(), labels, classes)
}

/// Training images of the `synthetic` dataset spec.
pub const SYNTHETIC_TRAIN_LEN: usize = 10_000;
/// Test images of the `synthetic` dataset spec.
pub const SYNTHETIC_TEST_LEN: usize = 2_000;

/// One split of the `synthetic` dataset spec: 32×32 colour images of 10 classes, 10,000 for
/// training (seed 0) and 2,000 for testing (seed 1, so no test image repeats a training one),
/// the sizes of the embedded Fashion-MNIST subset. Generating both takes about a second.
pub fn synthetic_split(split: super::Split) -> Result<Dataset> {
    let (len, seed, name) = match split {
        super::Split::Train => (SYNTHETIC_TRAIN_LEN, 0, "synthetic/train"),
        super::Split::Test => (SYNTHETIC_TEST_LEN, 1, "synthetic/test"),
    };
    Ok(synthetic_colour(SyntheticConfig { len, seed, ..SyntheticConfig::default() })?.renamed(name))
}
