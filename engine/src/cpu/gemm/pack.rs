//! Packing: copies a block of a strided operand into the panels the micro-kernel reads, so
//! that the kernel sees unit-stride, zero-padded memory whatever the operand's layout
//! (transposed, broadcast with stride 0, flipped with a negative stride).
//!
//! `b` ([`pack`]): a block `depth × width` (depth = the reduction) becomes panels of `NR`
//! columns, each `depth × NR` row-major, the last one padded with zero columns. `a`
//! ([`pack_a`]): a block `rows × depth` becomes panels of `MR` rows, laid out so that the
//! common layouts copy in runs.

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
    /// The view starting at element (i, j).
    ///
    /// # Safety
    /// Element (i, j) lies inside the viewed slice.
    pub unsafe fn from(self, i: usize, j: usize) -> Self {
        Strided { ptr: self.ptr.offset(i as isize * self.rs + j as isize * self.cs), ..self }
    }

    /// The same elements seen transposed: (j, i) here is (i, j) there.
    pub fn transposed(self) -> Self {
        Strided { ptr: self.ptr, rs: self.cs, cs: self.rs }
    }
}

/// Packs the `depth × width` block at `src` into `width.div_ceil(W)` panels of `depth × W`
/// in `dst` (which must hold that many), padding the last panel with zeros. `W` is a
/// constant so that the copies of full panel rows compile to a few vector moves.
///
/// # Safety
/// Every element (p, j), p < depth, j < width, of `src` is readable.
pub(super) unsafe fn pack<T: Copy + Default, const W: usize>(src: Strided<T>, depth: usize, width: usize, dst: &mut [T]) {
    let panels = width.div_ceil(W);
    assert!(dst.len() >= panels * depth * W, "gemm: packing buffer too small");
    // Rows are contiguous (row-major b) across several full panels: walk each row once, front
    // to back, handing its W-wide pieces to the panels, rather than revisit every row once
    // per panel (a wide activation's rows come from memory, not cache).
    let row_wise = if src.cs == 1 && width / W > 1 { width / W } else { 0 };
    if row_wise > 0 {
        let out = dst.as_mut_ptr();
        for p in 0..depth {
            let row = src.ptr.offset(p as isize * src.rs);
            for q in 0..row_wise {
                std::ptr::copy_nonoverlapping(row.add(q * W), out.add(q * depth * W + p * W), W);
            }
        }
    }
    for (q, panel) in dst.chunks_exact_mut(depth * W).take(panels).enumerate().skip(row_wise) {
        let j0 = q * W;
        let cols = W.min(width - j0);
        let src = src.from(0, j0);
        let out = panel.as_mut_ptr();
        if cols < W {
            panel.fill(T::default());
        }
        if src.cs == 1 && cols == W {
            // Rows are contiguous (row-major b, column-major a): copy them.
            for p in 0..depth {
                std::ptr::copy_nonoverlapping(src.ptr.offset(p as isize * src.rs), out.add(p * W), W);
            }
        } else if src.rs == 1 && cols == W {
            // Columns are contiguous (row-major a, column-major b): read the W columns side
            // by side, so each panel row is written whole.
            let col: [*const T; W] = std::array::from_fn(|j| src.ptr.offset(j as isize * src.cs));
            for p in 0..depth {
                for (j, c) in col.iter().enumerate() {
                    *out.add(p * W + j) = *c.add(p);
                }
            }
        } else {
            for p in 0..depth {
                let row = src.from(p, 0);
                for j in 0..cols {
                    *out.add(p * W + j) = *row.ptr.offset(j as isize * row.cs);
                }
            }
        }
    }
}

/// Elements of one packed `a` panel of `mr` rows and `depth` steps cut in chunks of `ch`.
pub(super) fn a_panel_len(mr: usize, depth: usize, ch: usize) -> usize {
    depth.div_ceil(ch) * ch * mr
}

/// Packs the `rows × depth` block at `src` into `rows.div_ceil(MR)` panels of `MR` rows in
/// `dst` (each [`a_panel_len`] long, rows past `rows` zero). Within a panel the reduction is
/// cut in chunks of `CH` steps, each chunk stored row by row (`[chunk][row][step]`, the last
/// chunk spaced like the others), so the kernel finds step `p` of row `i` at
/// `(p / CH)·MR·CH + i·CH + p % CH`. With `CH = 1` a panel is column after column, which a
/// column-major `a` copies in runs of `MR`; with `CH > 1` a row-major `a` copies in runs of
/// `CH` (otherwise its rows would be read `MR` at a time, one element each).
///
/// # Safety
/// Every element (i, p), i < rows, p < depth, of `src` is readable.
pub(super) unsafe fn pack_a<T: Copy + Default, const MR: usize, const CH: usize>(
    src: Strided<T>,
    rows: usize,
    depth: usize,
    dst: &mut [T],
) {
    let panel_len = a_panel_len(MR, depth, CH);
    let (panels, chunks) = (rows.div_ceil(MR), depth / CH);
    assert!(dst.len() >= panels * panel_len, "gemm: packing buffer too small");
    for (q, panel) in dst.chunks_exact_mut(panel_len).take(panels).enumerate() {
        let i0 = q * MR;
        let h = MR.min(rows - i0);
        let src = src.from(i0, 0);
        let out = panel.as_mut_ptr();
        if h < MR {
            panel.fill(T::default());
        }
        if CH > 1 && src.cs == 1 {
            for i in 0..h {
                let row = src.ptr.offset(i as isize * src.rs);
                for c in 0..chunks {
                    std::ptr::copy_nonoverlapping(row.add(c * CH), out.add(c * MR * CH + i * CH), CH);
                }
                std::ptr::copy_nonoverlapping(row.add(chunks * CH), out.add(chunks * MR * CH + i * CH), depth % CH);
            }
        } else if CH == 1 && src.rs == 1 && h == MR {
            for p in 0..depth {
                std::ptr::copy_nonoverlapping(src.ptr.offset(p as isize * src.cs), out.add(p * MR), MR);
            }
        } else {
            for p in 0..depth {
                let col = src.from(0, p);
                for i in 0..h {
                    *out.add(p / CH * MR * CH + i * CH + p % CH) = *col.ptr.offset(i as isize * col.rs);
                }
            }
        }
    }
}
