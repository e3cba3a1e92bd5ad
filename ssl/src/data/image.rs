//! A plain C×H×W f32 image, the unit every augmentation and task transform works on.
//! Keeping image math on flat slices (rather than tensors) lets a worker thread augment one
//! sample without touching the engine; tensors are built once per batch.

use super::error::{DataError, Result};

/// A C×H×W image stored channel-major (`data[(ch * h + y) * w + x]`). Augmentations expect
/// values in [0, 1]; only `Normalize` leaves that range.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

impl Image {
    /// An image from its channel-major data; `data.len()` must equal `c * h * w` and every
    /// dimension must be positive.
    pub fn new(c: usize, h: usize, w: usize, data: Vec<f32>) -> Result<Image> {
        if c == 0 || h == 0 || w == 0 {
            return Err(DataError::invalid("Image::new", format!("dimensions must be positive, got {c}x{h}x{w}")));
        }
        let expected = c.checked_mul(h).and_then(|n| n.checked_mul(w));
        if expected != Some(data.len()) {
            return Err(DataError::invalid("Image::new", format!("{} values given for a {c}x{h}x{w} image", data.len())));
        }
        Ok(Image { c, h, w, data })
    }

    /// A black image of shape C×H×W. Dimensions are trusted (internal use: they come from a
    /// validated image).
    pub(crate) fn zeros(c: usize, h: usize, w: usize) -> Image {
        Image { c, h, w, data: vec![0.0; c * h * w] }
    }

    /// An image from u8 pixels in C×H×W order, scaled to [0, 1] by 1/255.
    pub fn from_u8(c: usize, h: usize, w: usize, pixels: &[u8]) -> Result<Image> {
        Image::new(c, h, w, pixels.iter().map(|&p| p as f32 * (1.0 / 255.0)).collect())
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.c
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.h
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.w
    }

    /// `[C, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.c, self.h, self.w]
    }

    /// The channel-major values, length C·H·W.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The channel-major values, mutable (the shape cannot change).
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The values, consuming the image.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Channel `ch` as an H·W slice (row-major). Panics if `ch >= C`.
    pub fn plane(&self, ch: usize) -> &[f32] {
        let n = self.h * self.w;
        &self.data[ch * n..(ch + 1) * n]
    }

    /// The pixel at channel `ch`, row `y`, column `x`. Panics when out of range.
    pub fn at(&self, ch: usize, y: usize, x: usize) -> f32 {
        self.data[(ch * self.h + y) * self.w + x]
    }

    /// The sub-image `rows top..top+height`, `columns left..left+width`; errors when the box
    /// leaves the image or is empty.
    pub fn crop(&self, top: usize, left: usize, height: usize, width: usize) -> Result<Image> {
        if height == 0 || width == 0 || top + height > self.h || left + width > self.w {
            return Err(DataError::invalid(
                "Image::crop",
                format!("box {height}x{width} at ({top}, {left}) does not fit a {}x{} image", self.h, self.w),
            ));
        }
        let mut data = Vec::with_capacity(self.c * height * width);
        for ch in 0..self.c {
            for y in top..top + height {
                let row = (ch * self.h + y) * self.w;
                data.extend_from_slice(&self.data[row + left..row + left + width]);
            }
        }
        Ok(Image { c: self.c, h: height, w: width, data })
    }

    /// The whole image resized to `height`×`width` with bilinear interpolation (half-pixel
    /// centres, as `align_corners=False`). Output values stay within the input's range.
    pub fn resize(&self, height: usize, width: usize) -> Result<Image> {
        crate::data::resize::resized_crop(self, Region { top: 0, left: 0, height: self.h, width: self.w }, height, width)
    }
}

/// A rectangle inside an image, in pixels: rows `top..top+height`, columns `left..left+width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Number of rows.
    pub height: usize,
    /// Number of columns.
    pub width: usize,
}

impl Region {
    /// Area in pixels.
    pub fn area(&self) -> usize {
        self.height * self.width
    }
}
