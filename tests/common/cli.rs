//! Helpers for tests that drive the `tessera` binary: running it on two threads, and a
//! fresh scratch folder per test.
#![allow(dead_code)]

#[path = "scratch.rs"]
mod scratch;
pub use scratch::ScratchDir;

use std::process::{Command, Output};

/// Runs the `tessera` binary with `args` on two worker threads.
pub fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera")).args(args).env("RAYON_NUM_THREADS", "2").output().expect("the tessera binary runs")
}

/// An empty folder `tessera-<prefix>-<pid>-<name>` under the system's temporary folder,
/// removed when the test passes.
pub fn temp_dir(prefix: &str, name: &str) -> ScratchDir {
    ScratchDir::new(prefix, name)
}

/// The process's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
