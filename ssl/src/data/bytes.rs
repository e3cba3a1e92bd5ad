//! Validation helpers shared by the file loaders: reading with the path in every error,
//! transparent gunzip, a bounds-checked big-endian reader, and the record-count checks.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::{DataError, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a whole file; a missing or unreadable file is an error naming the path.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, "cannot read file", e))
}

/// Returns the bytes decompressed when they start with the gzip magic, otherwise as they
/// are. A damaged or cut gzip stream is an error naming `path`.
pub(crate) fn gunzip_if_needed(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() * 4);
    // MultiGzDecoder also accepts concatenated members, which `gzip -c a b` produces.
    match flate2::read::MultiGzDecoder::new(bytes.as_slice()).read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(DataError::format(path, format!("truncated gzip stream ({} compressed bytes)", bytes.len())))
        }
        Err(e) => Err(DataError::format(path, format!("corrupt gzip stream: {e}"))),
    }
}

/// A cursor over a file's bytes whose reads fail with a "truncated" error naming the file
/// and the field being read, instead of panicking on a short file.
pub(crate) struct ByteReader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(path: &'a Path, bytes: &'a [u8]) -> Self {
        ByteReader { path, bytes, pos: 0 }
    }

    /// The next `n` bytes, described as `what` in the error if the file ends first.
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let left = self.bytes.len() - self.pos;
        if left < n {
            return Err(DataError::format(
                self.path,
                format!("truncated: {what} needs {n} bytes at offset {} but only {left} remain", self.pos),
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next big-endian u32.
    pub(crate) fn u32_be(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Everything not yet read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }
}

/// Checks that a body announced as `count` items of `item_bytes` each (described as
/// `items`, e.g. "100 images of 28x28") is exactly that long: shorter is truncation, longer
/// means the header's count does not match the data. Both are errors, so a dataset is never
/// silently shortened.
pub(crate) fn expect_body_len(path: &Path, items: &str, count: usize, item_bytes: usize, actual: usize) -> Result<()> {
    let expected = count
        .checked_mul(item_bytes)
        .ok_or_else(|| DataError::format(path, format!("header says {items}, which overflows the address space")))?;
    if actual < expected {
        return Err(DataError::format(path, format!("truncated: header says {items} ({expected} bytes) but {actual} bytes follow")));
    }
    if actual > expected {
        return Err(DataError::format(
            path,
            format!("count does not match the data: header says {items} ({expected} bytes) but {actual} bytes follow"),
        ));
    }
    Ok(())
}

/// Checks that a headerless file of fixed-size records holds a positive whole number of
/// them, and returns that number.
pub(crate) fn whole_records(path: &Path, record_bytes: usize, actual: usize) -> Result<usize> {
    if actual == 0 {
        return Err(DataError::format(path, "empty file: no records"));
    }
    if !actual.is_multiple_of(record_bytes) {
        return Err(DataError::format(
            path,
            format!(
                "truncated or padded: {actual} bytes are {} whole {record_bytes}-byte records and {} extra bytes",
                actual / record_bytes,
                actual % record_bytes
            ),
        ));
    }
    Ok(actual / record_bytes)
}

/// Checks that every label is below `num_classes`, naming the file and the first bad item.
pub(crate) fn check_label_range(path: &Path, what: &str, labels: &[u8], num_classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l as usize >= num_classes) {
        Some(i) => Err(DataError::format(path, format!("{what} {i} is {} but there are only {num_classes} classes", labels[i]))),
        None => Ok(()),
    }
}

/// The first of `names` that exists in `dir`; the error names the first candidate.
pub(crate) fn find_file(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    if !dir.is_dir() {
        let e = std::fs::metadata(dir).err().unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"));
        return Err(DataError::io(dir, "cannot open dataset directory", e));
    }
    for name in names {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    let tried = names.join(", ");
    Err(DataError::io(
        dir.join(names.first().copied().unwrap_or("")),
        "dataset file not found",
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("looked for {tried} in {}", dir.display())),
    ))
}
