//! Hostile run files through the real `tessera` binary: every configuration key with
//! out-of-range values, absurd thread counts, and a checkpoint whose saved position lies
//! past the schedule. Each must end in one line naming the file (or flag) and the key, with
//! exit code 1 — never a panic (101) — and leave the run folder as it was.

#[path = "common/cli.rs"]
mod cli;

use cli::tessera;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use tessera::ssl::cli::config::{preset, Config};

fn temp_dir(name: &str) -> cli::ScratchDir {
    cli::temp_dir("hostile-cli", name)
}

/// The run's error line, after checking it is one line and the exit code is 1.
fn error_line(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(o.status.code(), Some(1), "{what}: exit {:?}: {err}", o.status.code());
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err}");
    err
}

/// A method's resolved configuration as a TOML table (what a run folder saves).
fn resolved(method: &str) -> toml::Table {
    let mut cfg = Config::from_toml(preset(method, "default").unwrap(), "preset").unwrap();
    cfg.resolve().unwrap();
    toml::from_str(&cfg.to_toml().unwrap()).unwrap()
}

/// A run folder holding only `config.toml` (a run stopped before its first checkpoint).
fn run_folder(dir: &Path, table: &toml::Table) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.toml"), toml::to_string(table).unwrap()).unwrap();
    dir.join("config.toml")
}

/// Every leaf of a table as a dotted key and its value.
fn leaves(table: &toml::Table, prefix: &str, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => leaves(t, &key, out),
            _ => out.push((key, v.clone())),
        }
    }
}

fn set(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap();
    let mut t = table;
    for p in parts {
        t = t.get_mut(p).and_then(|v| v.as_table_mut()).unwrap();
    }
    t.insert(last.to_string(), value);
}

/// Values no key of its type should take, and ones of the wrong type.
fn hostile_values(v: &toml::Value) -> Vec<toml::Value> {
    use toml::Value::*;
    let s = |x: &str| String(x.to_string());
    match v {
        Integer(_) => vec![Integer(-1), Integer(1 << 32), Integer(i64::MAX), Float(0.5), s("x")],
        Float(_) => vec![Float(-1.0), Float(f64::NAN), Float(f64::INFINITY), Float(f64::NEG_INFINITY), Float(1e308), s("x")],
        Boolean(_) => vec![Integer(2), s("x")],
        _ => vec![s(""), s("x"), Integer(1)],
    }
}

/// Each key of each method's saved configuration, set to each hostile value in a run's
/// `config.toml`, then resumed. A refused value names the file and the key; an accepted
/// one gets as far as loading the dataset (which does not exist) — nothing panics, and
/// every key refuses at least one of its values.
#[test]
fn every_config_key_out_of_range_is_one_line_naming_the_file_and_the_key() {
    let dir = temp_dir("keys");
    let mut seen = std::collections::HashSet::new();
    let mut cases = 0;
    for info in tessera::ssl::methods::METHODS {
        let mut base = resolved(info.name);
        // Any value that passes the checks then fails fast at loading this dataset.
        base.insert("dataset".into(), toml::Value::String("mnist:/nonexistent-tessera-dataset".into()));
        // Saved only when set.
        base.insert("max_steps".into(), toml::Value::Integer(5));
        let mut all = Vec::new();
        leaves(&base, "", &mut all);
        for (key, value) in all.into_iter().filter(|(k, _)| seen.insert(k.clone())) {
            let mut refused = 0;
            for bad in hostile_values(&value) {
                let mut t = base.clone();
                set(&mut t, &key, bad.clone());
                let run = dir.join("run");
                let _ = std::fs::remove_dir_all(&run);
                let path = run_folder(&run, &t);
                let o = tessera(&["pretrain", "--resume", run.to_str().unwrap(), "--no-eval"]);
                let err = error_line(&o, &format!("{key} = {bad}"));
                cases += 1;
                let name = key.rsplit('.').next().unwrap();
                if err.contains(&*path.to_string_lossy()) && err.contains(name) {
                    refused += 1;
                } else {
                    assert!(
                        err.contains("nonexistent-tessera-dataset"),
                        "{key} = {bad}: neither refused naming the file and key nor accepted: {err}"
                    );
                }
            }
            assert!(refused > 0, "{key}: no hostile value was refused");
        }
    }
    println!("{cases} cases over {} keys", seen.len());
}

