//! kNN classification on frozen features: cosine similarity to every training feature, the
//! k most similar vote, by majority or weighted by `exp(s / τ)` (InstDisc, lightly).

use rayon::prelude::*;
use tessera_engine::{Error, Result, Tensor};

/// Accuracies of both voting rules on one test set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnnAccuracy {
    pub k: usize,
    /// Each neighbour one vote.
    pub majority: f64,
    /// Votes weighted by `exp(similarity / temperature)`.
    pub weighted: f64,
}

fn l2_normalize_rows(x: &[f32], d: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    for row in out.chunks_mut(d) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= n);
    }
    out
}

/// kNN accuracy of `test [M, D]` against `train [N, D]` (f32 features, i64 labels in
/// `0..num_classes`). Ties in similarity go to the lower training index, so results are
/// deterministic.
pub fn knn_accuracy(
    train: &Tensor,
    train_labels: &[i64],
    test: &Tensor,
    test_labels: &[i64],
    num_classes: usize,
    k: usize,
    temperature: f64,
) -> Result<KnnAccuracy> {
    if train.rank() != 2 || test.rank() != 2 || train.shape()[1] != test.shape()[1] {
        return Err(Error::shapes_hint("knn", train.shape(), test.shape(), "features must be [N, D] and [M, D] with the same D"));
    }
    let (n, d, m) = (train.shape()[0], train.shape()[1], test.shape()[0]);
    if train_labels.len() != n || test_labels.len() != m || n == 0 || m == 0 {
        return Err(Error::invalid(
            "knn",
            format!(
                "need non-empty feature sets with one label each: {n} train features / {} labels, {m} test / {}",
                train_labels.len(),
                test_labels.len()
            ),
        ));
    }
    if k == 0 || k > n {
        return Err(Error::invalid("knn", format!("k = {k} must lie in 1..={n} (the training set size)")));
    }
    if let Some(bad) = train_labels.iter().chain(test_labels).find(|&&l| l < 0 || l as usize >= num_classes) {
        return Err(Error::invalid("knn", format!("label {bad} is outside 0..{num_classes}")));
    }
    let tr = Tensor::from_vec(l2_normalize_rows(&train.to_dtype(tessera_engine::DType::F32)?.to_vec::<f32>()?, d), &[n, d])?;
    let te = l2_normalize_rows(&test.to_dtype(tessera_engine::DType::F32)?.to_vec::<f32>()?, d);
    let trt = tr.t()?;
    // Similarities in blocks of test rows, so the M×N matrix is never held whole.
    let block = 256;
    let votes: Vec<(bool, bool)> = (0..m.div_ceil(block))
        .flat_map(|b| {
            let rows = block.min(m - b * block);
            let q = Tensor::from_slice(&te[b * block * d..(b * block + rows) * d], &[rows, d])
                .and_then(|q| q.matmul(&trt))
                .and_then(|s| s.to_vec::<f32>());
            let sims = match q {
                Ok(s) => s,
                Err(_) => return Vec::new(),
            };
            (0..rows)
                .into_par_iter()
                .map(|r| {
                    let row = &sims[r * n..(r + 1) * n];
                    let mut idx: Vec<usize> = (0..n).collect();
                    let cmp = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
                    idx.select_nth_unstable_by(k - 1, cmp);
                    let mut top = idx[..k].to_vec();
                    top.sort_by(cmp);
                    let mut maj = vec![0f64; num_classes];
                    let mut wei = vec![0f64; num_classes];
                    for &j in &top {
                        let c = train_labels[j] as usize;
                        maj[c] += 1.0;
                        wei[c] += (row[j] as f64 / temperature).exp();
                    }
                    let truth = test_labels[b * block + r] as usize;
                    (argmax(&maj) == truth, argmax(&wei) == truth)
                })
                .collect()
        })
        .collect();
    if votes.len() != m {
        return Err(Error::invalid("knn", "similarity computation failed"));
    }
    let acc = |f: fn(&(bool, bool)) -> bool| votes.iter().filter(|v| f(v)).count() as f64 / m as f64;
    Ok(KnnAccuracy { k, majority: acc(|v| v.0), weighted: acc(|v| v.1) })
}

/// Index of the largest value; the lowest index wins ties (the nearest neighbour's class
/// comes first in vote order only through counts, so ties resolve by class index).
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
