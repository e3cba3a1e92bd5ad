//! An image folder: one subfolder per class (classes are the subfolder names, sorted), PNG
//! and JPEG files inside, decoded with the `image` crate. Files with other extensions are
//! ignored; an image that does not decode is an error naming it.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::dataset::Dataset;
use super::error::{DataError, Result};

/// How to turn the folder's images into a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderOptions {
    /// 1 (grayscale, by the `image` crate's luma conversion) or 3 (RGB).
    pub channels: usize,
    /// `(height, width)` to resize every image to (bilinear); `None` requires all images
    /// to have the size of the first one.
    pub size: Option<(usize, usize)>,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions { channels: 3, size: None }
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

/// Decodes one image into C×H×W u8 pixels with the requested channels and size.
pub(crate) fn decode(path: &Path, opts: FolderOptions) -> Result<(usize, usize, Vec<u8>)> {
    let reader = image::ImageReader::open(path).map_err(|e| DataError::io(path, "cannot open image", e))?;
    let reader = reader.with_guessed_format().map_err(|e| DataError::io(path, "cannot read image", e))?;
    let mut img = reader.decode().map_err(|e| DataError::format(path, format!("cannot decode image: {e}")))?;
    if let Some((h, w)) = opts.size {
        if (img.height() as usize, img.width() as usize) != (h, w) {
            img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
        }
    }
    let (h, w) = (img.height() as usize, img.width() as usize);
    let hwc: Vec<u8> = if opts.channels == 1 { img.to_luma8().into_raw() } else { img.to_rgb8().into_raw() };
    let c = opts.channels;
    // The image crate stores pixels interleaved (HWC); the data layer is channel-major.
    let mut chw = vec![0u8; hwc.len()];
    for (i, px) in hwc.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            chw[ch * h * w + i] = v;
        }
    }
    Ok((h, w, chw))
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
    let decoded: Vec<Result<(usize, usize, Vec<u8>)>> = files.par_iter().map(|(p, _)| decode(p, opts)).collect();
    let mut pixels = Vec::new();
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
