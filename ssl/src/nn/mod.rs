//! Layers, encoders, heads, optimizers and checkpoints.
//!
//! Models implement [`Module`]: `forward(&Var) -> Var` plus hierarchical names for every
//! parameter and buffer, following torchvision (ResNet) and timm (ViT) so state dicts are
//! interchangeable with PyTorch's through safetensors ([`checkpoint`]). Layers are created
//! in f32 from an explicit seeded [`Generator`](tessera_engine::Generator) with PyTorch's
//! default initializations; [`Module::to_dtype`] converts a model (f64 for gradient checks).

mod attention;
mod batchnorm;
pub mod checkpoint;
mod container;
mod conv;
mod dropout;
mod embedding;
pub mod encoders;
mod error;
pub mod functional;
mod heads;
pub mod init;
mod layernorm;
mod linear;
mod mae_decoder;
mod module;
pub mod optim;
pub mod patches;
mod resnet;
mod text;
mod vit;

pub use attention::{vit_linear, Attention, Mlp, TransformerBlock};
pub use batchnorm::{ghost_batch_norm, BatchNorm, GhostBatchNormGuard, NormDims};
pub use checkpoint::{load_model, load_model_prefixed, load_optimizer, load_state_dict, save_model, save_optimizer};
pub use container::{Activation, Identity, Sequential};
pub use conv::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use encoders::{auto_patch, check_encoder_name, freeze_prefix, is_vit, parse_pool, EncoderSpec, ENCODERS};
pub use error::{MismatchReport, NnError, NnResult};
pub use heads::ProjectionHead;
pub use layernorm::LayerNorm;
pub use linear::Linear;
pub use mae_decoder::{MaeDecoder, MaeDecoderConfig};
pub use module::{in_eval_mode, join, Buffer, Encoder, Entry, Module, Param};
pub use optim::{AdamW, Lars, Optim, Optimizer, ParamGroup, Schedule, Sgd};
pub use patches::{patch_mask_to_pixels, patchify, unpatchify};
pub use resnet::{BlockKind, ResNet, ResNetConfig, Stem};
pub use text::{TextConfig, TextTransformer};
pub use vit::{sincos_2d, Pool, PosEmbed, VisionTransformer, VitConfig, WithPool};
