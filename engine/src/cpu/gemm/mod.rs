//! GEMM on the CPU, `c = alpha·a·b + beta·c`, behind one bounds-checked front. Strides of `a`
//! and `b` are in elements and may be zero or negative, so transposed, broadcast and flipped
//! views multiply without a copy.
//!
//! Two implementations, chosen at run time ([`GemmIsa`]):
//!
//! * AVX-512 (x86-64 with AVX-512F), f32 and f64: tessera's own blocked GEMM — packing into
//!   panels (`pack.rs`), a 12-row × 2-vector register tile (`avx512.rs`) and BLIS's loop
//!   nest threaded with rayon over blocks of the output (`blocked.rs`). Bitwise the same for
//!   any thread count.
//! * Portable: `matrixmultiply` (AVX2/FMA kernels where the CPU has them, with its own
//!   threads).
//!
//! The two round differently (their reductions are blocked differently), so they agree to a
//! tolerance, not bit for bit.
//!
//! bf16 operands ([`gemm_bf16`], f32 output) run the same loop nest around the AMX tile
//! (`amx.rs`) where the CPU has AMX and Linux grants it, else around a bf16 dot-product tile
//! (`bf16.rs`) where the CPU has AVX-512 BF16 ([`Bf16Kernel`]); elsewhere the caller widens
//! them to f32.

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod bf16;
#[cfg(target_arch = "x86_64")]
mod blocked;
#[cfg(target_arch = "x86_64")]
pub(crate) use blocked::serial;
/// Elsewhere the products run on `matrixmultiply`, whose threads this does not govern.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn serial<R>(f: impl FnOnce() -> R) -> R {
    f()
}
#[cfg(target_arch = "x86_64")]
mod pack;

use crate::FloatElem;
use std::mem::MaybeUninit;

/// A strided matrix view into a slice: element (i, j) is `data[offset + i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub offset: isize,
    pub rs: isize,
    pub cs: isize,
}

#[cfg(target_arch = "x86_64")]
impl<T> MatRef<'_, T> {
    /// The view as the blocked GEMM's packing reads it.
    ///
    /// # Safety
    /// `offset` lies inside `data` (the GEMM front checks the whole view first).
    unsafe fn strided(&self) -> pack::Strided<T> {
        pack::Strided { ptr: self.data.as_ptr().offset(self.offset), rs: self.rs, cs: self.cs }
    }
}

/// The GEMM implementation, best first (the order is what `<` compares).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum GemmIsa {
    /// tessera's own AVX-512 kernel (x86-64 with AVX-512F).
    Avx512,
    /// `matrixmultiply`, on any CPU.
    Portable,
}

impl GemmIsa {
    /// The implementations this CPU runs, best first (always ending with
    /// [`GemmIsa::Portable`]).
    pub fn available() -> Vec<GemmIsa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            v.push(GemmIsa::Avx512);
        }
        v.push(GemmIsa::Portable);
        v
    }

    /// The implementation [`Gemm::gemm`] uses: the best one available, unless the environment
    /// variable `TESSERA_GEMM_ISA` (`avx512` or `portable`, read once per process) asks for
    /// another; a request the CPU cannot run falls back to the best one below it, and an
    /// unknown value is ignored.
    pub fn selected() -> GemmIsa {
        static CHOICE: std::sync::OnceLock<GemmIsa> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| match std::env::var("TESSERA_GEMM_ISA").as_deref() {
            Ok("avx512") => GemmIsa::Avx512.or_below(),
            Ok("portable") => GemmIsa::Portable,
            _ => GemmIsa::available()[0],
        })
    }

    /// This implementation if the CPU runs it, else the best one below it.
    fn or_below(self) -> GemmIsa {
        GemmIsa::available().into_iter().find(|&i| i >= self).unwrap_or(GemmIsa::Portable)
    }
}

