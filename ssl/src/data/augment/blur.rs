//! Gaussian blur with a random sigma (SimCLR's blur), separable, with reflect padding.

use tessera_engine::Generator;

use super::{uniform, Transform};
use crate::data::error::{DataError, Result};
use crate::data::image::Image;

/// Index `i` mirrored into `0..n` without repeating the edge (reflect padding), for any
/// offset, so kernels wider than the image still work.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

/// A normalized 1-d Gaussian kernel of `size` taps.
fn kernel(size: usize, sigma: f64) -> Vec<f32> {
    let half = (size as f64 - 1.0) / 2.0;
    let k: Vec<f64> = (0..size).map(|i| (-0.5 * ((i as f64 - half) / sigma).powi(2)).exp()).collect();
    let sum: f64 = k.iter().sum();
    k.iter().map(|v| (v / sum) as f32).collect()
}

/// Convolves every row (`horizontal`) or column of every channel with `k`.
fn convolve(img: &Image, k: &[f32], horizontal: bool) -> Image {
    let [c, h, w] = img.shape();
    let r = (k.len() / 2) as isize;
    let mut out = Image::zeros(c, h, w);
    let (src, dst) = (img.data(), out.data_mut());
    let (len, stride_in_line) = if horizontal { (w, 1) } else { (h, w) };
    let taps: Vec<Vec<usize>> = (0..len as isize).map(|p| (-r..=r).map(|d| reflect(p + d, len)).collect()).collect();
    for ch in 0..c {
        for line in 0..(if horizontal { h } else { w }) {
            let base = ch * h * w + if horizontal { line * w } else { line };
            for (p, tp) in taps.iter().enumerate() {
                let acc: f32 = tp.iter().zip(k).map(|(&q, &kv)| kv * src[base + q * stride_in_line]).sum();
                dst[base + p * stride_in_line] = acc;
            }
        }
    }
    out
}

/// Blurs with a Gaussian of `kernel_size` taps (odd) and sigma drawn uniformly from `sigma`.
/// Weights are non-negative and sum to one, so [0, 1] images stay in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianBlur {
    kernel_size: usize,
    sigma: (f64, f64),
}

impl GaussianBlur {
    /// A blur of odd `kernel_size` ≥ 1 with `sigma` range 0 < min ≤ max.
    pub fn new(kernel_size: usize, sigma: (f64, f64)) -> Result<Self> {
        if kernel_size.is_multiple_of(2) {
            return Err(DataError::invalid("GaussianBlur", format!("kernel size must be odd and positive, got {kernel_size}")));
        }
        if !(sigma.0 > 0.0 && sigma.0 <= sigma.1 && sigma.1.is_finite()) {
            return Err(DataError::invalid("GaussianBlur", format!("sigma needs 0 < min <= max, got {sigma:?}")));
        }
        Ok(GaussianBlur { kernel_size, sigma })
    }

    /// SimCLR's blur for `image_size`-pixel images: a kernel of 10% of the side (made odd)
    /// and sigma in [0.1, 2.0].
    pub fn for_image_size(image_size: usize) -> Result<Self> {
        GaussianBlur::new((image_size / 10) | 1, (0.1, 2.0))
    }
}

impl Transform for GaussianBlur {
    fn apply(&self, img: Image, rng: &mut Generator) -> Result<Image> {
        let sigma = uniform(rng, self.sigma.0, self.sigma.1);
        if self.kernel_size == 1 {
            return Ok(img);
        }
        let k = kernel(self.kernel_size, sigma);
        Ok(convolve(&convolve(&img, &k, true), &k, false))
    }
}
