//! Datasets, augmentations and loaders.
//!
//! - Sources: the embedded Fashion-MNIST subset ([`fashion_mnist_subset`]), IDX files
//!   ([`load_idx`], [`load_mnist`], [`load_fashion_mnist`]), CIFAR-10/100 binary batches
//!   ([`load_cifar10`], [`load_cifar100`]), image folders ([`load_image_folder`]) and a
//!   synthetic colour dataset ([`synthetic_colour`]); image–caption pairs ([`load_pairs`]). All give a [`Dataset`] of u8 images;
//!   every loader validates what it reads and reports errors naming the file.
//! - [`augment`]: seeded augmentations on C×H×W f32 [`Image`]s and the [`simclr`] pipeline.
//! - [`tasks`]: rotation, jigsaw, Lab colorization targets, MAE and SimMIM masks.
//! - [`DataRecipe`]: what a method asks of the data (views, a batch task) and the
//!   [`TrainBatch`] it gets.
//! - [`DataLoader`]: shuffled, batched, multi-view, parallel and prefetched batches that are
//!   reproducible from a seed at any thread count.

pub mod augment;
mod bytes;
pub mod captions;
pub mod cifar;
pub mod classes;
pub mod dataset;
pub mod embedded;
pub mod error;
pub mod export;
pub mod folder;
pub mod grid;
pub mod idx;
pub mod image;
pub mod image_file;
pub mod loader;
pub mod pairs;
pub mod recipe;
pub mod resize;
pub mod synthetic;
pub mod tasks;
pub mod tokenizer;

pub use augment::{simclr, Compose, RandomApply, SimclrConfig, Transform};
pub use captions::{CaptionSource, CaptionTask, CAPTION_TEMPLATES};
pub use cifar::{load_cifar10, load_cifar100, load_cifar_files, CifarKind};
pub use dataset::{Dataset, Split};
pub use embedded::fashion_mnist_subset;
pub use error::{DataError, Result};
pub use export::save_image;
pub use folder::{load_image_folder, FolderOptions};
pub use grid::ImageGrid;
pub use idx::{load_fashion_mnist, load_idx, load_idx_dir, load_mnist, MAX_IDX_BYTES};
pub use image::{Image, Region};
pub use image_file::ImageLimits;
pub use loader::{Batch, DataLoader, EpochIter, LoaderConfig, ViewBatch};
pub use pairs::{load_pairs, load_pairs_within};
pub use recipe::{BatchTask, DataRecipe, TrainBatch, ViewAugment};
pub use synthetic::{synthetic_colour, synthetic_split, SyntheticConfig};
pub use tokenizer::ClipTokenizer;
