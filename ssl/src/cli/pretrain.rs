//! `tessera pretrain`, `eval` and `embed`: configuration, the run folder, training, the
//! final report and plots.

use super::assemble::{build_loader, build_method, device_of, load_splits};
use super::attention_pictures::{write_attention_picture, ATTENTION_PICTURE};
use super::config::{preset, table_has_key, Config, KeyError};
use super::diagnose::{self, Diagnostics};
use super::diagnostic_pictures::write_diagnostic_pictures;
use super::layer_norm_picture::{write_update_ratio_picture, UPDATE_RATIO_PICTURE};
use super::{pictures, plots, progress::Progress, PretrainArgs};
use crate::data::{DataRecipe, Dataset, ViewAugment};
use crate::eval::{encode_dataset, knn_accuracy, linear_probe_accuracy, pixel_features, LinearProbeConfig};
use crate::methods::Method;
use crate::nn::{Pool, WithPool};
use crate::train::{self, load_checkpoint, make_optimizer, OnlineProbe, OpenMode, RunDir, Stop, TrainConfig, TrainState};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tessera_engine::{Generator, Tensor};

/// Where a run's settings came from, so an error names the flag or the file that set
/// the bad value: a flag, else the `--config` file where it holds the key, else the base
/// (the preset, or the resumed run's `config.toml`).
struct Origins {
    base: String,
    user: Option<(String, toml::Table)>,
    flags: Vec<&'static str>,
}

impl Origins {
    fn of(&self, key: &str) -> String {
        if self.flags.contains(&key) {
            return format!("--{}", key.replace('_', "-"));
        }
        match &self.user {
            Some((path, table)) if table_has_key(table, key) => path.clone(),
            _ => self.base.clone(),
        }
    }

    /// `origin: message`, the origin being where `e.key` was set.
    fn name(&self, e: KeyError) -> String {
        format!("{}: {}", self.of(&e.key), e.msg)
    }
}

/// Preset, then `--config`, then flags (and, on resume, the run's saved config first).
/// Also returns the `--config` file's path when it has an `[augment]` table (which only
/// contrastive views read: see [`note_unread_augment`]).
fn resolve_config(a: &PretrainArgs) -> crate::Result<(Config, Option<String>)> {
    let user = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            Some((p.display().to_string(), text, table))
        }
        None => None,
    };
    // The preset is the one of the method and dataset the run will have: a flag wins, then
    // the user's file, then the defaults.
    let chosen = |flag: &Option<String>, key: &str, default: &'static str| -> String {
        let from_file = user.as_ref().and_then(|(_, _, t)| t.get(key)).and_then(|v| v.as_str()).map(str::to_string);
        flag.clone().or(from_file).unwrap_or_else(|| default.to_string())
    };
    let (mut cfg, base) = if let Some(dir) = &a.resume {
        let p = dir.join("config.toml");
        (Config::read_file(&p)?, p.display().to_string())
    } else {
        let (method, dataset) = (chosen(&a.method, "method", "simclr"), chosen(&a.dataset, "dataset", "default"));
        let origin = format!("preset {method}/{dataset}");
        (Config::from_toml(preset(&method, &dataset)?, &origin)?, origin)
    };
    let mut origins = Origins { base, user: None, flags: Vec::new() };
    let augment_file = user.as_ref().filter(|(_, _, t)| t.contains_key("augment")).map(|(p, _, _)| p.clone());
    if let Some((path, text, table)) = user {
        cfg = cfg.merged_with(&text, &path)?;
        origins.user = Some((path, table));
    }
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = &a.$f { cfg.$f = v.clone().into(); origins.flags.push(stringify!($f)); } )* };
    }
    set!(method, encoder, dataset, epochs, batch_size, lr, device, precision, threads, seed, pool, max_steps, patch_size);
    cfg.resolve().map_err(|e| origins.name(e))?;
    // A method runs only on the datasets it has a preset for.
    preset(&cfg.method, &cfg.dataset).map_err(|m| origins.name(KeyError::new("dataset", m)))?;
    device_of(&cfg).map_err(|m| origins.name(KeyError::new("device", m)))?;
    Ok((cfg, augment_file))
}

