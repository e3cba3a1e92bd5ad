//! An image folder: one subfolder per class (classes are the subfolder names, sorted), PNG
//! and JPEG files inside, decoded with the `image` crate. Files with other extensions are
//! ignored; an image that does not decode, or whose header declares more than
//! [`ImageLimits`] allow, is an error naming it.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::dataset::Dataset;
use super::error::{DataError, Result};
use super::image_file::{decode_file, ImageLimits};

/// How to turn the folder's images into a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderOptions {
    /// 1 (grayscale, by the `image` crate's luma conversion) or 3 (RGB).
    pub channels: usize,
    /// `(height, width)` to resize every image to (bilinear); `None` requires all images
    /// to have the size of the first one.
    pub size: Option<(usize, usize)>,
    /// What one image file may declare; checked on its header before decoding.
    pub limits: ImageLimits,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions { channels: 3, size: None, limits: ImageLimits::DEFAULT }
    }
}

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Entries of `dir` passing `keep`, sorted by file name.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "cannot list directory", e))?;
    let mut out = Vec::new();
    for entry in rd {
        let path = entry.map_err(|e| DataError::io(dir, "cannot list directory", e))?.path();
        if keep(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn is_image_file(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    p.is_file() && ext.is_some_and(|e| EXTENSIONS.contains(&e.as_str()))
}

fn is_class_dir(p: &Path) -> bool {
    let hidden = p.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
    p.is_dir() && !hidden
}

/// Loads an image folder: `root/<class>/<image>.{png,jpg,jpeg}`. Labels index the sorted
/// class names; images are ordered by class, then by file name. Decoding runs in parallel.
pub fn load_image_folder(root: impl AsRef<Path>, opts: FolderOptions) -> Result<Dataset> {
    let root = root.as_ref();
    if opts.channels != 1 && opts.channels != 3 {
        return Err(DataError::invalid("load_image_folder", format!("channels must be 1 or 3, got {}", opts.channels)));
    }
    if opts.size.is_some_and(|(h, w)| h == 0 || w == 0) {
        return Err(DataError::invalid("load_image_folder", format!("size must be positive, got {:?}", opts.size)));
    }
    let class_dirs = sorted_entries(root, is_class_dir)?;
    if class_dirs.is_empty() {
        return Err(DataError::format(root, "no class subfolders (expected one subfolder per class)"));
    }
    let mut classes = Vec::with_capacity(class_dirs.len());
    let mut files: Vec<(PathBuf, i64)> = Vec::new();
    for (label, dir) in class_dirs.iter().enumerate() {
        let images = sorted_entries(dir, is_image_file)?;
        if images.is_empty() {
            return Err(DataError::format(dir, "class folder holds no PNG or JPEG image"));
        }
        classes.push(dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string());
        files.extend(images.into_iter().map(|p| (p, label as i64)));
    }
    // Collecting per-file results keeps the reported error the first in file order.
    let decoded: Vec<Result<(usize, usize, Vec<u8>)>> =
        files.par_iter().map(|(p, _)| decode_file(p, opts.channels, opts.size, opts.limits)).collect();
    // Reserving the total first and freeing each image once copied keeps the peak at about
    // twice the dataset, not three times (a growing vector's reallocation).
    let total = decoded.iter().map(|r| r.as_ref().map_or(0, |(_, _, px)| px.len())).sum();
    let mut pixels = Vec::with_capacity(total);
    let mut first: Option<(usize, usize, &Path)> = None;
    for (res, (path, _)) in decoded.into_iter().zip(&files) {
        let (h, w, px) = res?;
        match first {
            None => first = Some((h, w, path)),
            Some((h0, w0, p0)) if (h, w) != (h0, w0) => {
                return Err(DataError::format(
                    path,
                    format!("image is {h}x{w} but {} is {h0}x{w0}; pass FolderOptions::size to resize", p0.display()),
                ));
            }
            Some(_) => {}
        }
        pixels.extend_from_slice(&px);
    }
    let (h, w, _) = first.ok_or_else(|| DataError::format(root, "no images"))?;
    let labels = files.iter().map(|(_, l)| *l).collect();
    Dataset::new(root.display().to_string(), [opts.channels, h, w], pixels, labels, classes)
}
