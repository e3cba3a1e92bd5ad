//! Validation helpers shared by the file loaders: reading with the path in every error,
//! transparent and bounded gunzip, a bounds-checked big-endian reader, and the
//! record-count checks.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use super::error::{DataError, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a whole file; a missing or unreadable file is an error naming the path.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, "cannot read file", e))
}

/// Reads a whole small side file (class names and the like), refusing one larger than
/// `max` bytes before reading it: such a file is not what it claims to be.
pub(crate) fn read_small_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(|e| DataError::io(path, "cannot read file", e))?.len();
    if len > max {
        return Err(DataError::format(path, format!("{len} bytes is too large for this file (at most {max})")));
    }
    read_file(path)
}

/// Deflate expands at most about 1032:1, so no gzip stream, concatenated members included,
/// decompresses to more than this many bytes per compressed byte.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// A file's content as a stream, decompressed on the fly when it starts with the gzip
/// magic. Reads are bounded by the caller ([`Stream::read_up_to`]), so a header can
/// decide how much is read before anything is allocated for it.
pub(crate) struct Stream<'a> {
    path: &'a Path,
    inner: Box<dyn Read + 'a>,
    gzip: bool,
    /// The file's length in bytes (compressed when gzip).
    len: u64,
    /// The most bytes the stream can still yield (the file's length, times the deflate
    /// ratio when compressed): a cap on what a read reserves up front.
    most: u64,
}

impl<'a> Stream<'a> {
    /// The content of the file at `path`.
    pub(crate) fn open(path: &'a Path) -> Result<Stream<'a>> {
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path, "cannot read file", e))?;
        let len = file.metadata().map_err(|e| DataError::io(path, "cannot read file", e))?.len();
        Stream::new(path, std::io::BufReader::new(file), len)
    }

    /// The content of `bytes`; `path` only labels errors.
    pub(crate) fn from_slice(path: &'a Path, bytes: &'a [u8]) -> Result<Stream<'a>> {
        Stream::new(path, bytes, bytes.len() as u64)
    }

    fn new(path: &'a Path, mut src: impl BufRead + 'a, len: u64) -> Result<Stream<'a>> {
        let head = src.fill_buf().map_err(|e| DataError::io(path, "cannot read file", e))?;
        let gzip = head.starts_with(&GZIP_MAGIC);
        Ok(if gzip {
            // MultiGzDecoder also accepts concatenated members, which `gzip -c a b` produces.
            let inner = Box::new(flate2::bufread::MultiGzDecoder::new(src));
            Stream { path, inner, gzip, len, most: len.saturating_mul(MAX_DEFLATE_RATIO) }
        } else {
            Stream { path, inner: Box::new(src), gzip, len, most: len }
        })
    }

    /// Refuses, before anything is read or allocated for it, a body of `n` bytes that the
    /// file cannot hold: more than the bytes left in a raw file, more than the deflate
    /// ratio allows from a compressed one. `what` is the header's description of the body.
    pub(crate) fn check_can_hold(&self, n: u64, what: &str) -> Result<()> {
        if n <= self.most {
            return Ok(());
        }
        let why = if self.gzip {
            format!("a {}-byte gzip file decompresses to at most {} bytes", self.len, self.len.saturating_mul(MAX_DEFLATE_RATIO))
        } else {
            format!("{} bytes follow", self.most)
        };
        Err(DataError::format(self.path, format!("truncated: header says {what} ({n} bytes) but {why}")))
    }

    /// Whether the file is gzip-compressed.
    pub(crate) fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// The next `n` bytes, or fewer where the stream ends first; never reads past them, so
    /// a stream longer than announced costs no more than `n + 1` bytes to detect.
    pub(crate) fn read_up_to(&mut self, n: u64) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n.min(self.most) as usize);
        let read = (&mut self.inner).take(n).read_to_end(&mut out);
        let got = read.map_err(|e| self.read_error(e))?;
        self.most = self.most.saturating_sub(got as u64);
        Ok(out)
    }

    fn read_error(&self, e: std::io::Error) -> DataError {
        match (self.gzip, e.kind()) {
            (true, std::io::ErrorKind::UnexpectedEof) => DataError::format(self.path, "truncated gzip stream"),
            (true, _) => DataError::format(self.path, format!("corrupt gzip stream: {e}")),
            (false, _) => DataError::io(self.path, "cannot read file", e),
        }
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