/// `[augment]` sets the contrastive view pipeline; a method whose views are all fixed
/// (MAE's light crop, a pretext task's plain images) does not read it, so a user who edits
/// it for such a method is told so instead of training on a pipeline they did not ask for.
fn note_unread_augment(augment_file: Option<&str>, method: &str, recipe: &DataRecipe) {
    if let Some(path) = augment_file {
        if !recipe.views.contains(&ViewAugment::Contrastive) {
            let views: Vec<&str> = recipe.views.iter().map(|v| v.describe()).collect();
            eprintln!("note: {path}: [augment] is not read by {method}, whose view is {}", views.join(" and "));
        }
    }
}

/// Sizes rayon's global pool as the config asks (0: rayon's default, every core). Only a
/// process's first call configures it; later ones (several runs in one test process) keep
/// the pool there is. A pool that cannot start its threads is an error, not a panic later.
fn configure_threads(threads: usize) -> crate::Result<()> {
    if threads == 0 {
        return Ok(());
    }
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build_global() {
        // Only a failure to spawn carries an io::Error as its source.
        Err(e) if std::error::Error::source(&e).is_some() => {
            Err(format!("threads = {threads}: cannot start the worker threads: {e}").into())
        }
        _ => Ok(()),
    }
}

fn default_out(method: &str) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    PathBuf::from("runs").join(format!("{method}-{secs}"))
}

/// Accuracy of one feature set under both protocols.
struct Scores {
    knn: f64,
    knn_weighted: f64,
    linear: f64,
}

fn score(train: &Tensor, test: &Tensor, tr: &Dataset, te: &Dataset, cfg: &Config) -> crate::Result<Scores> {
    let k = knn_accuracy(train, tr.labels(), test, te.labels(), tr.num_classes(), cfg.eval.knn_k, cfg.eval.knn_temperature)?;
    let lp = LinearProbeConfig { epochs: cfg.eval.linear_epochs, lr: cfg.eval.linear_lr, seed: cfg.seed, ..LinearProbeConfig::default() };
    let linear = linear_probe_accuracy(train, tr.labels(), test, te.labels(), tr.num_classes(), &lp)?;
    Ok(Scores { knn: k.majority, knn_weighted: k.weighted, linear })
}

/// `tessera pretrain`: returns the run folder.
pub fn run(a: &PretrainArgs) -> crate::Result<PathBuf> {
    let t0 = Instant::now();
    let (cfg, augment_file) = resolve_config(a)?;
    configure_threads(cfg.threads)?;
    super::configure_matmul_threads(&cfg.encoder);
    // The whole run on one of the pool's workers: each op then shares its work with the
    // other workers instead of waking them and parking this thread (see `on_pool_worker`).
    tessera_engine::cpu::on_pool_worker(|| train_and_evaluate(a, cfg, augment_file.as_deref(), t0))
}

