//! The diagnostics' pictures, written to the run's `plots/` each epoch: the singular-value
//! spectrum of the held-out features, their cosine-similarity histograms, and their 2-D PCA
//! map coloured by class.

use std::path::Path;

use super::diagnose::Measured;
use super::pictures::epoch_file;
use super::plots::{line_chart, scatter_chart};

/// The diagnostics' picture names, in the order a report shows them.
pub const DIAGNOSTIC_PICTURES: [&str; 3] = ["spectrum", "similarity", "pca"];

/// Draws the three pictures of `m` at `epoch` into `dir`.
pub fn write_diagnostic_pictures(m: &Measured, dir: &Path, epoch: usize) -> crate::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create folder: {e}", dir.display()))?;
    let path = |name: &str| dir.join(epoch_file(name, epoch));
    let rank = m.get("rankme").unwrap_or(f64::NAN);
    let mut spectra = vec![("encoder", log_spectrum(&m.singular_values))];
    // The title names both ranks where there is a projector, in fewer words to fit.
    let title = match (&m.projector_singular_values, m.get("rankme_projector")) {
        (Some(sv), Some(projector)) => {
            spectra.push(("projector", log_spectrum(sv)));
            format!("held-out singular values, epoch {epoch} (RankMe {rank:.1}, projector {projector:.1})")
        }
        _ => format!("singular values of the held-out features, epoch {epoch} (RankMe {rank:.1})"),
    };
    line_chart(&path("spectrum"), &title, ("index", "log10 singular value"), &spectra)?;
    let h = &m.histograms;
    let mut series = vec![("same class", fractions(&h.same_class)), ("different class", fractions(&h.different_class))];
    if h.positive.iter().any(|&c| c > 0) {
        series.insert(0, ("positive pairs", fractions(&h.positive)));
    }
    line_chart(
        &path("similarity"),
        &format!("cosine similarity of pairs, epoch {epoch}"),
        ("cosine similarity", "fraction of pairs"),
        &series,
    )?;
    let groups: Vec<(&str, Vec<(f64, f64)>)> = m
        .classes
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let pts = m.map.iter().zip(&m.labels).filter(|(_, &l)| l == c as i64).map(|(p, _)| (p[0], p[1])).collect();
            (name.as_str(), pts)
        })
        .collect();
    scatter_chart(
        &path("pca"),
        &format!("held-out features on their first two principal components, epoch {epoch}"),
        ("PC 1", "PC 2"),
        &groups,
    )
}

/// `(index, log10 σ)` of the positive singular values: log10, so the tail of a collapsing
/// spectrum stays visible beside its head.
fn log_spectrum(singular_values: &[f64]) -> Vec<(f64, f64)> {
    singular_values.iter().enumerate().filter(|(_, s)| **s > 0.0).map(|(k, s)| ((k + 1) as f64, s.log10())).collect()
}

/// Each bin's share of the pairs, against the bin's centre in [−1, 1].
fn fractions(counts: &[u64]) -> Vec<(f64, f64)> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let width = 2.0 / counts.len().max(1) as f64;
    counts.iter().enumerate().map(|(i, &c)| (-1.0 + (i as f64 + 0.5) * width, c as f64 / total)).collect()
}
