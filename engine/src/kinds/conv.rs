//! Sliding-window parameters: the `(height, width)` pairs every conv and pooling op takes,
//! and the validated geometry of one window over one image that both backends' kernels read.

/// A `(height, width)` pair of window parameters.
pub type Pair = (usize, usize);

/// The geometry of a 2-D sliding window over one image. Validated by the ops that build it:
/// the kernels assume every size is consistent (`oh`, `ow` may be smaller than the number of
/// windows that fit, which the transposed convolution needs for its `output_padding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    /// Rows of the column matrix: `channels · kh · kw`.
    pub fn col_rows(&self) -> usize {
        self.channels * self.kh * self.kw
    }

    /// Columns of the column matrix: the number of output positions `oh · ow`.
    pub fn col_len(&self) -> usize {
        self.oh * self.ow
    }

    /// Elements of one image, `channels · h · w`.
    pub fn image_len(&self) -> usize {
        self.channels * self.h * self.w
    }

    /// Whether the column matrix *is* the image (1×1 kernel, stride 1, no padding, output the
    /// size of the input), so a convolution is a plain GEMM on the input.
    pub fn is_identity(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.ph == 0
            && self.pw == 0
            && self.oh == self.h
            && self.ow == self.w
    }
}