/// `threads` beyond the bound from a run's file, a `--config` file or the flag: one line
/// naming where it came from, at once (the pool is never built).
#[test]
fn absurd_thread_counts_are_refused_naming_their_origin() {
    let dir = temp_dir("threads");
    for n in [1_000_000i64, 1 << 32] {
        let mut t = resolved("simclr");
        t.insert("threads".into(), toml::Value::Integer(n));
        let run = dir.join(format!("run-{n}"));
        let path = run_folder(&run, &t);
        let start = Instant::now();
        let o = tessera(&["pretrain", "--resume", run.to_str().unwrap(), "--no-eval"]);
        let err = error_line(&o, "resume");
        assert!(err.contains(&*path.to_string_lossy()) && err.contains(&format!("threads = {n}")) && err.contains("1024"), "{err}");
        assert!(start.elapsed().as_secs_f64() < 5.0, "took {:?}", start.elapsed());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), toml::to_string(&t).unwrap(), "the run's config was rewritten");
    }
    let user = dir.join("user.toml");
    std::fs::write(&user, "threads = 5000\n").unwrap();
    let out = dir.join("never");
    let o = tessera(&["pretrain", "--config", user.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let err = error_line(&o, "--config");
    assert!(err.contains(&*user.to_string_lossy()) && err.contains("threads = 5000"), "{err}");
    let o = tessera(&["pretrain", "--threads", "4294967296", "--out", out.to_str().unwrap()]);
    let err = error_line(&o, "--threads");
    assert!(err.contains("--threads: threads = 4294967296"), "{err}");
    assert!(!out.exists(), "a run folder was created");
}

/// The values issue 21 saw accepted on `--resume` name the run's file.
#[test]
fn resume_value_errors_name_the_run_config() {
    let dir = temp_dir("values");
    for (key, value, needle) in [
        ("lr", toml::Value::Float(f64::NEG_INFINITY), "lr must be positive (got -inf)"),
        ("augment.flip_p", toml::Value::Float(1.5), "augment.flip_p must lie in [0, 1]"),
        ("augment", toml::Value::Integer(3), "augment"),
    ] {
        let mut t = resolved("simclr");
        set(&mut t, key, value);
        let run = dir.join(key);
        let path = run_folder(&run, &t);
        let o = tessera(&["pretrain", "--resume", run.to_str().unwrap(), "--no-eval"]);
        let err = error_line(&o, key);
        assert!(err.contains(&format!("{}: ", path.display())) && err.contains(needle), "{key}: {err}");
    }
}

/// A `--config` file that names its method (and its method's section) needs no `--method`:
/// the preset under it is that method's, not SimCLR's.
#[test]
fn a_config_file_chooses_the_method_and_its_preset() {
    let dir = temp_dir("config_method");
    let cfg = dir.join("rotation.toml");
    std::fs::write(&cfg, "method = \"rotation\"\ntrain_images = 64\ntest_images = 32\nbatch_size = 16\n[rotation]\nhead_hidden = 16\n")
        .unwrap();
    let run = dir.join("run");
    let o = tessera(&["pretrain", "--config", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--max-steps", "1", "--no-eval"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let saved: toml::Table = toml::from_str(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    assert_eq!(saved["method"].as_str(), Some("rotation"));
    assert!(saved.get("simclr").is_none(), "SimCLR's section leaked into a rotation run: {saved}");
}

/// A checkpoint whose saved position is past the schedule (or off it) is refused before
/// anything in the folder changes.
#[test]
fn a_checkpoint_position_past_the_schedule_is_refused_on_resume() {
    use tessera::ssl::nn::checkpoint::{load_tensors, save_tensors};
    let dir = temp_dir("position");
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, "train_images = 64\ntest_images = 32\nbatch_size = 16\nepochs = 2\nencoder = \"resnet-narrow\"\n[simclr]\nproj_hidden = 16\nproj_out = 8\n").unwrap();
    let run = dir.join("run");
    let o = tessera(&["pretrain", "--config", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--max-steps", "1", "--no-eval"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ckpt = run.join("checkpoint.safetensors");
    let (tensors, meta) = load_tensors(&ckpt).unwrap();
    let before: Vec<(String, Vec<u8>)> =
        ["config.toml", "metrics.jsonl"].iter().map(|f| (f.to_string(), std::fs::read(run.join(f)).unwrap())).collect();
    for (state, needle) in [
        (r#"{"epoch":0,"batch":1,"step":18446744073709551615}"#, "step 18446744073709551615"),
        (r#"{"epoch":9223372036854775807,"batch":0,"step":0}"#, "epoch 9223372036854775807"),
        (r#"{"epoch":0,"batch":1,"step":3}"#, "is step 1, not 3"),
        (r#"{"epoch":0,"batch":1,"step":-1}"#, "training state in the metadata"),
    ] {
        let mut meta = meta.clone();
        meta.insert("state".into(), state.into());
        save_tensors(&ckpt, &tensors, Some(meta)).unwrap();
        let o = tessera(&["pretrain", "--resume", run.to_str().unwrap(), "--no-eval"]);
        let err = error_line(&o, state);
        assert!(err.contains(&*ckpt.to_string_lossy()) && err.contains(needle), "{state}: {err}");
        for (f, bytes) in &before {
            assert!(&std::fs::read(run.join(f)).unwrap() == bytes, "{state}: {f} changed");
        }
    }
}

/// `[data] max_image_pixels` and `max_image_bytes` in a `--config` file reach the image
/// folder's loader: an image over the configured budget is refused from its header, in one
/// line naming the file, before a run folder exists; the same folder loads under the
/// defaults.
#[test]
fn a_folder_image_over_the_configured_budget_is_refused_naming_the_file() {
    use tessera::ssl::data::{save_image, Image};
    let dir = temp_dir("image-budget");
    let data = dir.join("images");
    let image = |side: usize| Image::new(3, side, side, vec![0.5; 3 * side * side]).unwrap();
    for split in ["train", "test"] {
        std::fs::create_dir_all(data.join(split).join("class")).unwrap();
        for i in 0..4 {
            save_image(data.join(split).join("class").join(format!("{i}.png")), &image(8)).unwrap();
        }
    }
    // 16×16 = 256 pixels, 768 bytes of 8-bit RGB; every other image is 64 pixels, 192 bytes.
    let big = data.join("train/class/9.png");
    save_image(&big, &image(16)).unwrap();
    let (dataset, out) = (format!("folder:{}", data.display()), dir.join("never"));
    let user = dir.join("user.toml");
    let pretrain = |with_config: bool| {
        let mut args = vec!["pretrain", "--dataset", &dataset, "--out", out.to_str().unwrap(), "--max-steps", "1", "--no-eval"];
        if with_config {
            args.extend(["--config", user.to_str().unwrap()]);
        }
        tessera(&args)
    };
    for (keys, needle) in [
        ("max_image_pixels = 100", "declares 16x16 (256 pixels), over the budget of 100 pixels"),
        ("max_image_bytes = 500", "(768 bytes decoded), over the budget of 500 bytes"),
    ] {
        std::fs::write(&user, format!("[data]\n{keys}\n")).unwrap();
        let err = error_line(&pretrain(true), keys);
        assert!(err.contains(&format!("{}: ", big.display())) && err.contains(needle), "{keys}: {err}");
        assert!(!out.exists(), "{keys}: a run folder was created");
    }
    // The images themselves are fine: under the defaults the loader gets past them (to the
    // size check, the 16×16 image being the odd one out).
    let err = error_line(&pretrain(false), "defaults");
    assert!(err.contains("image is 16x16 but"), "defaults: {err}");
    // Out of range in the file: refused naming the file and the key.
    std::fs::write(&user, "[data]\nmax_image_pixels = 0\n").unwrap();
    let err = error_line(&pretrain(true), "max_image_pixels = 0");
    assert!(err.contains(&format!("{}: data.max_image_pixels must lie in [1, ", user.display())), "{err}");
}
