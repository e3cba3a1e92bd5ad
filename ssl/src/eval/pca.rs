//! A 2-D map of features: their projection on the first two principal components, for the
//! picture of the held-out embedding coloured by class.

use tessera_engine::{Device, Error, Result, Tensor};

/// Each row of `x` `[N, D]`, centred, projected on the two leading eigenvectors of its
/// covariance (found by power iteration, the second orthogonal to the first, in f64). Columns the data does not
/// span (a collapsed embedding) come out as zeros.
pub fn pca_2d(x: &Tensor) -> Result<Vec<[f64; 2]>> {
    let s = x.shape();
    if s.len() != 2 || s[0] == 0 {
        return Err(Error::invalid("pca_2d", format!("features must be [N, D] with N > 0, got {s:?}")));
    }
    let (n, d) = (s[0], s[1]);
    let mut v = x.to_device(Device::Cpu)?.to_vec_f64()?;
    for j in 0..d {
        let mean = (0..n).map(|i| v[i * d + j]).sum::<f64>() / n as f64;
        (0..n).for_each(|i| v[i * d + j] -= mean);
    }
    let mut cov = vec![0.0; d * d];
    for row in v.chunks(d) {
        for (a, &ra) in row.iter().enumerate() {
            for (b, &rb) in row.iter().enumerate().skip(a) {
                cov[a * d + b] += ra * rb;
            }
        }
    }
    for a in 0..d {
        for b in 0..a {
            cov[a * d + b] = cov[b * d + a];
        }
    }
    let first = leading_eigenvector(&cov, d, None);
    let second = leading_eigenvector(&cov, d, Some(&first));
    // A second direction with (numerically) no variance is noise: map it to zeros.
    let second = if rayleigh(&cov, &second, d) > 1e-12 * rayleigh(&cov, &first, d) { second } else { vec![0.0; d] };
    let project = |row: &[f64], axis: &[f64]| row.iter().zip(axis).map(|(r, a)| r * a).sum::<f64>();
    Ok(v.chunks(d.max(1)).map(|row| [project(row, &first), project(row, &second)]).collect())
}

/// The unit eigenvector of the largest eigenvalue of the symmetric PSD matrix `m` (`d × d`)
/// among vectors orthogonal to the unit vector `exclude`, or zeros when there is none.
fn leading_eigenvector(m: &[f64], d: usize, exclude: Option<&[f64]>) -> Vec<f64> {
    // Removes the excluded direction (each iteration: rounding brings it back).
    let orthogonal = |mut u: Vec<f64>| {
        if let Some(e) = exclude {
            let along: f64 = u.iter().zip(e).map(|(a, b)| a * b).sum();
            u.iter_mut().zip(e).for_each(|(a, b)| *a -= along * b);
        }
        u
    };
    // A start with a component along every axis (an all-equal one could be orthogonal to the
    // answer); fixed, so the map is the same every run.
    let mut u: Vec<f64> = orthogonal((0..d).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect());
    for _ in 0..500 {
        let next = orthogonal((0..d).map(|a| (0..d).map(|b| m[a * d + b] * u[b]).sum()).collect());
        let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm <= f64::MIN_POSITIVE {
            return vec![0.0; d];
        }
        let done = next.iter().zip(&u).map(|(a, b)| (a / norm - b).abs()).fold(0.0, f64::max) < 1e-12;
        u = next.into_iter().map(|x| x / norm).collect();
        if done {
            break;
        }
    }
    u
}

/// uᵀ m u for a unit vector u.
fn rayleigh(m: &[f64], u: &[f64], d: usize) -> f64 {
    (0..d).map(|a| u[a] * (0..d).map(|b| m[a * d + b] * u[b]).sum::<f64>()).sum()
}