/// Pretraining and its evaluation for a resolved configuration: returns the run folder.
fn train_and_evaluate(a: &PretrainArgs, cfg: Config, augment_file: Option<&str>, t0: Instant) -> crate::Result<PathBuf> {
    let (train_ds, test_ds) = load_splits(&cfg)?;
    let train_ds = Arc::new(train_ds);
    if cfg.batch_size > train_ds.len() {
        return Err(format!("batch size {} is larger than the dataset ({} images)", cfg.batch_size, train_ds.len()).into());
    }
    // Everything that can fail on the configuration happens before the run folder exists.
    let [c, h, _] = train_ds.image_shape();
    let norm = train_ds.pixel_stats();
    let method = build_method(&cfg, c, h, &train_ds, a.resume.as_deref())?;
    method.to_device(device_of(&cfg)?)?;
    let recipe = method.data_recipe();
    note_unread_augment(augment_file, &cfg.method, &recipe);
    let loader = build_loader(&cfg, train_ds.clone(), norm, &recipe)?;
    let (root, mode) = match (&a.resume, &a.out) {
        (Some(r), _) => (r.clone(), OpenMode::Resume),
        (None, Some(o)) => (o.clone(), if a.force { OpenMode::Force } else { OpenMode::New }),
        (None, None) => (default_out(&cfg.method), OpenMode::New),
    };
    let run = RunDir::open(&root, mode)?;
    let tcfg = TrainConfig {
        epochs: cfg.epochs,
        max_steps: cfg.max_steps,
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        optimizer: cfg.optimizer.clone(),
        betas: cfg.betas,
        warmup_epochs: cfg.warmup_epochs,
        autocast: cfg.autocast()?,
        seed: cfg.seed,
        layer_norms_every: cfg.diagnostics.layer_norms_every,
    };
    let mut opt = make_optimizer(method.as_ref(), &tcfg)?;
    let mut probe = if cfg.eval.online_probe {
        Some(OnlineProbe::new(method.feature_dim(), train_ds.num_classes(), 1e-2, &mut Generator::new(cfg.seed ^ 0x9E))?)
    } else {
        None
    };
    let state = if mode == OpenMode::Resume {
        let state = load_checkpoint(&run, method.as_ref(), opt.as_mut(), probe.as_mut())?.unwrap_or_else(|| {
            println!("{}: no checkpoint yet (the run stopped before its first one): starting from step 0", run.root.display());
            TrainState::default()
        });
        // Checked before anything in the folder changes: a bad position leaves it as it was.
        train::check_position(&run, &state, cfg.epochs, loader.num_batches())?;
        run.truncate_metrics(state.step)?;
        state
    } else {
        TrainState::default()
    };
    run.write_atomic("config.toml", cfg.to_toml()?.as_bytes())?;
    for (name, bytes) in method.run_files()? {
        run.write_atomic(name, &bytes)?;
    }
    println!(
        "tessera pretrain: {} / {} on {} ({} images, {} classes), {} epochs of {} steps, batch {}, {} threads → {}",
        cfg.method,
        cfg.encoder,
        cfg.dataset,
        train_ds.len(),
        train_ds.num_classes(),
        cfg.epochs,
        loader.num_batches(),
        cfg.batch_size,
        rayon::current_num_threads(),
        run.root.display()
    );

    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupt.clone();
        // A second handler cannot be installed in the same process (tests): ignore that.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    }
    let test_labels = Tensor::from_slice(test_ds.labels(), &[test_ds.len()])?;
    let method_ref: &dyn Method = method.as_ref();
    let picture_images = pictures::fixed_images(&test_ds, pictures::PICTURE_IMAGES)?;
    let diagnostics = Diagnostics::new(&cfg, &train_ds, &test_ds, norm, &recipe)?;
    let plots_dir = run.path("plots");
    let eval_probe = |r: &mut train::EpochRecord, probe: Option<&OnlineProbe>| -> crate::Result<()> {
        // The online probe reads the whole test split; the diagnostics its first images.
        // `diagnostics_seconds` is the diagnostics' own time, without the probe's.
        let start = Instant::now();
        let mut probe_time = std::time::Duration::ZERO;
        let held_out = match probe {
            Some(p) => {
                let feats = encode_dataset(method_ref.encoder(), &test_ds, 512, Some(norm))?;
                r.online_probe_acc = Some(p.evaluate(&feats, &test_labels)?);
                probe_time = start.elapsed();
                feats.narrow(0, 0, diagnostics.held_out().len())?
            }
            None => diagnostics.encode_held_out(method_ref.encoder())?,
        };
        let measured = diagnostics.measure(method_ref, &held_out)?;
        write_diagnostic_pictures(&measured, &plots_dir, r.epoch)?;
        let attention = plots_dir.join(pictures::epoch_file(ATTENTION_PICTURE, r.epoch));
        write_attention_picture(method_ref.encoder(), &picture_images, norm, &attention)?;
        write_update_ratio_picture(&run.metrics()?, &plots_dir.join(UPDATE_RATIO_PICTURE))?;
        if let Some(w) = measured.collapse_warning() {
            println!("{w}");
        }
        r.method_metrics.extend(measured.scalars);
        r.method_metrics.insert("diagnostics_seconds".into(), (start.elapsed() - probe_time).as_secs_f64());
        // What the method makes of fixed test images (reconstructions, colorizations).
        pictures::write_picture(method_ref, &picture_images, norm, |name| plots_dir.join(pictures::epoch_file(name, r.epoch)))?;
        Ok(())
    };
    let mut progress = Progress::new(loader.num_batches(), cfg.epochs, cfg.batch_size, Box::new(eval_probe));
    let (state, stop) =
        train::pretrain(method_ref, &loader, &recipe, opt.as_mut(), probe.as_mut(), &run, &tcfg, state, &interrupt, &mut progress)?;
    drop(progress);
    match stop {
        Stop::Interrupted => {
            println!("interrupted at step {}: checkpoint saved; continue with --resume {}", state.step, run.root.display());
            return Ok(run.root);
        }
        Stop::MaxSteps => println!(
            "stopped after {} steps (--max-steps); continue with --resume {} and a larger --max-steps",
            state.step,
            run.root.display()
        ),
        Stop::Finished => println!("pretraining finished: {} steps in {:.0} s", state.step, t0.elapsed().as_secs_f64()),
    }
    let train_seconds = t0.elapsed().as_secs_f64();
    if !a.no_eval {
        final_report(&cfg, method_ref, &train_ds, &test_ds, norm, &run, c, h, train_seconds, t0)?;
    }
    write_plots(&run);
    Ok(run.root)
}

