//! The `tessera` command-line program: `pretrain`, `eval`, `embed`, `zero-shot`, `reconstruct`,
//! `inspect`, `report` and `methods`, the same for every method. Errors print one readable line
//! on stderr and exit non-zero, before work starts wherever they can be detected early.

mod assemble;
mod attention_pictures;
pub mod config;
mod diagnose;
mod diagnostic_pictures;
mod embed;
mod eval;
mod inspect;
mod layer_norm_picture;
mod methods_list;
pub mod npy;
mod pictures;
mod plots;
mod pretrain;
mod progress;
mod report;
mod report_html;
mod saved_run;
mod zero_shot;

pub use assemble::{build_encoder, build_method, load_dataset};
pub use methods_list::methods_table;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "tessera", version, about = "Self-supervised pretraining and evaluation with tessera")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pretrain an encoder with a self-supervised method, then evaluate it.
    Pretrain(PretrainArgs),
    /// Evaluate a run's encoder: prints one JSON line.
    Eval(EvalArgs),
    /// Write a run's encoder features to a NumPy .npy file.
    Embed(EmbedArgs),
    /// List the registered methods: family, default encoder, presets, paper.
    Methods,
    /// Zero-shot accuracy of an image–text run (CLIP) from class prompts: one JSON line.
    ZeroShot(ZeroShotArgs),
    /// Draw a run's method picture (MAE/SimMIM reconstructions, colorizations) of its fixed
    /// test images into a PNG.
    Reconstruct(ReconstructArgs),
    /// Representation diagnostics of a saved run (effective rank, uniformity, alignment,
    /// collapse, kNN on the held-out subset): prints one JSON line.
    Inspect(InspectArgs),
    /// One self-contained HTML page about one or more runs, side by side: configuration,
    /// curves, final evaluation against the baselines, diagnostics per epoch, pictures.
    Report(ReportArgs),
}

