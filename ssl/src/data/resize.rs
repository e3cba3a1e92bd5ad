//! Bilinear resampling of an image region, the kernel under `Image::resize` and the crop
//! augmentations (which call it; it knows nothing of them).

use crate::data::error::{DataError, Result};
use crate::data::image::{Image, Region};

/// Bilinear sampling positions along one axis: for each output coordinate, the two source
/// indices (absolute) and the weight of the second. Half-pixel centres, as
/// `align_corners=False`, so an output the size of the region reproduces it exactly.
fn axis_taps(offset: usize, len: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = len as f64 / out as f64;
    (0..out)
        .map(|o| {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(len - 1);
            let i1 = (i0 + 1).min(len - 1);
            (offset + i0, offset + i1, (src - i0 as f64).clamp(0.0, 1.0) as f32)
        })
        .collect()
}

/// The `region` of `img` resampled to `out_h`×`out_w` with bilinear interpolation. Output
/// values are convex combinations of inputs, so [0, 1] images stay in [0, 1].
pub fn resized_crop(img: &Image, region: Region, out_h: usize, out_w: usize) -> Result<Image> {
    let [c, h, w] = img.shape();
    if region.height == 0 || region.width == 0 || region.top + region.height > h || region.left + region.width > w {
        return Err(DataError::invalid("resized_crop", format!("region {region:?} does not fit a {h}x{w} image")));
    }
    if out_h == 0 || out_w == 0 {
        return Err(DataError::invalid("resized_crop", format!("output size must be positive, got {out_h}x{out_w}")));
    }
    let ys = axis_taps(region.top, region.height, out_h);
    let xs = axis_taps(region.left, region.width, out_w);
    let src = img.data();
    let mut out = Image::zeros(c, out_h, out_w);
    let dst = out.data_mut();
    // Separable: each source row of the region is interpolated horizontally once, then
    // output rows blend two of those (a contiguous, vectorizable loop).
    let mut rows = vec![0.0f32; region.height * out_w];
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for (ry, row) in rows.chunks_exact_mut(out_w).enumerate() {
            let line = &plane[(region.top + ry) * w..(region.top + ry + 1) * w];
            for (o, &(x0, x1, lx)) in row.iter_mut().zip(&xs) {
                *o = line[x0] + lx * (line[x1] - line[x0]);
            }
        }
        for (oy, &(y0, y1, ly)) in ys.iter().enumerate() {
            let (r0, r1) = (&rows[(y0 - region.top) * out_w..][..out_w], &rows[(y1 - region.top) * out_w..][..out_w]);
            let out_row = &mut dst[(ch * out_h + oy) * out_w..][..out_w];
            for ((o, &a), &b) in out_row.iter_mut().zip(r0).zip(r1) {
                *o = a + ly * (b - a);
            }
        }
    }
    Ok(out)
}