#[allow(clippy::too_many_arguments)]
fn final_report(
    cfg: &Config,
    method: &dyn Method,
    tr: &Dataset,
    te: &Dataset,
    norm: (f32, f32),
    run: &RunDir,
    c: usize,
    h: usize,
    train_seconds: f64,
    t0: Instant,
) -> crate::Result<()> {
    let e = |e: tessera_autograd::Error| e.to_string();
    let features_tr = encode_dataset(method.encoder(), tr, 512, Some(norm)).map_err(e)?;
    let features_te = encode_dataset(method.encoder(), te, 512, Some(norm)).map_err(e)?;
    let trained = score(&features_tr, &features_te, tr, te, cfg)?;
    // (label, metrics key prefix, scores)
    let mut rows = vec![(format!("{} {} (trained)", cfg.method, cfg.encoder), "", trained)];
    if let Some(vit) = method.encoder().as_vision_transformer() {
        // A ViT's other pool too (class token beside the mean of the patch tokens, or the
        // reverse): which one probes better differs between methods.
        let (pool, name, key) = match vit.config().pool {
            Pool::Mean => (Pool::Token, "class token", "cls_"),
            Pool::Token => (Pool::Mean, "mean of patch tokens", "mean_"),
        };
        let view = WithPool { vit, pool };
        let (otr, ote) = (encode_dataset(&view, tr, 512, Some(norm)).map_err(e)?, encode_dataset(&view, te, 512, Some(norm)).map_err(e)?);
        rows.push((format!("{} {} (trained), {name}", cfg.method, cfg.encoder), key, score(&otr, &ote, tr, te, cfg)?));
    }
    if method.dual_encoder().is_some() {
        // An image–text model's own output is the joint space (open_clip's `encode_image`,
        // where zero-shot classifies); the representation row above is the CLIP paper's
        // linear-probe feature (before the projection). Both, so neither protocol is guessed.
        let joint = (diagnose::projector_output(method, &features_tr)?, diagnose::projector_output(method, &features_te)?);
        if let (Some(jtr), Some(jte)) = joint {
            rows.push((format!("{} {} joint space (image embedding)", cfg.method, cfg.encoder), "joint_", score(&jtr, &jte, tr, te, cfg)?));
        }
    }
    if cfg.eval.baselines {
        // The method's own encoder before any step (same seed, same init: MAE's and CLIP's
        // are not timm's), so the row says what pretraining added.
        let untrained = build_method(cfg, c, h, tr, None)?;
        let random = untrained.encoder();
        random.to_device(method.encoder().device())?;
        rows.push((
            format!("{} random weights", cfg.encoder),
            "random_",
            score(
                &encode_dataset(random, tr, 512, Some(norm)).map_err(e)?,
                &encode_dataset(random, te, 512, Some(norm)).map_err(e)?,
                tr,
                te,
                cfg,
            )?,
        ));
        rows.push((
            "raw pixels".into(),
            "pixels_",
            score(&pixel_features(tr, Some(norm))?, &pixel_features(te, Some(norm))?, tr, te, cfg)?,
        ));
    }
    let mut record = json!({"eval": "final", "knn_k": cfg.eval.knn_k, "train_seconds": train_seconds});
    for (_, key, s) in &rows {
        record[format!("{key}knn_acc")] = json!(s.knn);
        record[format!("{key}knn_weighted_acc")] = json!(s.knn_weighted);
        record[format!("{key}linear_acc")] = json!(s.linear);
    }
    let zero_shot = super::zero_shot::zero_shot_score(method, te, norm, &super::zero_shot::templates(None)?)?;
    if let Some(acc) = zero_shot {
        record["zero_shot_acc"] = json!(acc);
    }
    run.append_metric(&record)?;
    println!();
    println!("| features | kNN acc (k={}) | kNN weighted | linear acc |", cfg.eval.knn_k);
    println!("|---|---|---|---|");
    for (name, _, s) in &rows {
        println!("| {name} | {:.3} | {:.3} | {:.3} |", s.knn, s.knn_weighted, s.linear);
    }
    if let Some(acc) = zero_shot {
        println!();
        println!("zero-shot accuracy ({} classes from text prompts, no training images): {acc:.3}", te.num_classes());
    }
    println!();
    println!("pretraining {:.0} s, total {:.0} s; run folder {}", train_seconds, t0.elapsed().as_secs_f64(), run.root.display());
    Ok(())
}

