//! Image–text pairs (`--dataset pairs:DIR`): a folder per split holding the images and one
//! caption file listing them, either
//!
//! - `captions.tsv`: one `path<TAB>caption` per line, or
//! - `captions.jsonl`: one `{"image": "path", "caption": "text"}` per line.
//!
//! Paths are relative to the split folder; an image may appear on several lines (several
//! captions). Blank lines are skipped. Where images sit in subfolders, the first folder
//! name is the image's class (for kNN, the linear probe and zero-shot evaluation); images at
//! the top level all get the class `unlabelled`. Images are RGB, all of one size. Every
//! error names the caption file and the line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::dataset::Dataset;
use super::error::{DataError, Result};
use super::image_file::{decode_file, ImageLimits};

/// The class of images outside any subfolder.
pub const UNLABELLED: &str = "unlabelled";

/// One parsed line: the image path as written and its caption.
fn parse_line(file: &Path, n: usize, line: &str, jsonl: bool) -> Result<(String, String)> {
    let bad = |msg: String| DataError::format(file, format!("line {n}: {msg}"));
    let (path, caption) = if jsonl {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let field = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_string);
        match (field("image"), field("caption")) {
            (Some(p), Some(c)) => (p, c),
            _ => return Err(bad("expected {\"image\": \"path\", \"caption\": \"text\"}".into())),
        }
    } else {
        match line.split_once('\t') {
            Some((p, c)) => (p.to_string(), c.to_string()),
            None => return Err(bad("expected 'path<TAB>caption' (no tab found)".into())),
        }
    };
    if path.trim().is_empty() {
        return Err(bad("empty image path".into()));
    }
    if caption.trim().is_empty() {
        return Err(bad(format!("empty caption for image '{}'", path.trim())));
    }
    Ok((path.trim().to_string(), caption.trim().to_string()))
}

/// The caption file of a split folder: `captions.tsv` or `captions.jsonl`, not both.
fn caption_file(dir: &Path) -> Result<(PathBuf, bool)> {
    let (tsv, jsonl) = (dir.join("captions.tsv"), dir.join("captions.jsonl"));
    match (tsv.is_file(), jsonl.is_file()) {
        (true, false) => Ok((tsv, false)),
        (false, true) => Ok((jsonl, true)),
        (true, true) => Err(DataError::format(dir, "holds both captions.tsv and captions.jsonl: keep one")),
        (false, false) => Err(DataError::format(dir, "no captions.tsv or captions.jsonl (expected a caption file beside the images)")),
    }
}

/// Loads the image–caption pairs of one split folder (see the module docs).
pub fn load_pairs(dir: impl AsRef<Path>) -> Result<Dataset> {
    load_pairs_within(dir, ImageLimits::DEFAULT)
}

