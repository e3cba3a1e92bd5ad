//! The embedded default dataset: the first 10,000 training and 2,000 test images of
//! Fashion-MNIST (28×28 grayscale, 10 classes), compiled into the binary so the main job
//! needs no download. `ssl/data/fashion-mnist-subset/README.md` says how it was cut and
//! carries the dataset's MIT licence notice.

use std::path::Path;

use super::bytes::Stream;
use super::classes::{owned, FASHION_MNIST_CLASSES};
use super::dataset::{Dataset, Split};
use super::error::Result;
use super::idx;

const TRAIN_IMAGES: &[u8] = include_bytes!("../../data/fashion-mnist-subset/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../../data/fashion-mnist-subset/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../../data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../../data/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz");

/// Number of training images in the embedded subset.
pub const EMBEDDED_TRAIN_LEN: usize = 10_000;
/// Number of test images in the embedded subset.
pub const EMBEDDED_TEST_LEN: usize = 2_000;

/// One split of the embedded Fashion-MNIST subset: images `[1, 28, 28]`, labels `0..10`
/// named by [`FASHION_MNIST_CLASSES`]. Decompressing and validating takes a few tens of ms.
pub fn fashion_mnist_subset(split: Split) -> Result<Dataset> {
    let (prefix, images, labels) = match split {
        Split::Train => ("train", TRAIN_IMAGES, TRAIN_LABELS),
        Split::Test => ("t10k", TEST_IMAGES, TEST_LABELS),
    };
    // Errors (which cannot happen for the committed files) name the source file in the repo.
    let ip = format!("<embedded>/fashion-mnist-subset/{prefix}-images-idx3-ubyte.gz");
    let lp = format!("<embedded>/fashion-mnist-subset/{prefix}-labels-idx1-ubyte.gz");
    let name = format!("fashion-mnist-subset/{prefix}");
    let (ip, lp) = (Path::new(&ip), Path::new(&lp));
    let (images, labels) = (Stream::from_slice(ip, images)?, Stream::from_slice(lp, labels)?);
    idx::parse_idx_pair(&name, ip, images, lp, labels, owned(&FASHION_MNIST_CLASSES))
}
