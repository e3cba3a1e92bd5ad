//! Fused ops the SSL layer needs, each with its own backward rule: one pass forward, one
//! pass backward, and only the tensors the rule needs saved.

mod attention;
mod dropout;
mod embedding;
mod linear;
mod loss;
mod norm;

pub use attention::{attention_probabilities, multi_head_attention, scaled_dot_product_attention, scaled_dot_product_attention_packed};
pub use dropout::dropout;
pub use embedding::embedding;
pub use linear::{linear, linear_of_activation};
pub use loss::{cross_entropy, cross_entropy_soft, l1_loss, mse_loss};
pub use norm::{batch_norm, batch_norm_relu, layer_norm, BatchNormOutput};
