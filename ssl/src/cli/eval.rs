//! `tessera eval`: a saved run's encoder under the kNN or linear protocol.

use super::saved_run::load_run;
use crate::eval::{encode_dataset, knn_accuracy, linear_probe_accuracy, LinearProbeConfig};
use serde_json::json;
use std::path::Path;

/// `tessera eval`: one JSON line.
pub fn eval_command(dir: &Path, protocol: &str, dataset: Option<&str>, pool: Option<&str>) -> crate::Result<String> {
    if protocol != "knn" && protocol != "linear" {
        return Err(format!("unknown protocol '{protocol}' (expected knn, linear or zero-shot)").into());
    }
    let (cfg, method, tr, te, norm) = load_run(dir, dataset, pool)?;
    let e = |e: tessera_autograd::Error| e.to_string();
    let (ftr, fte) = (
        encode_dataset(method.encoder(), &tr, 512, Some(norm)).map_err(e)?,
        encode_dataset(method.encoder(), &te, 512, Some(norm)).map_err(e)?,
    );
    Ok(if protocol == "knn" {
        let k = knn_accuracy(&ftr, tr.labels(), &fte, te.labels(), tr.num_classes(), cfg.eval.knn_k, cfg.eval.knn_temperature)?;
        json!({"protocol": "knn", "k": k.k, "acc": k.majority, "weighted_acc": k.weighted, "pool": cfg.pool}).to_string()
    } else {
        let lp =
            LinearProbeConfig { epochs: cfg.eval.linear_epochs, lr: cfg.eval.linear_lr, seed: cfg.seed, ..LinearProbeConfig::default() };
        let acc = linear_probe_accuracy(&ftr, tr.labels(), &fte, te.labels(), tr.num_classes(), &lp).map_err(e)?;
        json!({"protocol": "linear", "epochs": lp.epochs, "acc": acc, "pool": cfg.pool}).to_string()
    })
}
