//! Window geometry shared by the convolution and pooling tests.

use proptest::prelude::*;

/// A `(height, width)` pair: kernel, stride, padding or dilation.
pub type P = (usize, usize);

/// The output length of a window sweep, `None` when the window does not fit.
pub fn out_len(n: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let eff = d * (k - 1) + 1;
    (n + 2 * p >= eff).then(|| (n + 2 * p - eff) / s + 1)
}

/// Kernel, stride, padding and dilation, some of which do not fit the small inputs drawn.
pub fn window_params() -> impl Strategy<Value = (P, P, P, P)> {
    ((1usize..4, 1usize..4), (1usize..3, 1usize..3), (0usize..3, 0usize..2), (1usize..3, 1usize..3))
}
