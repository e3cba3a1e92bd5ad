//! A grid of images to look at: one row per sample, one column per stage (original, masked,
//! reconstructed; greyscale, colorized, ground truth), written as one PNG.

use std::path::Path;

use tessera_engine::{DType, Device, Tensor};

use super::error::{DataError, Result};
use super::export::save_image;
use super::image::Image;

/// Pixels between tiles (drawn white, so dark images keep visible borders).
const GAP: usize = 2;

/// The smallest tile side [`ImageGrid::render`] draws.
pub const MIN_TILE: usize = 84;

/// Columns of equally sized images, in [0, 1] display space.
#[derive(Debug, Clone)]
pub struct ImageGrid {
    /// File stem under the run's `plots/` (`reconstructions` gives `reconstructions-epochNN.png`).
    pub name: &'static str,
    /// What each column shows, left to right (printed when the grid is written).
    pub columns: Vec<(String, Tensor)>,
}

impl ImageGrid {
    /// An empty grid named `name`.
    pub fn new(name: &'static str) -> ImageGrid {
        ImageGrid { name, columns: Vec::new() }
    }

    /// Adds a column: `images` `[B, C, H, W]` (C 1 or 3) with values in [0, 1] (clamped when
    /// drawn); every column must have the shape of the first.
    pub fn column(mut self, title: impl Into<String>, images: &Tensor) -> tessera_engine::Result<ImageGrid> {
        let title = title.into();
        if let Some((first, t)) = self.columns.first() {
            if t.shape() != images.shape() {
                let msg = format!("column '{title}' has shape {:?}, column '{first}' {:?}", images.shape(), t.shape());
                return Err(tessera_engine::Error::invalid("ImageGrid", msg));
            }
        } else if images.shape().len() != 4 || !matches!(images.shape()[1], 1 | 3) {
            let msg = format!("column '{title}' must be [B, 1 or 3, H, W], got {:?}", images.shape());
            return Err(tessera_engine::Error::invalid("ImageGrid", msg));
        }
        let host = images.to_device(Device::Cpu)?.to_dtype(DType::F32)?.contiguous()?;
        self.columns.push((title, host));
        Ok(self)
    }

    /// Column titles, left to right.
    pub fn titles(&self) -> Vec<&str> {
        self.columns.iter().map(|(t, _)| t.as_str()).collect()
    }

    /// The whole grid as one image, tiles enlarged (nearest neighbour) to at least
    /// [`MIN_TILE`] pixels so 28 × 28 images can be looked at.
    pub fn render(&self) -> Result<Image> {
        let h = self.columns.first().map_or(1, |(_, t)| t.shape()[2].max(1));
        self.render_scaled(MIN_TILE.div_ceil(h).max(1))
    }

    /// The whole grid as one image with each pixel drawn `scale × scale` (greyscale columns
    /// drawn as grey RGB when any column has colour).
    pub fn render_scaled(&self, scale: usize) -> Result<Image> {
        let Some((_, first)) = self.columns.first() else {
            return Err(DataError::invalid("ImageGrid", "has no columns"));
        };
        let [rows, _, sh, sw] = [first.shape()[0], first.shape()[1], first.shape()[2], first.shape()[3]];
        let scale = scale.max(1);
        let (h, w) = (sh * scale, sw * scale);
        let channels = self.columns.iter().map(|(_, t)| t.shape()[1]).max().unwrap_or(1);
        let cols = self.columns.len();
        let (gh, gw) = (rows * (h + GAP) + GAP, cols * (w + GAP) + GAP);
        let mut out = vec![1.0f32; channels * gh * gw];
        for (col, (_, t)) in self.columns.iter().enumerate() {
            let c = t.shape()[1];
            let data = t.to_vec::<f32>()?;
            for row in 0..rows {
                let (y0, x0) = (GAP + row * (h + GAP), GAP + col * (w + GAP));
                for ch in 0..channels {
                    let src = &data[(row * c + ch.min(c - 1)) * sh * sw..][..sh * sw];
                    for y in 0..h {
                        let dst = &mut out[(ch * gh + y0 + y) * gw + x0..][..w];
                        for (x, d) in dst.iter_mut().enumerate() {
                            *d = src[(y / scale) * sw + x / scale];
                        }
                    }
                }
            }
        }
        Image::new(channels, gh, gw, out)
    }

    /// Renders the grid and writes it as PNG (or JPEG, by extension); errors name the path.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_image(path, &self.render()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_each_column_and_row_with_gaps() {
        let a = Tensor::from_vec(vec![0.25f32; 2 * 3 * 3], &[2, 1, 3, 3]).unwrap();
        let b = Tensor::from_vec(vec![0.5f32; 2 * 3 * 3 * 3], &[2, 3, 3, 3]).unwrap();
        let err = ImageGrid::new("t").column("a", &a).unwrap().column("b", &b).unwrap_err().to_string();
        assert!(err.contains("[2, 3, 3, 3]") && err.contains("[2, 1, 3, 3]"), "{err}");
        let grid = ImageGrid::new("t").column("a", &a).unwrap().column("a again", &a).unwrap();
        let img = grid.render_scaled(1).unwrap();
        assert_eq!(img.shape(), [1, 2 * (3 + GAP) + GAP, 2 * (3 + GAP) + GAP]);
        let w = img.width();
        // Row 1, column 1 starts at (GAP + 5, GAP + 5); gaps stay white.
        assert_eq!(img.data()[(GAP + 5) * w + GAP + 5], 0.25);
        assert_eq!(img.data()[w], 1.0);
        assert_eq!(grid.titles(), ["a", "a again"]);
        assert_eq!(grid.render().unwrap().height(), 2 * (3 * 28 + GAP) + GAP, "3-px tiles drawn 28×");
    }
}
