//! Helpers shared by the engine tests: a plain row-major f64 array that naive reference
//! implementations work on, builders that turn such an array into a tensor seen through a
//! non-contiguous layout (transposed, sliced, flipped, expanded), proptest strategies for
//! shapes, and approximate comparison.
#![allow(dead_code)]

use proptest::prelude::*;
use tessera::engine::{DType, Tensor};

pub mod adjoint;
pub mod gpu;
pub mod scratch;
pub mod window;

/// Case count for the property tests: modest, so the suite stays fast on two cores.
/// `PROPTEST_CASES=1000` runs a deeper search.
pub const CASES: u32 = 32;

pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

// ---- a tiny deterministic generator for values and layout recipes -------------------------

/// SplitMix64: the test-side source of values, driven by a proptest-chosen seed.
#[derive(Clone, Debug)]
pub struct Rng64(u64);

impl Rng64 {
    pub fn new(seed: u64) -> Self {
        Rng64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, n)`; `n > 0`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    pub fn coin(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

// ---- the naive reference array ------------------------------------------------------------

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major multi-indices of a shape, in order (one empty index for a 0-d shape).
pub fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let n = numel(shape);
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        out.push(idx.clone());
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// NumPy broadcasting of two shapes, or `None`.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let get = |s: &[usize], i: usize| if i + s.len() >= rank { s[i + s.len() - rank] } else { 1 };
    (0..rank)
        .map(|i| match (get(a, i), get(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// A row-major f64 array.
#[derive(Clone, Debug, PartialEq)]
pub struct Arr {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Arr {
    pub fn new(shape: &[usize], data: Vec<f64>) -> Self {
        assert_eq!(data.len(), numel(shape), "Arr::new: length does not fit the shape");
        Arr { shape: shape.to_vec(), data }
    }

    pub fn from_fn(shape: &[usize], mut f: impl FnMut(&[usize]) -> f64) -> Self {
        Arr { shape: shape.to_vec(), data: indices(shape).iter().map(|i| f(i)).collect() }
    }

    pub fn random(shape: &[usize], rng: &mut Rng64, lo: f64, hi: f64) -> Self {
        Arr::from_fn(shape, |_| rng.range(lo, hi))
    }

    pub fn flat(&self, idx: &[usize]) -> usize {
        assert_eq!(idx.len(), self.shape.len());
        idx.iter().zip(&self.shape).fold(0, |acc, (&i, &n)| {
            assert!(i < n);
            acc * n + i
        })
    }

    pub fn at(&self, idx: &[usize]) -> f64 {
        self.data[self.flat(idx)]
    }

    pub fn map(&self, f: impl Fn(f64) -> f64) -> Arr {
        Arr { shape: self.shape.clone(), data: self.data.iter().map(|&x| f(x)).collect() }
    }

    /// Output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Arr {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        Arr::from_fn(&shape, |o| {
            let mut src = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                src[p] = o[i];
            }
            self.at(&src)
        })
    }

    pub fn flip(&self, axes: &[usize]) -> Arr {
        Arr::from_fn(&self.shape, |o| {
            let mut src = o.to_vec();
            for &a in axes {
                src[a] = self.shape[a] - 1 - o[a];
            }
            self.at(&src)
        })
    }

    /// Elements `start, start+step, ...` below `end` along `axis`.
    pub fn slice(&self, axis: usize, start: usize, end: usize, step: usize) -> Arr {
        let end = end.min(self.shape[axis]);
        let mut shape = self.shape.clone();
        shape[axis] = if end > start { (end - start).div_ceil(step) } else { 0 };
        Arr::from_fn(&shape, |o| {
            let mut src = o.to_vec();
            src[axis] = start + o[axis] * step;
            self.at(&src)
        })
    }

    /// Index `i` of `axis`, removing the axis.
    pub fn select(&self, axis: usize, i: usize) -> Arr {
        let s = self.slice(axis, i, i + 1, 1);
        let mut shape = s.shape.clone();
        shape.remove(axis);
        Arr::new(&shape, s.data)
    }

    /// NumPy broadcast to `shape`.
    pub fn expand(&self, shape: &[usize]) -> Arr {
        assert_eq!(broadcast_shape(&self.shape, shape).as_deref(), Some(shape), "Arr::expand: {:?} -> {shape:?}", self.shape);
        let lead = shape.len() - self.shape.len();
        Arr::from_fn(shape, |o| {
            let src: Vec<usize> = (0..self.shape.len()).map(|d| if self.shape[d] == 1 { 0 } else { o[d + lead] }).collect();
            self.at(&src)
        })
    }

    pub fn reshape(&self, shape: &[usize]) -> Arr {
        Arr::new(shape, self.data.clone())
    }

    /// `f(a, b)` with broadcasting.
    pub fn zip(&self, other: &Arr, f: impl Fn(f64, f64) -> f64) -> Arr {
        let shape = broadcast_shape(&self.shape, &other.shape).expect("Arr::zip: shapes do not broadcast");
        let (a, b) = (self.expand(&shape), other.expand(&shape));
        Arr { shape, data: a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect() }
    }

    /// `f` of the elements of each output position over `axes` (sorted, all if empty), in
    /// row-major order of the reduced axes.
    pub fn reduce(&self, axes: &[usize], keepdim: bool, f: impl Fn(&[f64]) -> f64) -> Arr {
        let axes: Vec<usize> = if axes.is_empty() { (0..self.shape.len()).collect() } else { axes.to_vec() };
        let keep: Vec<usize> = (0..self.shape.len()).map(|d| if axes.contains(&d) { 1 } else { self.shape[d] }).collect();
        let red: Vec<usize> = axes.iter().map(|&a| self.shape[a]).collect();
        let out = Arr::from_fn(&keep, |o| {
            let group: Vec<f64> = indices(&red)
                .iter()
                .map(|r| {
                    let mut src = o.to_vec();
                    for (k, &a) in axes.iter().enumerate() {
                        src[a] = r[k];
                    }
                    self.at(&src)
                })
                .collect();
            f(&group)
        });
        if keepdim {
            out
        } else {
            let shape: Vec<usize> = (0..self.shape.len()).filter(|d| !axes.contains(d)).map(|d| self.shape[d]).collect();
            out.reshape(&shape)
        }
    }

    /// Values rounded through f32 (what an f32 tensor of these values holds).
    pub fn round_f32(&self) -> Arr {
        self.map(|x| x as f32 as f64)
    }
}

pub fn inverse_perm(p: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; p.len()];
    for (i, &x) in p.iter().enumerate() {
        inv[x] = i;
    }
    inv
}

// ---- tensors with non-contiguous layouts --------------------------------------------------

/// One step of a layout recipe: the tensor is built so that, after the view, it holds the
/// intended values.
#[derive(Clone, Debug)]
pub enum View {
    Permute(Vec<usize>),
    Flip(Vec<usize>),
    /// Stored inside a larger NaN-padded axis and sliced back out with a step.
    Slice {
        axis: usize,
        start: usize,
        step: usize,
    },
}

/// A contiguous tensor of `a`'s values in `dtype`.
pub fn tensor(a: &Arr, dtype: DType) -> Tensor {
    Tensor::from_vec(a.data.clone(), &a.shape).unwrap().to_dtype(dtype).unwrap()
}

/// A tensor whose logical values are `a`, seen through the views (applied last to first).
pub fn build(a: &Arr, views: &[View], dtype: DType) -> Tensor {
    let Some((v, rest)) = views.split_first() else { return tensor(a, dtype) };
    match v {
        View::Permute(q) => build(&a.permute(q), rest, dtype).permute(&inverse_perm(q)).unwrap(),
        View::Flip(axes) => {
            let ax: Vec<isize> = axes.iter().map(|&x| x as isize).collect();
            build(&a.flip(axes), rest, dtype).flip(&ax).unwrap()
        }
        View::Slice { axis, start, step } => {
            let (axis, start, step) = (*axis, *start, *step);
            let n = a.shape[axis];
            let mut padded_shape = a.shape.clone();
            padded_shape[axis] = start + n * step + 1;
            let padded = Arr::from_fn(&padded_shape, |i| {
                let k = i[axis];
                if k >= start && (k - start) % step == 0 && (k - start) / step < n {
                    let mut src = i.to_vec();
                    src[axis] = (k - start) / step;
                    a.at(&src)
                } else {
                    f64::NAN
                }
            });
            build(&padded, rest, dtype).slice(axis as isize, start, start + n * step, step).unwrap()
        }
    }
}

/// A tensor together with the values it must hold and how it was laid out.
#[derive(Clone)]
pub struct Operand {
    pub t: Tensor,
    pub a: Arr,
    pub recipe: String,
}

impl std::fmt::Debug for Operand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Operand {{ shape: {:?}, strides: {:?}, recipe: {}, values: {:?} }}",
            self.t.shape(),
            self.t.strides(),
            self.recipe,
            self.a.data
        )
    }
}

/// A random layout recipe for a rank-`rank` array: up to two views among permute, flip and a
/// stepped slice, chosen by `rng` (a third of the time none: contiguous).
pub fn random_views(rank: usize, rng: &mut Rng64) -> Vec<View> {
    if rank == 0 || rng.coin(0.3) {
        return vec![];
    }
    (0..1 + rng.below(2))
        .map(|_| match rng.below(3) {
            0 => {
                let mut p: Vec<usize> = (0..rank).collect();
                rng.shuffle(&mut p);
                View::Permute(p)
            }
            1 => View::Flip((0..rank).filter(|_| rng.coin(0.5)).collect()),
            _ => View::Slice { axis: rng.below(rank), start: rng.below(3), step: 1 + rng.below(3) },
        })
        .collect()
}

/// An operand of logical `shape`, values drawn by `gen`, laid out by a recipe chosen from
/// `seed`: sometimes expanded (size-1 stored dims broadcast with stride 0), often
/// transposed, flipped or sliced.
pub fn operand_with(shape: &[usize], dtype: DType, seed: u64, gen: impl Fn(&mut Rng64) -> f64) -> Operand {
    let mut rng = Rng64::new(seed);
    // Axes stored with size 1 and expanded back to full size.
    let expand: Vec<bool> = shape.iter().map(|&n| n > 1 && rng.coin(0.2)).collect();
    let stored_shape: Vec<usize> = shape.iter().zip(&expand).map(|(&n, &e)| if e { 1 } else { n }).collect();
    let mut base = Arr::from_fn(&stored_shape, |_| gen(&mut rng));
    if dtype == DType::F32 {
        base = base.round_f32();
    }
    let views = random_views(shape.len(), &mut rng);
    let mut t = build(&base, &views, dtype);
    let mut recipe = format!("seed {seed:#x}, views {views:?}");
    if expand.iter().any(|&e| e) {
        t = t.expand(shape).unwrap();
        recipe += &format!(", expanded from {stored_shape:?}");
    }
    Operand { t, a: base.expand(shape), recipe }
}

/// [`operand_with`] with values uniform in `[-3, 3)`.
pub fn operand(shape: &[usize], dtype: DType, seed: u64) -> Operand {
    operand_with(shape, dtype, seed, |r| r.range(-3.0, 3.0))
}

// ---- proptest strategies -------------------------------------------------------------------

/// One dim: 0 and 1 often (edge cases), otherwise 2..=max.
pub fn dim(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 2 => Just(1usize), 6 => 2..=max.max(2)]
}

/// A shape of rank `0..=max_rank` with dims from [`dim`].
pub fn shape(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(dim(max_dim), 0..=max_rank)
}

/// A shape with no zero dims.
pub fn nonempty_shape(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..=max_dim, 0..=max_rank)
}

/// A shape that broadcasts to `out`: some leading dims dropped, some dims set to 1.
pub fn broadcast_from(out: &[usize], rng: &mut Rng64) -> Vec<usize> {
    let drop = if rng.coin(0.3) { rng.below(out.len() + 1) } else { 0 };
    out[drop..].iter().map(|&n| if rng.coin(0.25) { 1 } else { n }).collect()
}

/// A list of distinct axes of a rank-`rank` shape, sorted (possibly empty).
pub fn axis_subset(rank: usize, rng: &mut Rng64) -> Vec<usize> {
    (0..rank).filter(|_| rng.coin(0.5)).collect()
}

// ---- comparison ----------------------------------------------------------------------------

/// Whether `a` and `b` agree to a relative tolerance `rtol` or an absolute one `atol`
/// (NaN matches NaN, infinities must match exactly).
pub fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    approx::relative_eq!(a, b, epsilon = atol, max_relative = rtol)
}

pub fn assert_close_slices(what: &str, actual: &[f64], expected: &[f64], rtol: f64, atol: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            close(a, e, rtol, atol),
            "{what}: element {i} is {a}, expected {e} (rtol {rtol}, atol {atol})\nactual   {actual:?}\nexpected {expected:?}"
        );
    }
}

/// Asserts `t` has `expected`'s shape and values within tolerance.
pub fn assert_tensor(what: &str, t: &Tensor, expected: &Arr, rtol: f64, atol: f64) {
    assert_eq!(t.shape(), &expected.shape[..], "{what}: shape");
    assert_close_slices(what, &t.to_vec_f64().unwrap(), &expected.data, rtol, atol);
}

/// Asserts `t` holds exactly `expected` (bitwise for floats, NaN matching NaN).
pub fn assert_exact(what: &str, t: &Tensor, expected: &Arr) {
    assert_tensor(what, t, expected, 0.0, 0.0);
}

/// Tolerances for a dtype: tight for f64, f32 rounding for f32.
pub fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-12, 1e-12),
        _ => (1e-5, 1e-6),
    }
}

/// Both float dtypes, for `prop_oneof`-free iteration inside a test.
pub const FLOATS: [DType; 2] = [DType::F64, DType::F32];

/// The error message of a result that must be an error.
pub fn err_msg<T: std::fmt::Debug>(r: tessera::engine::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.to_string(),
    }
}