#[derive(Args)]
struct InspectArgs {
    #[arg(long)]
    run: PathBuf,
    /// Also write the JSON line to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Draw a ViT run's attention (class token per head of the last block, and rollout) on
    /// its fixed test images into this PNG.
    #[arg(long)]
    attention: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct ReportArgs {
    /// A run folder (repeat for several runs, shown side by side).
    #[arg(long, required = true)]
    run: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct ZeroShotArgs {
    #[arg(long)]
    run: PathBuf,
    /// Evaluate on another dataset than the run's (its test split and class names).
    #[arg(long)]
    dataset: Option<String>,
    /// Prompt templates, one per line with {} for the class name (default: the caption templates).
    #[arg(long)]
    templates: Option<PathBuf>,
}

#[derive(Args)]
struct ReconstructArgs {
    #[arg(long)]
    run: PathBuf,
    /// The PNG to write.
    #[arg(long)]
    out: PathBuf,
    /// Test images (rows) to draw.
    #[arg(long, default_value_t = pictures::PICTURE_IMAGES)]
    images: usize,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

/// Flags of `tessera pretrain`; each overrides the preset and the `--config` file.
#[derive(Args, Clone, Default)]
pub struct PretrainArgs {
    /// A registered method (`tessera methods` lists them; the help lists the registry's names)
    #[arg(long)]
    pub method: Option<String>,
    /// resnet-narrow, resnet18, resnet34, resnet50, vit-tiny, vit-small
    #[arg(long)]
    pub encoder: Option<String>,
    /// ViT patch size (default: from the image side, 4 on 28×28 and 32×32)
    #[arg(long)]
    pub patch_size: Option<usize>,
    /// ViT features: cls (the class token) | mean (the mean of the patch tokens)
    #[arg(long)]
    pub pool: Option<String>,
    /// default | fashion-mnist:DIR | mnist:DIR | cifar10:DIR | folder:DIR | pairs:DIR
    #[arg(long)]
    pub dataset: Option<String>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// End after this many optimizer steps in all (resumed steps included); the schedule
    /// still spans --epochs.
    #[arg(long)]
    pub max_steps: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    /// cpu | cuda
    #[arg(long)]
    pub device: Option<String>,
    /// f32 | bf16-mixed | f16-mixed (autocast for the training step's matmuls and convolutions)
    #[arg(long)]
    pub precision: Option<String>,
    /// Worker threads (0: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// A TOML file whose keys override the preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The run folder (default runs/<method>-<timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Replace the files of an existing run folder.
    #[arg(long)]
    pub force: bool,
    /// Skip the final evaluation (kNN, linear probe, baselines).
    #[arg(long)]
    pub no_eval: bool,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    run: PathBuf,
    /// knn | linear | zero-shot (image–text runs)
    #[arg(long, default_value = "knn")]
    protocol: String,
    /// Evaluate on another dataset than the run's.
    #[arg(long)]
    dataset: Option<String>,
    /// ViT features: cls | mean (default: the run's)
    #[arg(long)]
    pool: Option<String>,
}

#[derive(Args)]
struct EmbedArgs {
    #[arg(long)]
    run: PathBuf,
    /// train | test
    #[arg(long, default_value = "test")]
    split: String,
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    dataset: Option<String>,
    /// ViT features: cls | mean (default: the run's)
    #[arg(long)]
    pool: Option<String>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
    /// Embed this text with an image–text run's text tower instead of images (repeatable).
    #[arg(long)]
    text: Vec<String>,
    /// Embed each non-empty line of this file as a text.
    #[arg(long)]
    text_file: Option<PathBuf>,
}

/// Convolutions already run one sample per rayon worker; letting each of those GEMMs spawn
/// matrixmultiply's own threads as well oversubscribes the cores (measured ~7% slower per
/// ResNet training step on two cores). A ViT's work is all large GEMMs, which need those
/// threads (single-threaded GEMMs made a MoCo v3 ViT-Tiny step ~30% slower). A user's
/// explicit setting wins. Call before the first GEMM: matrixmultiply reads it once.
pub(crate) fn configure_matmul_threads(encoder: &str) {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        let threads = if crate::nn::is_vit(encoder) { rayon::current_num_threads() } else { 1 };
        std::env::set_var("MATMUL_NUM_THREADS", threads.to_string());
    }
}

/// The process arguments, with `--method`'s help listing the registry's names (so it cannot
/// go stale as methods are added).
fn parse_cli() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let names = crate::methods::names().join(", ");
    let help = format!("A registered method (`tessera methods` describes them): {names}");
    let command = Cli::command().mut_subcommand("pretrain", |c| c.mut_arg("method", |a| a.help(help)));
    Cli::from_arg_matches(&command.try_get_matches()?)
}

/// Runs the program with the process arguments; returns the exit code.
pub fn main() -> i32 {
    tessera_engine::cpu::allocator::retain_freed_memory();
    let cli = match parse_cli() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        // Sizes the thread pool from its configuration first, then runs on a worker.
        Command::Pretrain(a) => pretrain::run(&a).map(|_| ()),
        // On one of the pool's workers, as pretraining (see `on_pool_worker`).
        other => tessera_engine::cpu::on_pool_worker(|| run_on_saved_run(other)),
    };
    match result {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("error: {}", crate::one_line(msg.message()));
            1
        }
    }
}

/// Every command but `pretrain`: they read a saved run (or print the method table).
fn run_on_saved_run(command: Command) -> crate::Result<()> {
    match command {
        // `main` runs pretraining itself; this arm only completes the match.
        Command::Pretrain(a) => pretrain::run(&a).map(|_| ()),
        Command::Eval(a) if a.protocol == "zero-shot" => {
            zero_shot::zero_shot_command(&a.run, a.dataset.as_deref(), None).map(|line| println!("{line}"))
        }
        Command::ZeroShot(a) => {
            zero_shot::zero_shot_command(&a.run, a.dataset.as_deref(), a.templates.as_deref()).map(|line| println!("{line}"))
        }
        Command::Embed(a) if !a.text.is_empty() || a.text_file.is_some() => {
            zero_shot::embed_text_command(&a.run, &a.text, a.text_file.as_deref(), &a.out, a.force)
        }
        Command::Eval(a) => eval::eval_command(&a.run, &a.protocol, a.dataset.as_deref(), a.pool.as_deref()).map(|line| println!("{line}")),
        Command::Embed(a) => embed::embed_command(&a.run, &a.split, &a.out, a.dataset.as_deref(), a.pool.as_deref(), a.force),
        Command::Reconstruct(a) => pictures::reconstruct_command(&a.run, &a.out, a.images, a.force),
        Command::Inspect(a) => {
            inspect::inspect_command(&a.run, a.out.as_deref(), a.attention.as_deref(), a.force).map(|line| println!("{line}"))
        }
        Command::Report(a) => report::report_command(&a.run, &a.out, a.force),
        Command::Methods => {
            print!("{}", methods_table());
            Ok(())
        }
    }
}
