//! Packing: copies a block of a strided operand into the panels the micro-kernel reads, so
//! that the kernel sees unit-stride, zero-padded memory whatever the operand's layout
//! (transposed, broadcast with stride 0, flipped with a negative stride).
//!
//! Both operands pack the same way once `a` is seen transposed: a block `depth × width`
//! (depth = the reduction) becomes panels of `w` columns, each `depth × w` row-major, the
//! last one padded with zero columns. For `b` the panel width is the tile's `NR`, for `aᵀ`
//! its `MR`.

/// A raw strided matrix view: element (i, j) is at `ptr + i·rs + j·cs`. The GEMM front
/// checks that every element it will read lies inside the caller's slice.
#[derive(Clone, Copy)]
pub(super) struct Strided<T> {
    pub ptr: *const T,
    pub rs: isize,
    pub cs: isize,
}

// SAFETY: a `Strided` is a shared, read-only view of a `&[T]` the caller holds for the whole
// product, so reading it from several threads is as safe as sharing that slice.
unsafe impl<T: Sync> Send for Strided<T> {}
unsafe impl<T: Sync> Sync for Strided<T> {}

impl<T> Strided<T> {
    pub fn transposed(self) -> Self {
        Strided { ptr: self.ptr, rs: self.cs, cs: self.rs }
    }

    /// The view starting at element (i, j).
    ///
    /// # Safety
    /// Element (i, j) lies inside the viewed slice.
    pub unsafe fn from(self, i: usize, j: usize) -> Self {
        Strided { ptr: self.ptr.offset(i as isize * self.rs + j as isize * self.cs), ..self }
    }
}

/// Packs the `depth × width` block at `src` into `width.div_ceil(w)` panels of `depth × w`
/// in `dst` (which must hold that many), padding the last panel with zeros.
///
/// # Safety
/// Every element (p, j), p < depth, j < width, of `src` is readable.
pub(super) unsafe fn pack<T: Copy + Default>(src: Strided<T>, depth: usize, width: usize, w: usize, dst: &mut [T]) {
    let panels = width.div_ceil(w);
    assert!(dst.len() >= panels * depth * w, "gemm: packing buffer too small");
    for (q, panel) in dst.chunks_exact_mut(depth * w).take(panels).enumerate() {
        let j0 = q * w;
        let cols = w.min(width - j0);
        let src = src.from(0, j0);
        if src.cs == 1 {
            // Rows are contiguous (row-major b, column-major a): copy them.
            for (p, out) in panel.chunks_exact_mut(w).enumerate() {
                let row = std::slice::from_raw_parts(src.ptr.offset(p as isize * src.rs), cols);
                out[..cols].copy_from_slice(row);
                out[cols..].fill(T::default());
            }
        } else if src.rs == 1 {
            // Columns are contiguous (the other common layout): read down each column.
            for j in 0..cols {
                let col = std::slice::from_raw_parts(src.ptr.offset(j as isize * src.cs), depth);
                for (out, &v) in panel.iter_mut().skip(j).step_by(w).zip(col) {
                    *out = v;
                }
            }
            if cols < w {
                for out in panel.chunks_exact_mut(w) {
                    out[cols..].fill(T::default());
                }
            }
        } else {
            for (p, out) in panel.chunks_exact_mut(w).enumerate() {
                let row = src.from(p, 0);
                for (j, o) in out.iter_mut().enumerate() {
                    *o = if j < cols { *row.ptr.offset(j as isize * row.cs) } else { T::default() };
                }
            }
        }
    }
}
