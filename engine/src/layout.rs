//! Shape, strides and offset: how a tensor's logical elements map into its storage.
//! Views (permute, narrow, expand, flip, reshape of contiguous data) only change a layout.

use crate::{Error, Result};

/// The mapping from a multi-index to a storage position:
/// `offset + Σ index[d] * strides[d]`. Strides are in elements and may be 0 (broadcast) or
/// negative (flip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub shape: Vec<usize>,
    pub strides: Vec<isize>,
    pub offset: usize,
}

/// Row-major strides of a contiguous tensor of this shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for d in (0..shape.len()).rev() {
        strides[d] = acc;
        acc *= shape[d].max(1) as isize;
    }
    strides
}

/// Number of elements of a shape, checked for overflow.
pub fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| Error::ShapeOverflow { op, shape: shape.to_vec() })
}

/// Normalizes a possibly negative axis against a rank.
pub fn normalize_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
    let rank = shape.len() as isize;
    let a = if axis < 0 { axis + rank } else { axis };
    if a < 0 || a >= rank.max(0) {
        return Err(Error::AxisOutOfRange { op, axis, rank: shape.len(), shape: shape.to_vec() });
    }
    Ok(a as usize)
}

/// Normalizes a list of axes; an empty list means every axis. Duplicates are an error.
pub fn normalize_axes(op: &'static str, axes: &[isize], shape: &[usize]) -> Result<Vec<usize>> {
    if axes.is_empty() {
        return Ok((0..shape.len()).collect());
    }
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = normalize_axis(op, a, shape)?;
        if out.contains(&n) {
            return Err(Error::invalid(op, format!("axis {a} is listed twice in {axes:?}")));
        }
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// NumPy broadcasting of two shapes.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(Error::shapes_hint(op, a, b, "they do not broadcast")),
        };
    }
    // Expanded views allocate nothing, so their broadcast can name more elements than fit.
    checked_numel(op, &out)?;
    Ok(out)
}

impl Layout {
    /// A contiguous row-major layout.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: 0 }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Row-major contiguous from `offset` (size-1 dims may have any stride; a layout with no
    /// elements is contiguous whatever its strides).
    pub fn is_contiguous(&self) -> bool {
        if self.shape.contains(&0) {
            return true;
        }
        let mut expected = 1isize;
        for d in (0..self.shape.len()).rev() {
            if self.shape[d] != 1 && self.strides[d] != expected {
                return false;
            }
            expected *= self.shape[d] as isize;
        }
        true
    }

    /// The storage positions this layout touches lie in `[lo, hi)` (for bounds checks).
    pub fn span(&self) -> (isize, isize) {
        let mut lo = self.offset as isize;
        let mut hi = self.offset as isize;
        if self.numel() == 0 {
            return (lo, lo);
        }
        for (&n, &s) in self.shape.iter().zip(&self.strides) {
            let ext = (n as isize - 1) * s;
            if ext < 0 {
                lo += ext
            } else {
                hi += ext
            }
        }
        (lo, hi + 1)
    }

    /// Strides of this layout seen through a broadcast to `target` (0 on broadcast dims).
    /// The caller has checked that the shapes broadcast.
    pub fn broadcast_strides(&self, target: &[usize]) -> Vec<isize> {
        let lead = target.len() - self.rank();
        (0..target.len()).map(|d| if d < lead || self.shape[d - lead] == 1 { 0 } else { self.strides[d - lead] }).collect()
    }

