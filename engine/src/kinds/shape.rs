//! How a padded border is filled.

/// How [`Tensor::pad`] fills the new border.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PadMode {
    /// A constant (converted to the tensor's dtype).
    Constant(f64),
    /// The mirror image without repeating the edge (`[a b c]` padded by 2 on the left gives
    /// `[c b a b c]`); each padding must be smaller than its axis.
    Reflect,
}
