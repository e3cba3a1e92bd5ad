//! The run's diagnostics through the real binary: the pictures in `plots/` (drawn with the
//! embedded font, so on any machine), the per-epoch keys of `metrics.jsonl`, `tessera
//! inspect`, `tessera report`, and a deliberately collapsing run being flagged.

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

fn records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The diagnostics' keys every epoch record carries (`alignment` for methods with augmented
/// views, as SimCLR has).
const EPOCH_KEYS: [&str; 9] =
    ["rankme", "uniformity", "collapse_std", "uniform_std", "dead_dims", "alignment", "knn_acc_epoch", "diagnostics_seconds", "loss"];

#[test]
fn a_run_draws_its_curves_with_the_embedded_font_and_its_diagnostics_each_epoch() {
    let dir = temp_dir("font");
    let run = tiny_run(&dir, "run", "");
    let loss = std::fs::read(run.join("plots/loss.png")).expect("plots/loss.png is written");
    assert!(drawn_png(&loss), "loss.png is blank or not a PNG");
    // The title band (top 30 rows) holds the caption's text: no system font was needed.
    let img = image::load_from_memory(&loss).unwrap().to_luma8();
    let title = (0..img.width()).flat_map(|x| (0..30).map(move |y| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0[0] < 128).count();
    assert!(title > 20, "the title band has {title} dark pixels: no text was drawn");
    for name in ["spectrum", "similarity", "pca"] {
        let png = std::fs::read(run.join(format!("plots/{name}-epoch01.png"))).unwrap_or_else(|_| panic!("plots/{name}-epoch01.png"));
        assert!(drawn_png(&png), "{name}-epoch01.png is blank or not a PNG");
    }
    let epoch = records(&run).into_iter().find(|r| r.get("epoch").is_some()).expect("an epoch record");
    for key in EPOCH_KEYS {
        assert!(epoch.get(key).and_then(|v| v.as_f64()).is_some_and(f64::is_finite), "epoch record lacks {key}: {epoch}");
    }
    let knn = epoch["knn_acc_epoch"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&knn), "knn_acc_epoch {knn}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn inspect_and_report_read_saved_runs() {
    let dir = temp_dir("report");
    let (a, b) = (tiny_run(&dir, "a", ""), tiny_run(&dir, "b", "seed = 7\n"));
    let json_out = dir.join("inspect.json");
    let o = tessera(&["inspect", "--run", a.to_str().unwrap(), "--out", json_out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect prints one JSON line");
    for key in EPOCH_KEYS.iter().filter(|k| **k != "loss").chain(&["singular_values", "similarity_histograms"]) {
        assert!(line.get(key).is_some(), "inspect lacks {key}: {line}");
    }
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_out).unwrap()).unwrap();
    assert_eq!(saved["rankme"], line["rankme"]);
    let o = tessera(&["inspect", "--run", a.to_str().unwrap(), "--out", json_out.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("--force"), "{}", stderr(&o));

    let html_out = dir.join("report.html");
    let report = |extra: &[&str]| {
        let mut args = vec!["report", "--run", a.to_str().unwrap(), "--run", b.to_str().unwrap(), "--out", html_out.to_str().unwrap()];
        args.extend_from_slice(extra);
        tessera(&args)
    };
    let o = report(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(&html_out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for run in [&a, &b] {
        assert!(html.contains(&run.display().to_string()), "the report lacks {}", run.display());
    }
    for needle in ["kNN acc", "random weights", "raw pixels", "rankme", "knn_acc_epoch", "temperature"] {
        assert!(html.contains(needle), "the report lacks {needle}");
    }
    assert!(!html.contains("http://") && !html.contains("https://"), "the page must not reach the network");
    let images: Vec<&str> = html.split("<img src=\"data:image/png;base64,").skip(1).map(|s| &s[..s.find('"').unwrap()]).collect();
    // Per run: four curves (loss, lr, accuracy, rankme) and three diagnostic pictures.
    assert_eq!(images.len(), 14, "pictures in the page");
    for b64 in images {
        assert!(drawn_png(&base64::decode(b64).expect("base64")), "an inlined picture does not decode as a drawn PNG");
    }
    // Never overwritten silently.
    let o = report(&[]);
    assert!(!o.status.success() && stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(report(&["--force"]).status.success());
    let o = tessera(&["report", "--run", dir.join("missing").to_str().unwrap(), "--out", dir.join("x.html").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).lines().count() == 1 && stderr(&o).contains("not a run folder"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
}

/// SimCLR pushed into collapse — a learning rate 500× the preset's, no warm-up, a
/// temperature of 5 that all but removes the negatives' repulsion, a 16-wide projector
/// hidden layer — is flagged within one short epoch (8 steps), where the same run at the
/// preset's rate is not.
#[test]
fn a_collapsing_run_is_flagged_by_the_collapse_diagnostics() {
    let dir = temp_dir("collapse");
    let run = |name: &str, lr: &str| {
        let toml = format!(
            "train_images = 256\ntest_images = 128\nbatch_size = 32\nepochs = 1\nlr = {lr}\nwarmup_epochs = 0\n[simclr]\ntemperature = 5.0\nproj_hidden = 16\n[eval]\nonline_probe = false\n"
        );
        let (out, stdout) = pretrain(&dir, name, &toml, &["--no-eval"]);
        let epoch = records(&out).into_iter().find(|r| r.get("epoch").is_some()).expect("an epoch record");
        (stdout, epoch)
    };
    let (stdout, collapsed) = run("collapsed", "1.0");
    let (std, uniform, rank) =
        (collapsed["collapse_std"].as_f64().unwrap(), collapsed["uniform_std"].as_f64().unwrap(), collapsed["rankme"].as_f64().unwrap());
    assert!(std < 0.1 * uniform && rank < 2.5, "not flagged: collapse_std {std} (uniform {uniform}), rankme {rank}");
    assert!(stdout.contains("the representation is collapsing"), "{stdout}");
    let (stdout, healthy) = run("healthy", "0.002");
    let (std, rank) = (healthy["collapse_std"].as_f64().unwrap(), healthy["rankme"].as_f64().unwrap());
    assert!(std > 0.2 * uniform && rank > 10.0, "healthy run flagged: collapse_std {std}, rankme {rank}");
    assert!(!stdout.contains("collapsing"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}