/// Element types with a GEMM.
pub trait Gemm: FloatElem {
    /// `c = alpha · a·b + beta · c` for an `m×k` by `k×n` product; `c` is contiguous
    /// row-major `m×n` with row stride `ldc`. When `beta` is zero, `c` is only written (NaNs
    /// in it do not propagate). Runs the implementation [`GemmIsa::selected`] names.
    #[allow(clippy::too_many_arguments)]
    fn gemm(m: usize, k: usize, n: usize, alpha: Self, a: MatRef<Self>, b: MatRef<Self>, beta: Self, c: &mut [Self], ldc: usize) {
        Self::gemm_with(GemmIsa::selected(), m, k, n, alpha, a, b, beta, c, ldc)
    }

    /// [`Gemm::gemm`] with the implementation `isa` (or the best one below it that this CPU
    /// runs): for tests and benchmarks that compare them in one process.
    #[allow(clippy::too_many_arguments)]
    fn gemm_with(
        isa: GemmIsa,
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: MatRef<Self>,
        b: MatRef<Self>,
        beta: Self,
        c: &mut [Self],
        ldc: usize,
    ) {
        // SAFETY: `c` is an initialized slice of its own length.
        unsafe { Self::gemm_raw(isa, m, k, n, alpha, a, b, beta, None, c.as_mut_ptr(), c.len(), ldc) }
    }

    /// `c = alpha · a·b` into memory that need not be initialized: every element of the
    /// `m×n` output (row stride `ldc`) is written, nothing in `c` is read, so a fresh
    /// buffer costs no zero-filling pass (a matmul's output was 4% of a ViT step in
    /// `memset`). Elements between rows (`ldc > n`) are left as they are.
    #[allow(clippy::too_many_arguments)]
    fn gemm_uninit(m: usize, k: usize, n: usize, alpha: Self, a: MatRef<Self>, b: MatRef<Self>, c: &mut [MaybeUninit<Self>], ldc: usize) {
        // SAFETY: with beta zero no implementation reads `c` (matrixmultiply documents it;
        // ours stores without loading), and `c` is a slice of its own length.
        unsafe { Self::gemm_raw(GemmIsa::selected(), m, k, n, alpha, a, b, Self::zero(), None, c.as_mut_ptr().cast(), c.len(), ldc) }
    }

    /// `c = a·b + bias`, `bias` (`n` long) added to every row, into memory that need not be
    /// initialized (PyTorch's `addmm` for a linear layer). The AVX-512 GEMM adds the bias as
    /// it stores each tile, which the portable one does by filling `c` with the bias rows
    /// first; both round as `c = bias` then `c += a·b`, bit for bit.
    ///
    /// # Panics
    /// If `bias` is shorter than `n` (an internal invariant: callers check shapes first).
    #[allow(clippy::too_many_arguments)]
    fn gemm_bias_uninit(
        m: usize,
        k: usize,
        n: usize,
        a: MatRef<Self>,
        b: MatRef<Self>,
        bias: &[Self],
        c: &mut [MaybeUninit<Self>],
        ldc: usize,
    ) {
        Self::gemm_bias_with(GemmIsa::selected(), m, k, n, a, b, bias, c, ldc)
    }

    /// [`Gemm::gemm_bias_uninit`] with the implementation `isa` (or the best one below it
    /// that this CPU runs), for tests and benchmarks.
    #[allow(clippy::too_many_arguments)]
    fn gemm_bias_with(
        isa: GemmIsa,
        m: usize,
        k: usize,
        n: usize,
        a: MatRef<Self>,
        b: MatRef<Self>,
        bias: &[Self],
        c: &mut [MaybeUninit<Self>],
        ldc: usize,
    ) {
        assert!(bias.len() >= n, "gemm: bias of {} for {n} columns", bias.len());
        // SAFETY: with beta zero `c` is only written (the bias fill, where there is one,
        // writes before the product reads), and `c` is a slice of its own length.
        unsafe { Self::gemm_raw(isa, m, k, n, Self::one(), a, b, Self::zero(), Some(bias), c.as_mut_ptr().cast(), c.len(), ldc) }
    }

    /// The shared body of the entry points above: `c = alpha·a·b + beta·c (+ bias)`, a bias
    /// only with `beta = 0`.
    ///
    /// # Safety
    /// `c` is valid for writes of `c_len` elements, and initialized unless `beta` is zero; a
    /// bias holds at least `n` elements.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        isa: GemmIsa,
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: MatRef<Self>,
        b: MatRef<Self>,
        beta: Self,
        bias: Option<&[Self]>,
        c: *mut Self,
        c_len: usize,
        ldc: usize,
    );
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

