//! The representation diagnostics on hand-built point sets with known answers.

use tessera::engine::Tensor;
use tessera::ssl::eval::{alignment, effective_rank, pca_2d, similarity_histograms, singular_values, spread, uniformity};

fn t(rows: &[&[f64]]) -> Tensor {
    let d = rows[0].len();
    Tensor::from_vec(rows.concat(), &[rows.len(), d]).unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn alignment_is_zero_for_equal_pairs_and_four_for_antipodal_ones() {
    let a = t(&[&[1.0, 0.0], &[0.0, 2.0]]);
    assert_eq!(alignment(&a, &a, 2.0).unwrap(), 0.0);
    let b = t(&[&[-3.0, 0.0], &[0.0, -1.0]]);
    assert!(close(alignment(&a, &b, 2.0).unwrap(), 4.0, 1e-12));
    // Orthogonal unit vectors are √2 apart: ‖·‖² = 2.
    let c = t(&[&[0.0, 1.0], &[1.0, 0.0]]);
    assert!(close(alignment(&a, &c, 2.0).unwrap(), 2.0, 1e-12));
    assert!(alignment(&a, &t(&[&[1.0, 0.0, 0.0]]), 2.0).unwrap_err().to_string().contains("[1, 3]"));
}

#[test]
fn uniformity_of_known_point_sets() {
    // Two antipodal points: one pair at squared distance 4 → log e^(−8) = −8.
    assert!(close(uniformity(&t(&[&[1.0, 0.0], &[-1.0, 0.0]]), 2.0).unwrap(), -8.0, 1e-12));
    // Coincident points: every term is e^0.
    assert!(close(uniformity(&t(&[&[1.0, 1.0], &[2.0, 2.0], &[3.0, 3.0]]), 2.0).unwrap(), 0.0, 1e-12));
    // The four axis directions in 2-D: 4 pairs at distance² 2 and 2 pairs at 4.
    let square = t(&[&[1.0, 0.0], &[0.0, 1.0], &[-1.0, 0.0], &[0.0, -1.0]]);
    let want = ((4.0 * (-4.0f64).exp() + 2.0 * (-8.0f64).exp()) / 6.0).ln();
    assert!(close(uniformity(&square, 2.0).unwrap(), want, 1e-12));
}

#[test]
fn effective_rank_of_known_spectra() {
    let identity = t(&[&[1.0, 0.0, 0.0, 0.0], &[0.0, 1.0, 0.0, 0.0], &[0.0, 0.0, 1.0, 0.0], &[0.0, 0.0, 0.0, 1.0]]);
    let s = singular_values(&identity).unwrap();
    assert!(s.iter().all(|&v| close(v, 1.0, 1e-9)), "{s:?}");
    assert!(close(effective_rank(&s), 4.0, 1e-5));
    // Rank one: every row a multiple of one vector.
    let rank_one = t(&[&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0], &[-1.0, -2.0, -3.0], &[0.5, 1.0, 1.5]]);
    let s = singular_values(&rank_one).unwrap();
    assert!(close(s[0], (1.0f64 + 4.0 + 1.0 + 0.25).sqrt() * 14f64.sqrt(), 1e-9) && s[1] < 1e-6, "{s:?}");
    assert!(close(effective_rank(&s), 1.0, 1e-4));
    // A known spectrum 3, 2, 1 with rotated columns (rows of an orthogonal matrix scaled).
    let (c, sn) = (0.6, 0.8);
    let x = t(&[&[3.0 * c, 3.0 * sn, 0.0], &[-2.0 * sn, 2.0 * c, 0.0], &[0.0, 0.0, 1.0]]);
    let s = singular_values(&x).unwrap();
    assert!(close(s[0], 3.0, 1e-9) && close(s[1], 2.0, 1e-9) && close(s[2], 1.0, 1e-9), "{s:?}");
    let p = [0.5, 1.0 / 3.0, 1.0 / 6.0];
    let want = (-p.iter().map(|v: &f64| (v + 1e-7) * (v + 1e-7).ln()).sum::<f64>()).exp();
    assert!(close(effective_rank(&s), want, 1e-9));
    // More columns than rows: the smaller Gram matrix gives the same values.
    let wide = t(&[&[3.0, 0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 2.0, 0.0, 0.0]]);
    assert_eq!(singular_values(&wide).unwrap().len(), 2);
    assert!(close(singular_values(&wide).unwrap()[1], 2.0, 1e-12));
}

#[test]
fn spread_flags_a_collapsed_embedding() {
    let collapsed = t(&[&[1.0, 2.0], &[2.0, 4.0], &[0.5, 1.0]]);
    let s = spread(&collapsed).unwrap();
    assert!(s.mean_std < 1e-12 && s.dead_fraction == 1.0, "{s:?}");
    assert!(close(s.uniform_std, 1.0 / 2f64.sqrt(), 1e-12));
    // ±e₁, ±e₂: each coordinate is ±1 on half of its rows and 0 on the rest → std √(1/2).
    let spread_out = spread(&t(&[&[1.0, 0.0], &[0.0, 1.0], &[-1.0, 0.0], &[0.0, -1.0]])).unwrap();
    assert!(close(spread_out.mean_std, 0.5f64.sqrt(), 1e-12) && spread_out.dead_fraction == 0.0);
}

#[test]
fn histograms_count_every_pair_once() {
    let a = t(&[&[1.0, 0.0], &[0.9, 0.1], &[0.0, 1.0], &[-1.0, 0.0], &[0.2, -0.9]]);
    let labels = [0, 0, 1, 1, 2];
    let h = similarity_histograms(&a, Some(&a), &labels, 10).unwrap();
    assert_eq!(h.positive.iter().sum::<u64>(), 5);
    assert_eq!(h.positive[9], 5, "a view with itself has cosine 1");
    assert_eq!(h.same_class.iter().sum::<u64>(), 2);
    assert_eq!(h.different_class.iter().sum::<u64>(), 10 - 2);
    // e₁ and −e₁ (rows 0 and 3, different classes) land in the lowest bin.
    assert!(h.different_class[0] >= 1);
    assert!(similarity_histograms(&a, None, &[0, 1], 10).is_err());
}

#[test]
fn pca_maps_points_on_a_line_to_their_centred_positions_along_it() {
    // Points t·(3, 4)/5 + (1, 1), t = −2, 0, 1, 4 (mean 0.75): along the line, centred.
    let pts: Vec<Vec<f64>> = [-2.0, 0.0, 1.0, 4.0].iter().map(|t| vec![1.0 + 0.6 * t, 1.0 + 0.8 * t]).collect();
    let rows: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
    let map = pca_2d(&t(&rows)).unwrap();
    // The direction's sign is arbitrary: compare up to it.
    let sign = map[3][0].signum();
    for (p, t) in map.iter().zip([-2.75, -0.75, 0.25, 3.25]) {
        assert!(close(sign * p[0], t, 1e-9) && close(p[1], 0.0, 1e-9), "{p:?} for {t}");
    }
    // Two axes of different spread: the wider one comes first.
    let map = pca_2d(&t(&[&[3.0, 0.0], &[-3.0, 0.0], &[0.0, 1.0], &[0.0, -1.0]])).unwrap();
    assert!(close(map[0][0].abs(), 3.0, 1e-9) && close(map[2][1].abs(), 1.0, 1e-9), "{map:?}");
}
