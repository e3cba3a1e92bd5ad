//! Grayscale conversion, used by `RandomGrayscale`, by the contrast and saturation jitters,
//! and by anything that needs a luminance plane.

use tessera_engine::Generator;

use super::{check_probability, Transform};
use crate::data::error::Result;
use crate::data::image::Image;

/// ITU-R 601-2 luma weights for R, G, B (the ones torchvision uses).
const LUMA: [f32; 3] = [0.2989, 0.587, 0.114];

/// The gray plane (H·W values) of an image: luma for 3 channels (taken as RGB), the image
/// itself for 1 channel, and the channel mean for any other count.
pub(crate) fn gray_plane(img: &Image) -> Vec<f32> {
    let c = img.channels();
    let n = img.height() * img.width();
    match c {
        1 => img.data().to_vec(),
        3 => {
            let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
            (0..n).map(|i| LUMA[0] * r[i] + LUMA[1] * g[i] + LUMA[2] * b[i]).collect()
        }
        _ => {
            let mut out = vec![0.0f32; n];
            for ch in 0..c {
                for (o, v) in out.iter_mut().zip(img.plane(ch)) {
                    *o += v;
                }
            }
            out.iter_mut().for_each(|o| *o /= c as f32);
            out
        }
    }
}

/// A 1-channel image of the gray plane (see [`gray_plane`]); values stay in [0, 1] for
/// inputs in [0, 1] since the weights are convex.
pub fn to_grayscale(img: &Image) -> Image {
    let mut out = Image::zeros(1, img.height(), img.width());
    out.data_mut().copy_from_slice(&gray_plane(img));
    out
}

/// With probability `p`, replaces every channel by the gray plane, keeping the channel
/// count (so a 3-channel pipeline stays 3-channel). A no-op on 1-channel images.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomGrayscale {
    p: f64,
}

impl RandomGrayscale {
    /// Grayscale with probability `p` in [0, 1].
    pub fn new(p: f64) -> Result<Self> {
        check_probability("RandomGrayscale", p)?;
        Ok(RandomGrayscale { p })
    }
}

impl Transform for RandomGrayscale {
    fn apply(&self, mut img: Image, rng: &mut Generator) -> Result<Image> {
        if rng.next_f64() >= self.p || img.channels() == 1 {
            return Ok(img);
        }
        let gray = gray_plane(&img);
        for plane in img.data_mut().chunks_exact_mut(gray.len()) {
            plane.copy_from_slice(&gray);
        }
        Ok(img)
    }
}
