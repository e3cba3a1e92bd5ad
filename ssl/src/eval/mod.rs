//! Evaluation every method shares, on frozen encoder features: kNN, the linear probe, and
//! the baselines (random weights, raw pixels), zero-shot classification for image–text
//! models, and the diagnostics of a representation.

mod attention;
pub mod diagnostics;
mod features;
mod knn;
mod linear_probe;
mod pca;
mod zero_shot;

pub use attention::{attention_rollout, class_token_attention};
pub use diagnostics::{
    alignment, effective_rank, similarity_histograms, singular_values, spread, uniformity, SimilarityHistograms, Spread,
};
pub use features::{encode_dataset, encode_images, image_batches, pixel_features};
pub use knn::{knn_accuracy, KnnAccuracy};
pub use linear_probe::{linear_probe_accuracy, standardize, LinearProbeConfig};
pub use pca::pca_2d;
pub use zero_shot::{class_embeddings, zero_shot_accuracy, zero_shot_predict, DualEncoder};
