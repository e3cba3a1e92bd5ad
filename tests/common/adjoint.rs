//! Helpers of the tests that check ops against plain references over f64 values and check
//! each backward kernel by the dot-product (adjoint) identity: for a linear map `A` and its
//! claimed adjoint `B`, `<A x, y> == <x, B y>` for random `x`, `y`. Used by engine_conv,
//! engine_pool, engine_index and engine_shape.

use approx::relative_eq;
use proptest::prelude::*;
use tessera::engine::{DType, Generator, Tensor};

pub fn rand(seed: u64, shape: &[usize]) -> Tensor {
    Generator::new(seed).uniform(shape, -1.0, 1.0, DType::F64).unwrap()
}

pub fn randint(seed: u64, shape: &[usize], high: usize) -> Tensor {
    Generator::new(seed).randint(shape, 0, high as i64).unwrap()
}

pub fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

pub fn dot(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    vals(a).iter().zip(vals(b)).map(|(x, y)| x * y).sum()
}

/// The same logical values in another layout: 0 contiguous, 1 last two dims transposed in
/// storage, 2 negative strides (flipped twice), 3 every other element of a wider buffer
/// (floats only). A variant the tensor cannot take leaves it as it is.
pub fn relayout(t: &Tensor, variant: u8) -> Tensor {
    let r = t.rank() as isize;
    let out = match variant {
        1 if r >= 2 => t.transpose(r - 2, r - 1).unwrap().contiguous().unwrap().transpose(r - 2, r - 1).unwrap(),
        2 if r >= 1 => {
            let axes: Vec<isize> = (0..r).collect();
            t.flip(&axes).unwrap().contiguous().unwrap().flip(&axes).unwrap()
        }
        3 if t.dtype().is_float() => {
            let junk = t.mul_scalar(-7.0).unwrap();
            Tensor::stack(&[t, &junk], -1).unwrap().select(-1, 0).unwrap()
        }
        _ => t.clone(),
    };
    assert_eq!(vals(&out), vals(t));
    out
}

pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(relative_eq!(*g, *w, epsilon = tol, max_relative = tol), "{what}: element {i}: got {g}, want {w}");
    }
}

pub fn assert_adjoint(lhs: f64, rhs: f64, what: &str) {
    assert!(relative_eq!(lhs, rhs, epsilon = 1e-9, max_relative = 1e-9), "{what}: <Ax, y> = {lhs} but <x, A'y> = {rhs}");
}

/// The row-major multi-index of flat position `i` in `shape`.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// The flat row-major position of a multi-index in `shape`.
pub fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

/// Shapes of rank `1..=max_rank` with dims in `1..5`.
pub fn shape_strategy(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 1..=max_rank)
}
