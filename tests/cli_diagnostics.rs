//! The run's pictures through the real binary: drawn with the embedded font, so on any
//! machine.

#[path = "common/cli.rs"]
mod cli;

use cli::{stderr, tessera};
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    cli::temp_dir("diag", name)
}

/// Runs `tessera pretrain --method simclr` with the configuration `toml` and `flags` into
/// `dir/name`, checks that it succeeded, and returns the run folder and its stdout.
fn pretrain(dir: &Path, name: &str, toml: &str, flags: &[&str]) -> (PathBuf, String) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, toml).unwrap();
    let out = dir.join(name);
    let mut args = vec!["pretrain", "--method", "simclr", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(flags);
    let o = tessera(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    (out, String::from_utf8_lossy(&o.stdout).to_string())
}

/// A two-step SimCLR run on 256 training and 128 test images; `extra` (top-level keys)
/// opens its configuration.
fn tiny_run(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let toml =
        format!("{extra}train_images = 256\ntest_images = 128\nbatch_size = 32\nepochs = 1\n[eval]\nknn_k = 5\nlinear_epochs = 2\nbaselines = true\n");
    pretrain(dir, name, &toml, &["--max-steps", "2"]).0
}

/// Whether `png` decodes and draws more than its background: some pixels are dark (text,
/// axes, curves).
fn drawn_png(png: &[u8]) -> bool {
    let Ok(img) = image::load_from_memory_with_format(png, image::ImageFormat::Png) else { return false };
    img.to_luma8().pixels().filter(|p| p.0[0] < 128).count() > 100
}

#[test]
fn curves_are_drawn_with_the_embedded_font() {
    let dir = temp_dir("font");
    let run = tiny_run(&dir, "run", "");
    let loss = std::fs::read(run.join("plots/loss.png")).expect("plots/loss.png is written");
    assert!(drawn_png(&loss), "loss.png is blank or not a PNG");
    // The title band (top 30 rows) holds the caption's text: no system font was needed.
    let img = image::load_from_memory(&loss).unwrap().to_luma8();
    let title = (0..img.width()).flat_map(|x| (0..30).map(move |y| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0[0] < 128).count();
    assert!(title > 20, "the title band has {title} dark pixels: no text was drawn");
    std::fs::remove_dir_all(&dir).ok();
}
