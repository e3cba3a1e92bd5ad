//! Datasets, augmentations and loaders.