    /// A view with dims reordered by `perm`.
    pub fn permute(&self, op: &'static str, perm: &[usize]) -> Result<Layout> {
        let mut seen = vec![false; self.rank()];
        if perm.len() != self.rank() || perm.iter().any(|&p| p >= self.rank() || std::mem::replace(&mut seen[p], true)) {
            return Err(Error::invalid(op, format!("{perm:?} is not a permutation of the {} axes of shape {:?}", self.rank(), self.shape)));
        }
        Ok(Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// The strides a reshape to `shape` can use without copying, if any: each run of old dims
    /// that is contiguous in itself (a "chunk") may be split or merged freely.
    pub fn reshape_strides(&self, shape: &[usize]) -> Option<Vec<isize>> {
        if self.is_contiguous() || self.numel() == 0 || self.rank() == 0 {
            return Some(contiguous_strides(shape));
        }
        let (old_shape, old_strides) = (&self.shape, &self.strides);
        let mut new_strides = vec![0isize; shape.len()];
        let mut view_d = shape.len() as isize - 1;
        let mut chunk_base = *old_strides.last().unwrap();
        let (mut tensor_numel, mut view_numel) = (1usize, 1usize);
        for d in (0..old_shape.len()).rev() {
            tensor_numel *= old_shape[d];
            let chunk_ends = d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel as isize * chunk_base);
            if chunk_ends {
                while view_d >= 0 && (view_numel < tensor_numel || shape[view_d as usize] == 1) {
                    new_strides[view_d as usize] = view_numel as isize * chunk_base;
                    view_numel *= shape[view_d as usize];
                    view_d -= 1;
                }
                if view_numel != tensor_numel {
                    return None;
                }
                if d > 0 {
                    chunk_base = old_strides[d - 1];
                    tensor_numel = 1;
                    view_numel = 1;
                }
            }
        }
        (view_d == -1).then_some(new_strides)
    }
}

/// Merges adjacent dims that are contiguous with each other in every operand, so the
/// innermost loop of an elementwise kernel is as long as possible.
/// Returns the collapsed shape and one stride list per operand.
pub fn collapse_dims(shape: &[usize], strides: &[Vec<isize>]) -> (Vec<usize>, Vec<Vec<isize>>) {
    let mut out_shape: Vec<usize> = Vec::with_capacity(shape.len());
    let mut out_strides: Vec<Vec<isize>> = vec![Vec::with_capacity(shape.len()); strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        if let Some(&last) = out_shape.last() {
            let mergeable = strides.iter().zip(&out_strides).all(|(s, o)| *o.last().unwrap() == s[d] * shape[d] as isize);
            if mergeable {
                *out_shape.last_mut().unwrap() = last * shape[d];
                for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                    *o.last_mut().unwrap() = s[d];
                }
                continue;
            }
        }
        out_shape.push(shape[d]);
        for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
            o.push(s[d]);
        }
    }
    if out_shape.is_empty() {
        out_shape.push(1);
        for o in out_strides.iter_mut() {
            o.push(0);
        }
    }
    (out_shape, out_strides)
}

/// Storage offsets of the first element of each row (all dims but the last) for each operand,
/// for rows `[start, end)` of a collapsed iteration space. Calls `f(row, offsets)`.
pub fn for_each_row(
    shape: &[usize],
    strides: &[Vec<isize>],
    bases: &[isize],
    start: usize,
    end: usize,
    mut f: impl FnMut(usize, &[isize]),
) {
    let outer = &shape[..shape.len() - 1];
    let mut idx = vec![0usize; outer.len()];
    // Decompose `start` into a multi-index once, then step it like an odometer.
    let mut rem = start;
    for d in (0..outer.len()).rev() {
        idx[d] = rem % outer[d];
        rem /= outer[d];
    }
    let mut offs: Vec<isize> =
        bases.iter().zip(strides).map(|(&b, s)| b + idx.iter().zip(s.iter()).map(|(&i, &st)| i as isize * st).sum::<isize>()).collect();
    for row in start..end {
        f(row, &offs);
        for d in (0..outer.len()).rev() {
            idx[d] += 1;
            for (o, s) in offs.iter_mut().zip(strides) {
                *o += s[d];
            }
            if idx[d] < outer[d] {
                break;
            }
            for (o, s) in offs.iter_mut().zip(strides) {
                *o -= s[d] * outer[d] as isize;
            }
            idx[d] = 0;
        }
    }
}
