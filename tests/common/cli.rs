//! Helpers for tests that drive the `tessera` binary: running it on two threads, and a
//! fresh scratch folder per test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the `tessera` binary with `args` on two worker threads.
pub fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera")).args(args).env("RAYON_NUM_THREADS", "2").output().expect("the tessera binary runs")
}

/// An empty folder `tessera-<prefix>-<pid>-<name>` under the system's temporary folder.
pub fn temp_dir(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The process's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
