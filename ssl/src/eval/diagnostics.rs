//! What a representation looks like, as the SSL literature measures it (definitions as the
//! cited papers give them): alignment and uniformity on the hypersphere (Wang &
//! Isola 2020), effective rank (RankMe, Garrido et al. 2023), lightly's collapse standard
//! deviation, dead dimensions and cosine-similarity histograms. Everything works on host
//! features `[N, D]` in f64, without gradients: these are measurements, not losses.

use tessera_engine::{Device, Tensor};

/// Features as rows of f64.
fn rows(x: &Tensor) -> tessera_engine::Result<(Vec<f64>, usize, usize)> {
    let s = x.shape();
    if s.len() != 2 {
        return Err(tessera_engine::Error::invalid("diagnostics", format!("features must be [N, D], got {s:?}")));
    }
    Ok((x.to_device(Device::Cpu)?.to_vec_f64()?, s[0], s[1]))
}

/// Rows scaled to unit length (a zero row stays zero).
fn unit_rows(v: &[f64], d: usize) -> Vec<f64> {
    v.chunks(d.max(1))
        .flat_map(|r| {
            let n = r.iter().map(|x| x * x).sum::<f64>().sqrt();
            r.iter().map(move |x| if n > 0.0 { x / n } else { 0.0 })
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Alignment: the mean over positive pairs (row i of `a` with row i of `b`) of
/// ‖f(x) − f(y)‖₂^α on L2-normalized features (α = 2 in the paper). 0 when every pair
/// coincides, 4 when every pair is antipodal.
pub fn alignment(a: &Tensor, b: &Tensor, alpha: f64) -> tessera_engine::Result<f64> {
    if a.shape() != b.shape() {
        return Err(tessera_engine::Error::shapes("alignment", a.shape(), b.shape()));
    }
    let ((va, n, d), (vb, _, _)) = (rows(a)?, rows(b)?);
    let (ua, ub) = (unit_rows(&va, d), unit_rows(&vb, d));
    let sum: f64 = ua.chunks(d.max(1)).zip(ub.chunks(d.max(1))).map(|(x, y)| (2.0 - 2.0 * dot(x, y)).max(0.0).powf(alpha / 2.0)).sum();
    Ok(sum / n.max(1) as f64)
}

/// Uniformity: log of the mean over all pairs i < j of exp(−t‖f(xᵢ) − f(xⱼ)‖²) on
/// L2-normalized features (t = 2 in the paper). Lower is more uniform; 0 when all points
/// coincide.
pub fn uniformity(x: &Tensor, t: f64) -> tessera_engine::Result<f64> {
    let (v, n, d) = rows(x)?;
    if n < 2 {
        return Err(tessera_engine::Error::invalid("uniformity", format!("needs at least two points, got {n}")));
    }
    let u = unit_rows(&v, d);
    let r: Vec<&[f64]> = u.chunks(d.max(1)).collect();
    // log-mean-exp, stabilized by the largest term (the closest pair).
    let terms: Vec<f64> =
        (0..n).flat_map(|i| ((i + 1)..n).map(move |j| (i, j))).map(|(i, j)| -t * (2.0 - 2.0 * dot(r[i], r[j])).max(0.0)).collect();
    let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    Ok(m + (terms.iter().map(|e| (e - m).exp()).sum::<f64>() / terms.len() as f64).ln())
}

/// Singular values of `x` `[N, D]`, largest first: square roots of the eigenvalues of the
/// smaller Gram matrix (XᵀX or XXᵀ), found by cyclic Jacobi rotations in f64.
pub fn singular_values(x: &Tensor) -> tessera_engine::Result<Vec<f64>> {
    let (v, n, d) = rows(x)?;
    let k = n.min(d);
    // Gram matrix of the smaller side.
    let mut g = vec![0.0; k * k];
    for i in 0..k {
        for j in i..k {
            let s = if d <= n { (0..n).map(|r| v[r * d + i] * v[r * d + j]).sum::<f64>() } else { dot(&v[i * d..][..d], &v[j * d..][..d]) };
            g[i * k + j] = s;
            g[j * k + i] = s;
        }
    }
    let mut eig = symmetric_eigenvalues(g, k);
    eig.sort_by(|a, b| b.total_cmp(a));
    Ok(eig.into_iter().map(|e| e.max(0.0).sqrt()).collect())
}

/// Eigenvalues of the symmetric `k × k` matrix `a` (cyclic Jacobi until the off-diagonal
/// mass is negligible against the diagonal's).
fn symmetric_eigenvalues(mut a: Vec<f64>, k: usize) -> Vec<f64> {
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..64 {
        let off: f64 = (0..k).flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * k + j].powi(2)).sum();
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..k {
            for q in (p + 1)..k {
                let apq = a[p * k + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * k + q] - a[p * k + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..k {
                    let (arp, arq) = (a[r * k + p], a[r * k + q]);
                    a[r * k + p] = c * arp - s * arq;
                    a[r * k + q] = s * arp + c * arq;
                }
                for r in 0..k {
                    let (apr, aqr) = (a[p * k + r], a[q * k + r]);
                    a[p * k + r] = c * apr - s * aqr;
                    a[q * k + r] = s * apr + c * aqr;
                }
            }
        }
    }
    (0..k).map(|i| a[i * k + i]).collect()
}

/// RankMe's effective rank of singular values σ: exp(−Σ pₖ log pₖ) with
/// pₖ = σₖ / Σσ + 1e-7; at most min(N, D).
pub fn effective_rank(singular: &[f64]) -> f64 {
    let total: f64 = singular.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    (-singular.iter().map(|s| s / total + 1e-7).map(|p| p * p.ln()).sum::<f64>()).exp()
}

/// How the L2-normalized embedding spreads over its dimensions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The standard deviation over samples of each dimension, averaged over dimensions
    /// (lightly's collapse measure): 1/√D for a uniform spread, 0 when collapsed.
    pub mean_std: f64,
    /// 1/√D, what `mean_std` is for points spread uniformly on the sphere.
    pub uniform_std: f64,
    /// Fraction of dimensions whose standard deviation is below 1% of 1/√D.
    pub dead_fraction: f64,
}

/// The [`Spread`] of `x` `[N, D]`.
pub fn spread(x: &Tensor) -> tessera_engine::Result<Spread> {
    let (v, n, d) = rows(x)?;
    let u = unit_rows(&v, d);
    let uniform_std = 1.0 / (d.max(1) as f64).sqrt();
    let stds: Vec<f64> = (0..d)
        .map(|j| {
            let mean = (0..n).map(|i| u[i * d + j]).sum::<f64>() / n.max(1) as f64;
            ((0..n).map(|i| (u[i * d + j] - mean).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt()
        })
        .collect();
    Ok(Spread {
        mean_std: stds.iter().sum::<f64>() / d.max(1) as f64,
        uniform_std,
        dead_fraction: stds.iter().filter(|&&s| s < 0.01 * uniform_std).count() as f64 / d.max(1) as f64,
    })
}

/// Counts of cosine similarities in `bins` equal bins over [−1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityHistograms {
    pub bins: usize,
    /// Row i of the two views (when given).
    pub positive: Vec<u64>,
    /// Different images of the same class (labels are read only here).
    pub same_class: Vec<u64>,
    pub different_class: Vec<u64>,
}

/// Histograms of cosine similarity: positive pairs (`a` row i with `b` row i, when `b` is
/// given), and every pair i < j of `a`'s rows split by whether their labels agree.
pub fn similarity_histograms(a: &Tensor, b: Option<&Tensor>, labels: &[i64], bins: usize) -> tessera_engine::Result<SimilarityHistograms> {
    let (va, n, d) = rows(a)?;
    if labels.len() != n || bins == 0 {
        return Err(tessera_engine::Error::invalid("similarity_histograms", format!("{} labels for {n} rows, {bins} bins", labels.len())));
    }
    let ua = unit_rows(&va, d);
    let r: Vec<&[f64]> = ua.chunks(d.max(1)).collect();
    let bin = |c: f64| (((c.clamp(-1.0, 1.0) + 1.0) / 2.0 * bins as f64) as usize).min(bins - 1);
    let mut h = SimilarityHistograms { bins, positive: vec![0; bins], same_class: vec![0; bins], different_class: vec![0; bins] };
    if let Some(b) = b {
        if b.shape() != a.shape() {
            return Err(tessera_engine::Error::shapes("similarity_histograms", a.shape(), b.shape()));
        }
        let ub = unit_rows(&rows(b)?.0, d);
        for (x, y) in r.iter().zip(ub.chunks(d.max(1))) {
            h.positive[bin(dot(x, y))] += 1;
        }
    }
    for i in 0..n {
        for j in (i + 1)..n {
            let target = if labels[i] == labels[j] { &mut h.same_class } else { &mut h.different_class };
            target[bin(dot(r[i], r[j]))] += 1;
        }
    }
    Ok(h)
}
