//! A bounds-checked front to `matrixmultiply`'s strided GEMM. Strides are in elements and
//! may be zero or negative, so transposed and broadcast views multiply without a copy.

use crate::FloatElem;

/// A strided matrix view into a slice: element (i, j) is `data[offset + i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub offset: isize,
    pub rs: isize,
    pub cs: isize,
}

/// Element types `matrixmultiply` can multiply.
pub trait Gemm: FloatElem {
    /// `c = alpha · a·b + beta · c` for an `m×k` by `k×n` product; `c` is contiguous
    /// row-major `m×n` with row stride `ldc`.
    fn gemm(m: usize, k: usize, n: usize, alpha: Self, a: MatRef<Self>, b: MatRef<Self>, beta: Self, c: &mut [Self], ldc: usize);
}

fn check_span<T>(what: &str, r: &MatRef<T>, rows: usize, cols: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    let mut lo = r.offset;
    let mut hi = r.offset;
    for (n, s) in [(rows, r.rs), (cols, r.cs)] {
        let ext = (n as isize - 1) * s;
        if ext < 0 {
            lo += ext
        } else {
            hi += ext
        }
    }
    // Internal invariant: layouts are validated where tensors are built.
    assert!(lo >= 0 && (hi as usize) < r.data.len(), "gemm: {what} view out of bounds");
}

macro_rules! impl_gemm {
    ($t:ty, $f:path) => {
        impl Gemm for $t {
            fn gemm(m: usize, k: usize, n: usize, alpha: Self, a: MatRef<Self>, b: MatRef<Self>, beta: Self, c: &mut [Self], ldc: usize) {
                if m == 0 || n == 0 {
                    return;
                }
                assert!(c.len() >= (m - 1) * ldc + n, "gemm: output too small");
                if k == 0 {
                    for i in 0..m {
                        for v in &mut c[i * ldc..i * ldc + n] {
                            *v = if beta == 0.0 { 0.0 } else { *v * beta };
                        }
                    }
                    return;
                }
                check_span("lhs", &a, m, k);
                check_span("rhs", &b, k, n);
                // SAFETY: both views were checked to lie inside their slices, and `c` holds
                // the m×n output with row stride ldc.
                unsafe {
                    $f(
                        m,
                        k,
                        n,
                        alpha,
                        a.data.as_ptr().offset(a.offset),
                        a.rs,
                        a.cs,
                        b.data.as_ptr().offset(b.offset),
                        b.rs,
                        b.cs,
                        beta,
                        c.as_mut_ptr(),
                        ldc as isize,
                        1,
                    )
                }
            }
        }
    };
}
impl_gemm!(f32, matrixmultiply::sgemm);
impl_gemm!(f64, matrixmultiply::dgemm);