/// Loss, learning-rate, accuracy and effective-rank curves from `metrics.jsonl` (best effort: a plotting
/// failure is reported, not fatal).
fn write_plots(run: &RunDir) {
    let Ok(records) = run.metrics() else { return };
    let series = |key: &str| -> Vec<(f64, f64)> {
        records.iter().filter_map(|r| Some((r.get("epoch")?.as_f64()?, r.get(key)?.as_f64()?))).collect()
    };
    let plots = [
        ("loss.png", "pretraining loss", vec![("loss", series("loss"))]),
        ("lr.png", "learning rate (end of epoch)", vec![("lr", series("lr"))]),
        (
            "accuracy.png",
            "accuracy: online linear probe, per-epoch kNN",
            vec![
                ("test", series("online_probe_acc")),
                ("train batches", series("online_probe_train_acc")),
                ("kNN, held-out subset", series("knn_acc_epoch")),
            ],
        ),
        (
            "rankme.png",
            "effective rank of the held-out features (RankMe)",
            vec![("encoder", series("rankme")), ("projector", series("rankme_projector"))],
        ),
    ];
    for (file, title, s) in plots {
        if let Err(e) = plots::line_chart(&run.path("plots").join(file), title, ("epoch", ""), &s) {
            eprintln!("warning: {e}");
        }
    }
}
