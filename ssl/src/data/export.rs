//! Writing images to disk (PNG or JPEG by extension), to look at augmented samples or
//! reconstructions, and to build image folders.

use std::path::Path;

use super::error::{DataError, Result};
use super::image::Image;

/// Saves a 1- or 3-channel image with values in [0, 1] (clamped, rounded to u8) as PNG or
/// JPEG, chosen by the file extension. Errors name the path.
pub fn save_image(path: impl AsRef<Path>, img: &Image) -> Result<()> {
    let path = path.as_ref();
    let [c, h, w] = img.shape();
    let n = h * w;
    let to_u8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let (w32, h32) = (w as u32, h as u32);
    let dynamic = match c {
        1 => image::GrayImage::from_raw(w32, h32, img.data().iter().map(|&v| to_u8(v)).collect()).map(image::DynamicImage::ImageLuma8),
        3 => {
            let d = img.data();
            let hwc = (0..n).flat_map(|i| [to_u8(d[i]), to_u8(d[n + i]), to_u8(d[2 * n + i])]).collect();
            image::RgbImage::from_raw(w32, h32, hwc).map(image::DynamicImage::ImageRgb8)
        }
        _ => None,
    };
    let dynamic = dynamic.ok_or_else(|| DataError::invalid("save_image", format!("needs 1 or 3 channels, got {c}")))?;
    dynamic.save(path).map_err(|e| DataError::format(path, format!("cannot write image: {e}")))
}
