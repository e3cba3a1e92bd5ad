//! Decoding one PNG or JPEG file under a budget. A few hundred bytes of header can declare
//! a 4096×65535 image, and decoding, converting to RGB and reordering to channel-major
//! would each allocate that much; so the declared size is checked against the budget from
//! the header alone, before any pixel buffer exists, and the decoder itself is held to it.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader};

use super::error::{DataError, Result};

/// What one image file may declare. The defaults fit any real dataset of photographs
/// (64 megapixels is 8192×8192) and keep a broken or hostile file from taking gigabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// The most pixels (width × height) an image header may declare.
    pub max_pixels: u64,
    /// The most bytes the decoded image may take in the decoder's own pixel format (a
    /// 16-bit RGBA pixel is 8 bytes); also the decoder's allocation limit.
    pub max_decoded_bytes: u64,
}

impl ImageLimits {
    /// 64 megapixels and 512 MiB decoded: an 8192×8192 image in any format up to 16-bit RGBA.
    pub const DEFAULT: ImageLimits = ImageLimits { max_pixels: 64 << 20, max_decoded_bytes: 512 << 20 };
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits::DEFAULT
    }
}

/// Decodes the image at `path` to C×H×W u8 pixels (`channels` 1: luma, 3: RGB), resized
/// to `size` = (height, width) when given. Peak memory is about twice the decoded image
/// (the decoder's buffer, then the converted one, then the channel-major copy, each
/// freed before the next but one).
pub(crate) fn decode_file(
    path: &Path,
    channels: usize,
    size: Option<(usize, usize)>,
    limits: ImageLimits,
) -> Result<(usize, usize, Vec<u8>)> {
    let img = decode_within(path, limits)?;
    let img = match size {
        Some((h, w)) if (img.height() as usize, img.width() as usize) != (h, w) => {
            img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle)
        }
        _ => img,
    };
    let (h, w) = (img.height() as usize, img.width() as usize);
    // `into_*` reuses the buffer when the image already has that layout.
    let hwc: Vec<u8> = if channels == 1 { img.into_luma8().into_raw() } else { img.into_rgb8().into_raw() };
    Ok((h, w, to_channel_major(&hwc, channels, h * w)))
}

/// Reads the header, checks its declared size against `limits`, then decodes.
fn decode_within(path: &Path, limits: ImageLimits) -> Result<DynamicImage> {
    let file = File::open(path).map_err(|e| DataError::io(path, "cannot open image", e))?;
    let mut reader =
        ImageReader::new(BufReader::new(file)).with_guessed_format().map_err(|e| DataError::io(path, "cannot read image", e))?;
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_decoded_bytes);
    reader.limits(decoder_limits);
    let decoder = reader.into_decoder().map_err(|e| DataError::format(path, format!("cannot decode image header: {e}")))?;
    let (w, h) = decoder.dimensions();
    let pixels = w as u64 * h as u64;
    if pixels > limits.max_pixels {
        return Err(DataError::format(
            path,
            format!("image header declares {w}x{h} ({pixels} pixels), over the budget of {} pixels", limits.max_pixels),
        ));
    }
    let bytes = decoder.total_bytes();
    if bytes > limits.max_decoded_bytes {
        return Err(DataError::format(
            path,
            format!(
                "image header declares {w}x{h} {:?} ({bytes} bytes decoded), over the budget of {} bytes",
                decoder.color_type(),
                limits.max_decoded_bytes
            ),
        ));
    }
    DynamicImage::from_decoder(decoder).map_err(|e| DataError::format(path, format!("cannot decode image: {e}")))
}

/// Interleaved (H·W pixels of `c` values, as the image crate stores them) to channel-major.
fn to_channel_major(hwc: &[u8], c: usize, plane: usize) -> Vec<u8> {
    let mut chw = vec![0u8; hwc.len()];
    for (i, px) in hwc.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            chw[ch * plane + i] = v;
        }
    }
    chw
}
