//! `tessera embed`: a saved run's image features as `.npy`.

use super::npy;
use super::saved_run::load_run;
use crate::data::Split;
use crate::eval::encode_dataset;
use std::path::Path;

/// `tessera embed`: the encoder's features of one split as `[N, D]` f32 `.npy`.
pub fn embed_command(dir: &Path, split: &str, out: &Path, dataset: Option<&str>, pool: Option<&str>, force: bool) -> crate::Result<()> {
    let split = match split {
        "train" => Split::Train,
        "test" => Split::Test,
        other => return Err(format!("unknown split '{other}' (expected train or test)").into()),
    };
    if out.exists() && !force {
        return Err(format!("{} already exists; pass --force to replace it", out.display()).into());
    }
    let (_, method, tr, te, norm) = load_run(dir, dataset, pool)?;
    let ds = if split == Split::Train { &tr } else { &te };
    let f = encode_dataset(method.encoder(), ds, 512, Some(norm))?;
    npy::write_npy(out, &f.to_vec::<f32>()?, f.shape(), force)?;
    println!("wrote {} features of width {} to {}", f.shape()[0], f.shape()[1], out.display());
    Ok(())
}
