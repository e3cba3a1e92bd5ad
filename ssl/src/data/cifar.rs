//! CIFAR-10 and CIFAR-100 binary batches. The files have no header: CIFAR-10 records are one
//! label byte and 3072 pixel bytes (32×32 R plane, then G, then B); CIFAR-100 records carry a
//! coarse and then a fine label byte before the pixels. A file must hold a whole, positive
//! number of records and every label must be in range; the record count itself is not fixed,
//! so subsets cut from the standard files load as well.

use std::path::{Path, PathBuf};

use super::bytes;
use super::classes::{owned, CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, CIFAR10_CLASSES};
use super::dataset::{Dataset, Split};
use super::error::{DataError, Result};

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;

/// Which CIFAR variant a binary file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    /// One label byte per record, 10 classes.
    Cifar10,
    /// Coarse (20 classes) then fine (100 classes) label bytes per record.
    Cifar100,
}

impl CifarKind {
    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }
}

/// The records of one or more files, concatenated in file order.
#[derive(Default)]
struct Records {
    pixels: Vec<u8>,
    fine: Vec<i64>,
    coarse: Vec<i64>,
}

/// Validates one batch file and appends its records.
fn read_batch(path: &Path, kind: CifarKind, out: &mut Records) -> Result<()> {
    let data = bytes::read_file(path)?;
    let lb = kind.label_bytes();
    let record = lb + PIXELS;
    let n = bytes::whole_records(path, record, data.len())?;
    let (fine_at, fine_classes) = match kind {
        CifarKind::Cifar10 => (0, CIFAR10_CLASSES.len()),
        CifarKind::Cifar100 => (1, CIFAR100_FINE_CLASSES.len()),
    };
    let fine: Vec<u8> = data.chunks_exact(record).map(|r| r[fine_at]).collect();
    bytes::check_label_range(path, "label of record", &fine, fine_classes)?;
    if kind == CifarKind::Cifar100 {
        let coarse: Vec<u8> = data.chunks_exact(record).map(|r| r[0]).collect();
        bytes::check_label_range(path, "coarse label of record", &coarse, CIFAR100_COARSE_CLASSES.len())?;
        out.coarse.extend(coarse.iter().map(|&l| l as i64));
    }
    out.fine.extend(fine.iter().map(|&l| l as i64));
    out.pixels.reserve(n * PIXELS);
    for r in data.chunks_exact(record) {
        out.pixels.extend_from_slice(&r[lb..]);
    }
    Ok(())
}

/// The largest class-name file read: CIFAR-100's 100 names take about 1 KB.
const MAX_NAMES_FILE: u64 = 1 << 20;

/// Reads class names from an optional text file in `dir` (one per line, blank lines
/// ignored), falling back to the built-in list when the file is absent. A present file
/// with the wrong number of names is an error.
fn class_names(dir: &Path, file: &str, default: &[&str]) -> Result<Vec<String>> {
    let path = dir.join(file);
    if !path.is_file() {
        return Ok(owned(default));
    }
    let text = String::from_utf8(bytes::read_small_file(&path, MAX_NAMES_FILE)?)
        .map_err(|_| DataError::format(&path, "class names are not UTF-8"))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.len() != default.len() {
        return Err(DataError::format(&path, format!("lists {} class names, expected {}", names.len(), default.len())));
    }
    Ok(names)
}

/// Loads CIFAR binary batch files of one kind, concatenated in the order given.
pub fn load_cifar_files(paths: &[PathBuf], kind: CifarKind, name: &str) -> Result<Dataset> {
    if paths.is_empty() {
        return Err(DataError::invalid("load_cifar_files", "no files given"));
    }
    let mut rec = Records::default();
    for p in paths {
        read_batch(p, kind, &mut rec)?;
    }
    let dir = paths[0].parent().unwrap_or(Path::new("."));
    let shape = [3, SIDE, SIDE];
    match kind {
        CifarKind::Cifar10 => Dataset::new(name, shape, rec.pixels, rec.fine, class_names(dir, "batches.meta.txt", &CIFAR10_CLASSES)?),
        CifarKind::Cifar100 => {
            let fine = class_names(dir, "fine_label_names.txt", &CIFAR100_FINE_CLASSES)?;
            let coarse = class_names(dir, "coarse_label_names.txt", &CIFAR100_COARSE_CLASSES)?;
            Dataset::new(name, shape, rec.pixels, rec.fine, fine)?.with_coarse_labels(rec.coarse, coarse)
        }
    }
}

/// Paths of the standard files of one split, each required to exist.
fn standard_files(dir: &Path, names: &[String]) -> Result<Vec<PathBuf>> {
    names.iter().map(|n| bytes::find_file(dir, &[n.as_str()])).collect()
}

/// Loads one split of CIFAR-10 from `dir` (the `cifar-10-batches-bin` folder):
/// `data_batch_1.bin`..`data_batch_5.bin` for training, `test_batch.bin` for test. Class names
/// come from `batches.meta.txt` when present.
pub fn load_cifar10(dir: impl AsRef<Path>, split: Split) -> Result<Dataset> {
    let dir = dir.as_ref();
    let names: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".into()],
    };
    let name = format!("{}/{}", dir.display(), if split == Split::Train { "train" } else { "test" });
    load_cifar_files(&standard_files(dir, &names)?, CifarKind::Cifar10, &name)
}

/// Loads one split of CIFAR-100 from `dir` (the `cifar-100-binary` folder): `train.bin` or
/// `test.bin`. Labels are the fine classes; [`Dataset::coarse`] gives the superclasses.
pub fn load_cifar100(dir: impl AsRef<Path>, split: Split) -> Result<Dataset> {
    let dir = dir.as_ref();
    let file = if split == Split::Train { "train.bin" } else { "test.bin" };
    let name = format!("{}/{}", dir.display(), file.trim_end_matches(".bin"));
    load_cifar_files(&standard_files(dir, &[file.to_string()])?, CifarKind::Cifar100, &name)
}
