//! The run's diagnostics through the real binary: the pictures in `plots/` (drawn with the
//! embedded font, so on any machine), the per-epoch keys of `metrics.jsonl`, `tessera
//! inspect`, `tessera report`, and a deliberately collapsing run being flagged.

#[path = "common/cli.rs"]
mod cli;

use cli::{stderr, tessera};
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> cli::ScratchDir {
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

/// A two-step SimCLR run on 256 training and 128 test images, with the per-parameter norms
/// of both steps; `extra` (top-level keys) opens its configuration.
fn tiny_run(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let toml = format!(
        "{extra}train_images = 256\ntest_images = 128\nbatch_size = 32\nepochs = 1\n[eval]\nknn_k = 5\nlinear_epochs = 2\nbaselines = true\n[diagnostics]\nlayer_norms_every = 1\n"
    );
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
/// views, `rankme_projector` for methods with a projector, as SimCLR has both).
const EPOCH_KEYS: [&str; 10] = [
    "rankme",
    "rankme_projector",
    "uniformity",
    "collapse_std",
    "uniform_std",
    "dead_dims",
    "alignment",
    "knn_acc_epoch",
    "diagnostics_seconds",
    "loss",
];

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
    for key in EPOCH_KEYS.iter().filter(|k| **k != "loss").chain(&["singular_values", "projector_singular_values", "similarity_histograms"])
    {
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
    // Per run: five curves (loss, lr, accuracy, rankme, update ratio) and three diagnostic
    // pictures.
    assert_eq!(images.len(), 16, "pictures in the page");
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

/// The records of `metrics.jsonl` that hold per-parameter norms.
fn layer_norm_records(run: &Path) -> Vec<serde_json::Value> {
    records(run).into_iter().filter(|r| r["kind"] == "layer_norms").collect()
}

/// `[diagnostics] layer_norms_every = 1` logs every step's per-parameter norms and draws the
/// update-ratio picture, and the run trains bitwise as with the diagnostic off.
#[test]
fn layer_norms_are_logged_every_n_steps_without_changing_training() {
    let dir = temp_dir("layer-norms");
    let run = |name: &str, every: usize| {
        let toml = format!(
            "train_images = 64\ntest_images = 32\nbatch_size = 16\nepochs = 1\n[simclr]\nproj_hidden = 16\nproj_out = 8\n[eval]\nonline_probe = false\n[diagnostics]\nlayer_norms_every = {every}\n"
        );
        pretrain(&dir, name, &toml, &["--max-steps", "3", "--no-eval"]).0
    };
    let (on, off) = (run("on", 1), run("off", 0));
    assert!(std::fs::read(on.join("model.safetensors")).unwrap() == std::fs::read(off.join("model.safetensors")).unwrap());
    assert!(layer_norm_records(&off).is_empty() && !off.join("plots/update_ratio.png").exists());
    let logged = layer_norm_records(&on);
    assert_eq!(logged.iter().map(|r| r["step"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    // The first step's learning rate is 0 (the warm-up starts there): weights stay put.
    assert_eq!(logged[0]["layers"]["encoder.conv1.weight"]["update_ratio"], 0.0);
    let layers = logged[1]["layers"].as_object().unwrap();
    let conv = &layers["encoder.conv1.weight"];
    for key in ["grad_norm", "weight_norm", "update_norm", "update_ratio"] {
        assert!(conv[key].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "{key}: {conv}");
    }
    assert!(layers.keys().any(|k| k.starts_with("projector.")), "the projector's parameters are measured too");
    assert!(drawn_png(&std::fs::read(on.join("plots/update_ratio.png")).unwrap()), "update_ratio.png is blank or not a PNG");
    // The epoch record is still the last line (readers that take it from there keep working).
    assert!(records(&on).last().unwrap().get("epoch").is_some());
    std::fs::remove_dir_all(&dir).ok();
}

/// A ViT run draws the class token's attention per head and its rollout each epoch, and
/// `tessera inspect --attention` draws it from the saved run; a ResNet run says it has none.
#[test]
fn a_vit_run_draws_its_attention_maps() {
    let dir = temp_dir("attention");
    let toml = "encoder = \"vit-tiny\"\npatch_size = 7\ntrain_images = 64\ntest_images = 32\nbatch_size = 16\nepochs = 1\n[simclr]\nproj_hidden = 16\nproj_out = 8\n[eval]\nonline_probe = false\n";
    let (vit, _) = pretrain(&dir, "vit", toml, &["--max-steps", "1", "--no-eval"]);
    let picture = std::fs::read(vit.join("plots/attention-epoch01.png")).expect("plots/attention-epoch01.png is written");
    let img = image::load_from_memory(&picture).expect("a PNG");
    // 8 rows of images; image, 3 heads (ViT-Tiny) and the rollout side by side.
    assert!(img.width() > 4 * img.height() / 8 && img.height() > 8 * 28, "{}×{}", img.width(), img.height());
    let out = dir.join("attention.png");
    let o = tessera(&["inspect", "--run", vit.to_str().unwrap(), "--attention", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), picture, "inspect draws what the run drew of the same weights");
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["attention_picture"], out.display().to_string());
    let o = tessera(&["inspect", "--run", vit.to_str().unwrap(), "--attention", out.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("--force"), "an existing picture is kept: {}", stderr(&o));
    let html = dir.join("vit.html");
    let o = tessera(&["report", "--run", vit.to_str().unwrap(), "--out", html.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&html).unwrap().contains("attention, epoch 1"), "the report shows the attention picture");

    let resnet = tiny_run(&dir, "resnet", "");
    assert!(!resnet.join("plots/attention-epoch01.png").exists());
    let o = tessera(&["inspect", "--run", resnet.to_str().unwrap(), "--attention", dir.join("none.png").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("not a ViT"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
}
