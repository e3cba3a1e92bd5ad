//! MNIST-style IDX files (gzip or raw, detected by the gzip magic): an image file with magic
//! 0x00000803 (u8, three dimensions N×H×W) and a label file with magic 0x00000801 (u8, one
//! dimension N), both with big-endian headers. Memory follows the header, never the
//! stream: a file is read (or decompressed) up to the size its header declares and one
//! byte more, which is an error, so concatenated gzip members cannot inflate it. What the
//! header declares is itself bounded before anything is read for it: by [`MAX_IDX_BYTES`],
//! and by what the file's size can hold (its length when raw, the deflate ratio's worth
//! when compressed).

use std::path::Path;

use super::bytes::{self, ByteReader, Stream};
use super::classes::{owned, FASHION_MNIST_CLASSES, MNIST_CLASSES};
use super::dataset::{Dataset, Split};
use super::error::{DataError, Result};

/// IDX type code of unsigned bytes, the only element type MNIST-style datasets use.
const UBYTE: u32 = 0x08;

/// The most bytes an IDX header may declare for its body: 1 GiB, about twice the largest
/// MNIST-style set (EMNIST ByClass, 697,932 images of 28×28), and so the most a header can
/// make a loader decompress or allocate, whatever stream follows it.
pub const MAX_IDX_BYTES: u64 = 1 << 30;

/// A validated u8 IDX array: `dims[0]` items of `dims[1..]` each.
struct IdxArray {
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// Parses an IDX file of `ndims` dimensions, checking the magic number and that the body
/// holds exactly the announced number of items. The header is read first and decides how
/// much is read after it: decompression stops one byte past the announced size.
fn parse_idx(path: &Path, mut src: Stream, ndims: usize, kind: &str) -> Result<IdxArray> {
    let header = src.read_up_to(4 + 4 * ndims as u64)?;
    let mut r = ByteReader::new(path, &header);
    let magic = r.u32_be("the magic number")?;
    let expected = (UBYTE << 8) | ndims as u32;
    if magic != expected {
        let hint = if magic >> 8 == UBYTE && magic & 0xff != ndims as u32 {
            format!(" (this is a {}-d IDX file; were the image and label files swapped?)", magic & 0xff)
        } else {
            String::new()
        };
        return Err(DataError::format(
            path,
            format!("wrong magic number 0x{magic:08x}: an IDX {kind} file starts with 0x{expected:08x} (u8, {ndims}-d){hint}"),
        ));
    }
    let mut dims = Vec::with_capacity(ndims);
    for d in 0..ndims {
        dims.push(r.u32_be(&format!("header dimension {d}"))? as usize);
    }
    if dims[1..].contains(&0) {
        return Err(DataError::format(path, format!("header gives a zero image dimension: {dims:?}")));
    }
    let what = match ndims {
        1 => format!("{} labels", dims[0]),
        _ => format!("{} {kind}s of {}", dims[0], dims[1..].iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")),
    };
    let body_len = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| DataError::format(path, format!("header says {what}, which overflows the address space")))?;
    if body_len as u64 > MAX_IDX_BYTES {
        return Err(DataError::format(
            path,
            format!("header declares {what} ({body_len} bytes), over the cap of {MAX_IDX_BYTES} bytes for an IDX file (nothing past the header was read)"),
        ));
    }
    src.check_can_hold(body_len as u64, &what)?;
    let data = src.read_up_to((body_len as u64).saturating_add(1))?;
    if data.len() < body_len {
        return Err(DataError::format(path, format!("truncated: header says {what} ({body_len} bytes) but {} bytes follow", data.len())));
    }
    if data.len() > body_len {
        let (stream, stop) = if src.is_gzip() { ("decompressed stream", "; decompression stopped there") } else { ("file", "") };
        return Err(DataError::format(
            path,
            format!("count does not match the data: header declares {what} ({body_len} bytes) but the {stream} is larger{stop}"),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Builds a dataset from an image file and a label file (each gzip or raw). The paths
/// label errors, so embedded files can use a descriptive pseudo-path.
pub(crate) fn parse_idx_pair(
    name: &str,
    images_path: &Path,
    images: Stream,
    labels_path: &Path,
    labels: Stream,
    classes: Vec<String>,
) -> Result<Dataset> {
    let images = parse_idx(images_path, images, 3, "image")?;
    let labels = parse_idx(labels_path, labels, 1, "label")?;
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::format(
            labels_path,
            format!("holds {} labels but {} holds {} images", labels.dims[0], images_path.display(), images.dims[0]),
        ));
    }
    bytes::check_label_range(labels_path, "label", &labels.data, classes.len())?;
    let shape = [1, images.dims[1], images.dims[2]];
    Dataset::new(name, shape, images.data, labels.data.iter().map(|&l| l as i64).collect(), classes)
}

/// Loads an IDX image file and its label file (gzip or raw) into a 1-channel dataset whose
/// labels must index `classes`.
pub fn load_idx(images: impl AsRef<Path>, labels: impl AsRef<Path>, classes: Vec<String>) -> Result<Dataset> {
    let (ip, lp) = (images.as_ref(), labels.as_ref());
    let name = ip.display().to_string();
    let (images, labels) = (Stream::open(ip)?, Stream::open(lp)?);
    parse_idx_pair(&name, ip, images, lp, labels, classes)
}

/// Loads one split of an MNIST-layout directory: `train-images-idx3-ubyte[.gz]` +
/// `train-labels-idx1-ubyte[.gz]`, or the `t10k-` pair for [`Split::Test`].
pub fn load_idx_dir(dir: impl AsRef<Path>, split: Split, classes: Vec<String>) -> Result<Dataset> {
    let dir = dir.as_ref();
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let find = |kind: &str| {
        let raw = format!("{prefix}-{kind}");
        bytes::find_file(dir, &[&format!("{raw}.gz"), &raw])
    };
    let (images, labels) = (find("images-idx3-ubyte")?, find("labels-idx1-ubyte")?);
    Ok(load_idx(&images, &labels, classes)?.renamed(format!("{}/{prefix}", dir.display())))
}

/// Loads one split of MNIST from its standard files in `dir`.
pub fn load_mnist(dir: impl AsRef<Path>, split: Split) -> Result<Dataset> {
    load_idx_dir(dir, split, owned(&MNIST_CLASSES))
}

/// Loads one split of Fashion-MNIST from its standard files in `dir`.
pub fn load_fashion_mnist(dir: impl AsRef<Path>, split: Split) -> Result<Dataset> {
    load_idx_dir(dir, split, owned(&FASHION_MNIST_CLASSES))
}