/// [`load_pairs`], each image's header checked against `limits` before it is decoded.
pub fn load_pairs_within(dir: impl AsRef<Path>, limits: ImageLimits) -> Result<Dataset> {
    let dir = dir.as_ref();
    let (file, jsonl) = caption_file(dir)?;
    let text = std::fs::read_to_string(&file).map_err(|e| DataError::io(&file, "cannot read caption file", e))?;
    // Images in order of first appearance, each with its captions and the line naming it.
    let mut order: Vec<(String, usize)> = Vec::new();
    let mut captions: HashMap<String, Vec<String>> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (path, caption) = parse_line(&file, i + 1, line, jsonl)?;
        let slot = captions.entry(path.clone()).or_default();
        if slot.is_empty() {
            order.push((path, i + 1));
        }
        slot.push(caption);
    }
    if order.is_empty() {
        return Err(DataError::format(&file, "lists no image"));
    }
    let decoded: Vec<Result<(usize, usize, Vec<u8>)>> = order
        .par_iter()
        .map(|(p, n)| {
            let full = dir.join(p);
            if !full.is_file() {
                return Err(DataError::format(&file, format!("line {n}: image '{p}' not found ({})", full.display())));
            }
            // RGB, each at its own size (checked against the first below).
            decode_file(&full, 3, None, limits).map_err(|e| DataError::format(&file, format!("line {n}: {e}")))
        })
        .collect();
    let mut pixels = Vec::new();
    let mut size = None;
    for (res, (p, n)) in decoded.into_iter().zip(&order) {
        let (h, w, px) = res?;
        match size {
            None => size = Some((h, w, p)),
            Some((h0, w0, p0)) if (h0, w0) != (h, w) => {
                return Err(DataError::format(&file, format!("line {n}: image '{p}' is {h}x{w} but '{p0}' is {h0}x{w0}")));
            }
            Some(_) => {}
        }
        pixels.extend_from_slice(&px);
    }
    let class_of =
        |p: &str| Path::new(p).parent().and_then(|d| d.iter().next()).map_or(UNLABELLED.to_string(), |c| c.to_string_lossy().into_owned());
    let mut classes: Vec<String> = order.iter().map(|(p, _)| class_of(p)).collect();
    classes.sort();
    classes.dedup();
    let labels = order.iter().map(|(p, _)| classes.binary_search(&class_of(p)).unwrap_or(0) as i64).collect();
    let (h, w) = size.map_or((1, 1), |(h, w, _)| (h, w));
    let caps = order.iter().map(|(p, _)| captions.remove(p).unwrap_or_default()).collect();
    Dataset::new(dir.display().to_string(), [3, h, w], pixels, labels, classes)?.with_captions(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, captions: (&str, &str), images: &[&str]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tessera-pairs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for (i, p) in images.iter().enumerate() {
            let path = d.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            image::RgbImage::from_pixel(4, 4, image::Rgb([i as u8 * 40, 0, 0])).save(&path).unwrap();
        }
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(captions.0), captions.1).unwrap();
        d
    }

    #[test]
    fn loads_several_captions_per_image_with_classes_from_folders() {
        let tsv = "cats/a.png\ta cat\n\ndogs/b.png\ta dog\ncats/a.png\tmy cat\n";
        let d = folder("tsv", ("captions.tsv", tsv), &["cats/a.png", "dogs/b.png"]);
        let ds = load_pairs(&d).unwrap();
        assert_eq!((ds.len(), ds.image_shape(), ds.classes()), (2, [3, 4, 4], &["cats".to_string(), "dogs".to_string()][..]));
        assert_eq!(ds.labels(), &[0, 1]);
        assert_eq!(ds.captions().unwrap().as_slice(), &[vec!["a cat".to_string(), "my cat".into()], vec!["a dog".into()]]);
        let jsonl = "{\"image\": \"x.png\", \"caption\": \"a red square\"}\n";
        let j = folder("jsonl", ("captions.jsonl", jsonl), &["x.png"]);
        let ds = load_pairs(&j).unwrap();
        assert_eq!((ds.classes(), ds.captions().unwrap()[0][0].as_str()), (&[UNLABELLED.to_string()][..], "a red square"));
        for dir in [d, j] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn errors_name_the_caption_file_and_the_line() {
        let cases = [
            ("missing", ("captions.tsv", "a.png\tfine\nb.png\tgone\n"), "captions.tsv: line 2: image 'b.png' not found"),
            ("empty", ("captions.tsv", "a.png\tfine\na.png\t  \n"), "captions.tsv: line 2: empty caption for image 'a.png'"),
            ("notab", ("captions.tsv", "a.png\tfine\n\na.png a caption\n"), "captions.tsv: line 3: expected 'path<TAB>caption'"),
            ("badjson", ("captions.jsonl", "{\"image\": \"a.png\"}\n"), "captions.jsonl: line 1: expected {\"image\""),
            ("nofile", ("notes.txt", ""), "no captions.tsv or captions.jsonl"),
        ];
        for (name, file, needle) in cases {
            let d = folder(name, file, &["a.png"]);
            let err = load_pairs(&d).unwrap_err().to_string();
            assert!(err.contains(needle), "{name}: expected '{needle}' in: {err}");
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}
