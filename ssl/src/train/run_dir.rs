//! The run folder: `config.toml`, `metrics.jsonl`, checkpoints and `plots/`. An existing
//! folder's files are never overwritten without `--resume` or `--force`.

use crate::Context;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A run folder on disk.
pub struct RunDir {
    pub root: PathBuf,
}

/// How to treat a folder that already holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Refuse if it holds any file.
    New,
    /// Continue it.
    Resume,
    /// Start over, replacing its files.
    Force,
}

impl RunDir {
    /// Opens or creates `root` under the rules of `mode`.
    pub fn open(root: &Path, mode: OpenMode) -> crate::Result<RunDir> {
        let has_files = root.is_dir() && fs::read_dir(root).map_err(|e| format!("{}: cannot read: {e}", root.display()))?.next().is_some();
        match mode {
            OpenMode::New if has_files => {
                return Err(
                    format!("{} already holds a run; pass --resume {0} to continue it or --force to replace it", root.display()).into()
                );
            }
            OpenMode::Resume if !root.join("config.toml").is_file() => {
                return Err(format!("{}: no run to resume (config.toml is missing)", root.display()).into());
            }
            OpenMode::Force if has_files => {
                for name in
                    ["metrics.jsonl", "checkpoint.safetensors", "model.safetensors", "optimizer.safetensors", "config.toml", "state.json"]
                {
                    let p = root.join(name);
                    if p.exists() {
                        fs::remove_file(&p).map_err(|e| format!("{}: cannot remove: {e}", p.display()))?;
                    }
                }
            }
            _ => {}
        }
        fs::create_dir_all(root.join("plots")).map_err(|e| format!("{}: cannot create: {e}", root.display()))?;
        Ok(RunDir { root: root.to_path_buf() })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes a file atomically: a temporary file in the same folder, then a rename.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> crate::Result<()> {
        write_atomic(&self.path(name), bytes)
    }

    /// Appends one JSON record as a line of `metrics.jsonl`.
    pub fn append_metric(&self, record: &serde_json::Value) -> crate::Result<()> {
        let p = self.path("metrics.jsonl");
        let mut f = fs::OpenOptions::new().create(true).append(true).open(&p).with_context(|| format!("{}: cannot open", p.display()))?;
        writeln!(f, "{record}").with_context(|| format!("{}: cannot write", p.display()))
    }

    /// Drops the records of steps after `step` (written by a run that stopped before it
    /// could checkpoint them), so a resumed run does not log those steps twice.
    pub fn truncate_metrics(&self, step: u64) -> crate::Result<()> {
        let records = self.metrics()?;
        let keep: Vec<&serde_json::Value> =
            records.iter().filter(|r| r.get("step").and_then(|s| s.as_u64()).is_none_or(|s| s <= step)).collect();
        if keep.len() == records.len() {
            return Ok(());
        }
        let text: String = keep.iter().map(|r| format!("{r}\n")).collect();
        self.write_atomic("metrics.jsonl", text.as_bytes())
    }

    /// Every record of `metrics.jsonl` so far.
    pub fn metrics(&self) -> crate::Result<Vec<serde_json::Value>> {
        let p = self.path("metrics.jsonl");
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: cannot read: {e}", p.display()).into()),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("{}: bad line", p.display())))
            .collect()
    }
}

/// Writes `bytes` to `path` through a temporary sibling and a rename (the checkpoint
/// module's writer), so a crash mid-write leaves the previous file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    crate::nn::checkpoint::write_atomic(path, bytes).map_err(crate::Error::msg)
}
