//! Method pictures (MAE reconstructions, colorizations): written to the run's `plots/` every
//! epoch, and by `tessera reconstruct` from a saved run.

use std::path::{Path, PathBuf};

use crate::data::Dataset;
use crate::eval::image_batches;
use crate::methods::Method;
use crate::nn::in_eval_mode;
use tessera_engine::Tensor;

/// Test images in each picture: the first ones of the test split, the same every epoch.
pub const PICTURE_IMAGES: usize = 8;

/// The first `n` images of `ds`, raw pixels in [0, 1].
pub fn fixed_images(ds: &Dataset, n: usize) -> crate::Result<Tensor> {
    let n = n.min(ds.len()).max(1);
    image_batches(ds, n, None).next().ok_or_else(|| "the test split has no images to draw".to_string())?.map_err(crate::Error::msg)
}

/// Writes the method's picture of `images` to `path(picture name)`, in eval mode and without
/// a graph; returns the column titles, or `None` when the method draws nothing.
pub fn write_picture(
    method: &dyn Method,
    images: &Tensor,
    norm: (f32, f32),
    path: impl FnOnce(&str) -> PathBuf,
) -> crate::Result<Option<Vec<String>>> {
    let grid = in_eval_mode(method, || method.visualize(images, norm));
    let Some(grid) = grid? else { return Ok(None) };
    let path = path(grid.name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create folder: {e}", dir.display()))?;
    }
    grid.save(&path)?;
    Ok(Some(grid.titles().into_iter().map(String::from).collect()))
}

/// The per-epoch file name of a picture named `name`.
pub fn epoch_file(name: &str, epoch: usize) -> String {
    format!("{name}-epoch{epoch:02}.png")
}

/// `tessera reconstruct`: the method's picture of the run's fixed test images, from its
/// saved weights. An existing `out` is kept unless `force`.
pub fn reconstruct_command(dir: &Path, out: &Path, images: usize, force: bool) -> crate::Result<()> {
    if out.exists() && !force {
        return Err(format!("{}: already exists (pass --force to replace it)", out.display()).into());
    }
    let (cfg, method, _, te, norm) = super::saved_run::load_run(dir, None, None)?;
    let batch = fixed_images(&te, images)?;
    match write_picture(method.as_ref(), &batch, norm, |_| out.to_path_buf())? {
        Some(titles) => {
            println!("{}: {} test images; columns: {}", out.display(), batch.shape()[0], titles.join(", "));
            Ok(())
        }
        None => Err(format!("{} has no picture to draw (methods with one: mae, simmim, colorization)", cfg.method).into()),
    }
}
