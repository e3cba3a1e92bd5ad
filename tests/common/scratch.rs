//! A fresh, empty folder for one test under the system's temporary folder, removed when the
//! test ends — kept when it fails, so what the run wrote can be read. Test runs would
//! otherwise leave gigabytes of run folders (checkpoints, pictures) behind in /tmp.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `tessera-<prefix>-<pid>-<name>`, emptied if a previous run left it.
    pub fn new(prefix: &str, name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("tessera-{prefix}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        ScratchDir(d)
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