/// The checks and trivial cases every implementation shares: returns false when nothing is
/// left to multiply (an empty output, or `k = 0`, where `c = beta·c`).
///
/// # Safety
/// `c` is valid for writes of `c_len` elements, and initialized unless `beta` is zero.
#[allow(clippy::too_many_arguments)]
unsafe fn needs_product<A, T: FloatElem>(
    m: usize,
    k: usize,
    n: usize,
    a: &MatRef<A>,
    b: &MatRef<A>,
    beta: T,
    c: *mut T,
    c_len: usize,
    ldc: usize,
) -> bool {
    if m == 0 || n == 0 {
        return false;
    }
    assert!(c_len >= (m - 1) * ldc + n, "gemm: output too small");
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let v = c.add(i * ldc + j);
                v.write(if beta == T::zero() { T::zero() } else { v.read() * beta });
            }
        }
        return false;
    }
    check_span("lhs", a, m, k);
    check_span("rhs", b, k, n);
    true
}

macro_rules! impl_gemm {
    ($t:ty, $portable:path) => {
        impl Gemm for $t {
            unsafe fn gemm_raw(
                isa: GemmIsa,
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: MatRef<Self>,
                b: MatRef<Self>,
                beta: Self,
                bias: Option<&[Self]>,
                c: *mut Self,
                c_len: usize,
                ldc: usize,
            ) {
                debug_assert!(bias.is_none() || beta == 0.0, "gemm: a bias only with beta = 0");
                let isa = isa.or_below();
                let mut beta = beta;
                // Without the AVX-512 epilogue (or with nothing to multiply) the bias is the
                // output's starting value.
                if let Some(bias) = bias.filter(|_| isa != GemmIsa::Avx512 || k == 0) {
                    assert!(m == 0 || c_len >= (m - 1) * ldc + n, "gemm: output too small");
                    for i in 0..m {
                        std::ptr::copy_nonoverlapping(bias.as_ptr(), c.add(i * ldc), n);
                    }
                    beta = 1.0;
                }
                if !needs_product(m, k, n, &a, &b, beta, c, c_len, ldc) {
                    return;
                }
                // SAFETY (both arms): both views were checked to lie inside their slices, and
                // `c` holds the m×n output with row stride ldc.
                match isa {
                    // SAFETY: or_below only returns Avx512 on CPUs with AVX-512F.
                    #[cfg(target_arch = "x86_64")]
                    GemmIsa::Avx512 => {
                        let bias = if beta == 0.0 { bias.map_or(std::ptr::null(), |b| b.as_ptr()) } else { std::ptr::null() };
                        let ep = blocked::Epilogue { alpha, beta, bias };
                        blocked::gemm::<avx512::Fma<$t>>(m, k, n, a.strided(), b.strided(), ep, c, ldc)
                    }
                    _ => {
                        let (pa, pb) = (a.data.as_ptr().offset(a.offset), b.data.as_ptr().offset(b.offset));
                        $portable(m, k, n, alpha, pa, a.rs, a.cs, pb, b.rs, b.cs, beta, c, ldc as isize, 1)
                    }
                }
            }
        }
    };
}
impl_gemm!(f32, matrixmultiply::sgemm);
impl_gemm!(f64, matrixmultiply::dgemm);

/// Whether [`gemm_bf16`] runs on this CPU: it has AVX-512F and AVX-512 BF16 or AMX, and
/// `TESSERA_GEMM_ISA` does not pin the portable GEMM.
pub fn bf16_gemm_available() -> bool {
    Bf16Kernel::selected().is_some()
}

/// The tiles a bf16 product can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// AMX tiles (`tdpbf16ps`): Intel CPUs from Sapphire Rapids on, once Linux grants the
    /// process the tile state.
    Amx,
    /// AVX-512 BF16 dot products (`vdpbf16ps`) in an FMA-style register tile.
    Dot,
}

impl Bf16Kernel {
    /// The kernels this CPU runs, best first (empty: bf16 products widen to f32).
    pub fn available() -> &'static [Bf16Kernel] {
        static HAVE: std::sync::OnceLock<Vec<Bf16Kernel>> = std::sync::OnceLock::new();
        HAVE.get_or_init(|| {
            let mut v = Vec::new();
            #[cfg(target_arch = "x86_64")]
            if GemmIsa::selected() == GemmIsa::Avx512 {
                if amx::available() {
                    v.push(Bf16Kernel::Amx);
                }
                if std::arch::is_x86_feature_detected!("avx512bf16") {
                    v.push(Bf16Kernel::Dot);
                }
            }
            v
        })
    }

    /// The best available, or what the environment variable `TESSERA_BF16_GEMM` (`amx` or
    /// `dot`, read once per process) asks for where the CPU has it (for benchmarks).
    pub fn selected() -> Option<Bf16Kernel> {
        static CHOICE: std::sync::OnceLock<Option<Bf16Kernel>> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let have = Bf16Kernel::available();
            let asked = match std::env::var("TESSERA_BF16_GEMM").as_deref() {
                Ok("amx") => Some(Bf16Kernel::Amx),
                Ok("dot") => Some(Bf16Kernel::Dot),
                _ => None,
            };
            asked.filter(|k| have.contains(k)).or_else(|| have.first().copied())
        })
    }
}

/// `c = a·b` for bf16 `a` (`m×k`) and `b` (`k×n`), the products accumulated in f32 by the
/// CPU's bf16 dot-product instructions (twice the products per instruction of an f32 FMA);
/// `c` is f32, contiguous row-major with row stride `ldc`, and only written. Returns false,
/// leaving `c` alone, where [`bf16_gemm_available`] is false: the caller then widens the
/// operands to f32. Bitwise the same for any thread count; against the widened f32 product
/// it differs by summation order and by reading denormals as zero (see `bf16.rs`).
pub fn gemm_bf16(m: usize, k: usize, n: usize, a: MatRef<half::bf16>, b: MatRef<half::bf16>, c: &mut [f32], ldc: usize) -> bool {
    // SAFETY: f32 and MaybeUninit<f32> have the same layout; every value written is an f32.
    gemm_bf16_uninit(m, k, n, a, b, unsafe { &mut *(c as *mut [f32] as *mut [MaybeUninit<f32>]) }, ldc)
}

/// [`gemm_bf16`] into memory that need not be initialized (it is only written): when it
/// returns true, every element of the `m×n` output is.
pub fn gemm_bf16_uninit(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<half::bf16>,
    b: MatRef<half::bf16>,
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
) -> bool {
    match Bf16Kernel::selected() {
        Some(kernel) => gemm_bf16_on(kernel, m, k, n, a, b, c, ldc),
        None => false,
    }
}

/// [`gemm_bf16_uninit`] on a given kernel (for tests and benchmarks comparing them): false,
/// leaving `c` alone, where this CPU does not run it ([`Bf16Kernel::available`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16_on(
    kernel: Bf16Kernel,
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<half::bf16>,
    b: MatRef<half::bf16>,
    c: &mut [MaybeUninit<f32>],
    ldc: usize,
) -> bool {
    if !Bf16Kernel::available().contains(&kernel) {
        return false;
    }
    let (c, c_len) = (c.as_mut_ptr().cast::<f32>(), c.len());
    // SAFETY: `c` is valid for writes of its length, and beta is zero.
    if !unsafe { needs_product(m, k, n, &a, &b, 0.0f32, c, c_len, ldc) } {
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: both views were checked to lie inside their slices, `c` holds the m×n output
    // with row stride ldc, and bf16_gemm_available checked the CPU's features.
    unsafe {
        match kernel {
            Bf16Kernel::Amx => blocked::gemm::<amx::AmxBf16>(m, k, n, a.strided(), b.strided(), blocked::PLAIN, c, ldc),
            Bf16Kernel::Dot => blocked::gemm::<bf16::Bf16Dot>(m, k, n, a.strided(), b.strided(), blocked::PLAIN, c, ldc),
        }
    }
    true
}
