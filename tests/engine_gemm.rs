//! The CPU GEMM (`engine::cpu::gemm`) under every implementation this CPU runs (tessera's
//! AVX-512 kernel where AVX-512F is detected, and the portable `matrixmultiply`), in f32 and
//! f64, against a naive reference that sums in f64:
//!
//! * every m, n and k from 1 to 70 and a grid around the tile edges (12-row, 16/32-column
//!   tiles) and a few products past the packing blocks (k > 384, n > 768) and the threading
//!   threshold;
//! * operands row-major, transposed, broadcast (stride 0 along rows, columns or both),
//!   flipped (negative strides) and gapped (strides past the size), and `c` with a row
//!   stride past `n` (the gap must stay untouched);
//! * alpha / beta cases, with NaNs in `c` when beta is 0 (they must not propagate);
//! * bitwise the same result under rayon pools of 1, 2 and 4 threads.
//!
//! Tolerance: a sum of `k` products rounds to within `(k + 2)·ε·Σ|alpha·aᵢₚ·bₚⱼ| + 2·ε·|beta·cᵢⱼ|`
//! of the exact value (the standard forward bound, one rounding per FMA plus the epilogue),
//! with ε the element type's machine epsilon; an indexing or packing bug is off by far more.

mod common;

use common::Rng64;
use tessera::engine::cpu::gemm::{self, Gemm, GemmIsa, MatRef};
use tessera::engine::Element;

/// The implementations under test, announcing a skipped AVX-512 once per test.
fn isas(test: &str) -> Vec<GemmIsa> {
    let isas = GemmIsa::available();
    if !isas.contains(&GemmIsa::Avx512) {
        println!("{test}: skipping the AVX-512 GEMM (this CPU has no AVX-512F); testing the portable one only");
    }
    isas
}

/// How an operand's elements are laid out in its slice.
#[derive(Clone, Copy, Debug)]
enum Layout {
    RowMajor,
    Transposed,
    /// Row stride 0: every row is the same.
    BroadcastRows,
    /// Column stride 0: every column is the same.
    BroadcastCols,
    /// Both strides 0: one element.
    Scalar,
    /// Row-major with the rows in reverse order (negative row stride).
    FlippedRows,
    /// Transposed with the columns in reverse order (negative column stride).
    FlippedCols,
    /// Strides larger than the size (a slice of a bigger matrix, every other column).
    Gapped,
}

const LAYOUTS: [Layout; 8] = [
    Layout::RowMajor,
    Layout::Transposed,
    Layout::BroadcastRows,
    Layout::BroadcastCols,
    Layout::Scalar,
    Layout::FlippedRows,
    Layout::FlippedCols,
    Layout::Gapped,
];

/// An `r × c` operand: its storage, offset and strides.
struct Operand<T> {
    data: Vec<T>,
    offset: isize,
    rs: isize,
    cs: isize,
}

impl<T: Gemm> Operand<T> {
    fn new(r: usize, c: usize, layout: Layout, rng: &mut Rng64) -> Self {
        let (ri, ci) = (r as isize, c as isize);
        let (offset, rs, cs, len) = match layout {
            Layout::RowMajor => (0, ci, 1, r * c),
            Layout::Transposed => (0, 1, ri, r * c),
            Layout::BroadcastRows => (0, 0, 1, c),
            Layout::BroadcastCols => (0, 1, 0, r),
            Layout::Scalar => (0, 0, 0, 1),
            Layout::FlippedRows => ((ri - 1) * ci, -ci, 1, r * c),
            Layout::FlippedCols => ((ci - 1) * ri, 1, -ri, r * c),
            Layout::Gapped => (3, 2 * ci + 5, 2, 3 + (r - 1) * (2 * c + 5) + 2 * (c - 1) + 4),
        };
        let data = (0..len).map(|_| T::from(rng.range(-2.0, 2.0)).unwrap()).collect();
        Operand { data, offset, rs, cs }
    }

    fn view(&self) -> MatRef<'_, T> {
        MatRef { data: &self.data, offset: self.offset, rs: self.rs, cs: self.cs }
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        self.data[(self.offset + i as isize * self.rs + j as isize * self.cs) as usize].to_f64()
    }
}

/// One product: `c = alpha·a·b + beta·c` with `c` `m × n` at row stride `ldc ≥ n`.
struct Case<T> {
    m: usize,
    k: usize,
    n: usize,
    alpha: f64,
    beta: f64,
    a: Operand<T>,
    b: Operand<T>,
    c: Vec<T>,
    ldc: usize,
}

/// Fills the gap between `c`'s rows, which the product must leave alone.
const GAP: f64 = 12345.0;

impl<T: Gemm> Case<T> {
    #[allow(clippy::too_many_arguments)]
    fn new(m: usize, k: usize, n: usize, la: Layout, lb: Layout, alpha: f64, beta: f64, rng: &mut Rng64) -> Self {
        let ldc = n + rng.below(3);
        let c = (0..m * ldc)
            .map(|i| {
                if i % ldc >= n {
                    T::from(GAP).unwrap()
                } else if beta == 0.0 {
                    T::nan()
                } else {
                    T::from(rng.range(-2.0, 2.0)).unwrap()
                }
            })
            .collect();
        Case { m, k, n, alpha, beta, a: Operand::new(m, k, la, rng), b: Operand::new(k, n, lb, rng), c, ldc }
    }

    /// A random case: layouts of both operands, alpha and beta drawn.
    fn random(m: usize, k: usize, n: usize, rng: &mut Rng64) -> Self {
        let la = LAYOUTS[rng.below(LAYOUTS.len())];
        let lb = LAYOUTS[rng.below(LAYOUTS.len())];
        let alpha = [1.0, 1.0, 0.5, -2.0][rng.below(4)];
        let beta = [0.0, 0.0, 1.0, -0.75][rng.below(4)];
        Case::new(m, k, n, la, lb, alpha, beta, rng)
    }

    fn run(&self, isa: GemmIsa) -> Vec<T> {
        let mut c = self.c.clone();
        let (alpha, beta) = (T::from(self.alpha).unwrap(), T::from(self.beta).unwrap());
        T::gemm_with(isa, self.m, self.k, self.n, alpha, self.a.view(), self.b.view(), beta, &mut c, self.ldc);
        c
    }

    /// Runs the product under `isa` and checks it against the f64 reference.
    fn check(&self, isa: GemmIsa) {
        let got = self.run(isa);
        let eps = T::epsilon().to_f64();
        let what = || {
            format!(
                "{isa:?} {}: m={} k={} n={} ldc={} alpha={} beta={} a(rs={}, cs={}) b(rs={}, cs={})",
                std::any::type_name::<T>(),
                self.m,
                self.k,
                self.n,
                self.ldc,
                self.alpha,
                self.beta,
                self.a.rs,
                self.a.cs,
                self.b.rs,
                self.b.cs
            )
        };
        for i in 0..self.m {
            for j in 0..self.ldc {
                let g = got[i * self.ldc + j].to_f64();
                if j >= self.n {
                    assert_eq!(g, GAP, "{}: wrote c[{i}][{j}] past the row", what());
                    continue;
                }
                let (mut exact, mut magnitude) = (0.0, 0.0);
                for p in 0..self.k {
                    let t = self.alpha * self.a.at(i, p) * self.b.at(p, j);
                    exact += t;
                    magnitude += t.abs();
                }
                let mut tol = (self.k + 2) as f64 * eps * magnitude;
                if self.beta != 0.0 {
                    let c0 = self.beta * self.c[i * self.ldc + j].to_f64();
                    exact += c0;
                    tol += 2.0 * eps * c0.abs();
                }
                assert!((g - exact).abs() <= tol + f64::MIN_POSITIVE, "{}: c[{i}][{j}] = {g}, expected {exact} ± {tol}", what());
            }
        }
    }
}

/// Checks an f32 and an f64 case under every implementation.
fn check_both(isas: &[GemmIsa], c32: &Case<f32>, c64: &Case<f64>) {
    for &isa in isas {
        c32.check(isa);
        c64.check(isa);
    }
}

/// Checks a random `m × k` by `k × n` product under every implementation, in f32 and f64.
fn check_all(isas: &[GemmIsa], m: usize, k: usize, n: usize, seed: u64) {
    let mut rng = Rng64::new(seed);
    let c32 = Case::<f32>::random(m, k, n, &mut rng);
    check_both(isas, &c32, &Case::<f64>::random(m, k, n, &mut rng));
}

#[test]
fn every_size_up_to_70() {
    let isas = isas("every_size_up_to_70");
    let mut rng = Rng64::new(1);
    for s in 1..=70 {
        // s as each of m, k and n in turn, the other two drawn.
        let mut other = || 1 + rng.below(70);
        for (m, k, n) in [(s, other(), other()), (other(), s, other()), (other(), other(), s)] {
            check_all(&isas, m, k, n, rng.next_u64());
        }
    }
}

#[test]
fn tile_edges() {
    let isas = isas("tile_edges");
    let edges = [1, 8, 11, 12, 13, 16, 17, 31, 32, 33, 49];
    let mut seed = 100;
    for m in edges {
        for k in [1, 2, 16, 49] {
            for n in edges {
                seed += 1;
                check_all(&isas, m, k, n, seed);
            }
        }
    }
}

#[test]
fn every_layout_pair() {
    let isas = isas("every_layout_pair");
    let mut rng = Rng64::new(7);
    for la in LAYOUTS {
        for lb in LAYOUTS {
            let (m, k, n) = (1 + rng.below(40), 1 + rng.below(40), 1 + rng.below(70));
            let c32 = Case::<f32>::new(m, k, n, la, lb, 1.0, 0.0, &mut rng);
            check_both(&isas, &c32, &Case::<f64>::new(m, k, n, la, lb, -0.5, 1.0, &mut rng));
        }
    }
}

/// The AVX-512 kernel reads a row-major or column-major `a` where it lies in products up to
/// 256 columns wide and packs it otherwise (or when `a` is laid out another way); each way
/// sums every element's products in the same order, so the bits agree. The same values
/// stored row-major with padded rows, column-major with padded columns, and with both
/// strides 2 (never read in place): whole and partial 12-row panels, two reduction blocks
/// (k > 384), several row blocks, the parallel cut, and a product one column past the
/// in-place limit.
#[test]
fn a_read_in_place_gives_the_bits_of_a_packed() {
    if !GemmIsa::available().contains(&GemmIsa::Avx512) {
        println!("a_read_in_place_gives_the_bits_of_a_packed: skipped, this CPU has no AVX-512F");
        return;
    }
    let mut rng = Rng64::new(23);
    for (m, k, n) in [(12, 5, 7), (7, 9, 13), (61, 400, 200), (100, 37, 256), (30, 20, 257), (150, 64, 49)] {
        let value: Vec<f32> = (0..m * k).map(|_| rng.range(-2.0, 2.0) as f32).collect();
        let at = |i: usize, p: usize| value[i * k + p];
        let (lda, ldc) = (k + 3, m + 5);
        let rows: Vec<f32> = (0..m * lda).map(|e| if e % lda < k { at(e / lda, e % lda) } else { f32::NAN }).collect();
        let cols: Vec<f32> = (0..k * ldc).map(|e| if e % ldc < m { at(e % ldc, e / ldc) } else { f32::NAN }).collect();
        let spread: Vec<f32> = (0..2 * m * k).map(|e| if e % 2 == 0 { value[e / 2] } else { f32::NAN }).collect();
        let b = Operand::<f32>::new(k, n, Layout::RowMajor, &mut rng);
        let run = |a: MatRef<f32>| {
            let mut c = vec![0f32; m * n];
            f32::gemm_with(GemmIsa::Avx512, m, k, n, 1.0, a, b.view(), 0.0, &mut c, n);
            c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let packed = run(MatRef { data: &spread, offset: 0, rs: 2 * k as isize, cs: 2 });
        assert_eq!(run(MatRef { data: &rows, offset: 0, rs: lda as isize, cs: 1 }), packed, "row-major {m}x{k}x{n}");
        assert_eq!(run(MatRef { data: &cols, offset: 0, rs: 1, cs: ldc as isize }), packed, "column-major {m}x{k}x{n}");
    }
}

#[test]
fn alpha_and_beta() {
    let isas = isas("alpha_and_beta");
    let mut rng = Rng64::new(11);
    for alpha in [1.0, 0.0, -2.0, 0.375] {
        for beta in [0.0, 1.0, -0.75, 2.0] {
            let (m, k, n) = (1 + rng.below(30), 1 + rng.below(30), 1 + rng.below(50));
            let case = Case::<f32>::new(m, k, n, Layout::RowMajor, Layout::RowMajor, alpha, beta, &mut rng);
            for &isa in &isas {
                case.check(isa);
            }
        }
    }
}

#[test]
fn zero_depth_scales_c() {
    for isa in isas("zero_depth_scales_c") {
        let mut c = vec![f32::NAN, 1.0, 2.0, 3.0];
        f32::gemm_with(
            isa,
            2,
            0,
            2,
            1.0,
            MatRef { data: &[], offset: 0, rs: 0, cs: 0 },
            MatRef { data: &[], offset: 0, rs: 0, cs: 0 },
            0.0,
            &mut c,
            2,
        );
        assert_eq!(c, [0.0; 4], "{isa:?}: beta 0 clears c, NaNs included");
        let mut c = vec![1.0f64, 2.0];
        f64::gemm_with(
            isa,
            1,
            0,
            2,
            1.0,
            MatRef { data: &[], offset: 0, rs: 0, cs: 0 },
            MatRef { data: &[], offset: 0, rs: 0, cs: 0 },
            3.0,
            &mut c,
            2,
        );
        assert_eq!(c, [3.0, 6.0], "{isa:?}");
    }
}

/// Past the packing blocks (several reduction and column blocks) and the threading threshold:
/// square-ish, few rows with many columns, many rows with few columns.
#[test]
fn large_products() {
    let isas = isas("large_products");
    for (i, (m, k, n)) in [(300, 800, 1100), (13, 1000, 1700), (1500, 5, 3), (97, 389, 770)].into_iter().enumerate() {
        check_all(&isas, m, k, n, 1000 + i as u64);
    }
}

/// `c = a·b + bias` (the bias added to every row, as a linear layer's): bit for bit what
/// filling `c` with the bias rows and accumulating the product onto it (`beta = 1`) gives,
/// under every implementation (AVX-512 adds the bias in its store, the portable one fills
/// first) and thread count; with `k = 0`, the bias rows. Small products, several reduction
/// and column blocks, and threaded ones of both cut directions; the gap between rows untouched.
#[test]
fn bias_rows_match_filling_then_accumulating() {
    fn case<T: Gemm>(isa: GemmIsa, m: usize, k: usize, n: usize, rng: &mut Rng64) {
        let (a, b) = (Operand::<T>::new(m, k, Layout::RowMajor, rng), Operand::<T>::new(k, n, Layout::Transposed, rng));
        let bias: Vec<T> = (0..n).map(|_| T::from(rng.range(-2.0, 2.0)).unwrap()).collect();
        let ldc = n + 1;
        let mut want = vec![T::from(GAP).unwrap(); m * ldc];
        for row in want.chunks_mut(ldc) {
            row[..n].copy_from_slice(&bias);
        }
        T::gemm_with(isa, m, k, n, T::one(), a.view(), b.view(), T::one(), &mut want, ldc);
        for threads in [1, 2, 3] {
            let got = in_pool(threads, || {
                let mut c = vec![std::mem::MaybeUninit::new(T::from(GAP).unwrap()); m * ldc];
                T::gemm_bias_with(isa, m, k, n, a.view(), b.view(), &bias, &mut c, ldc);
                c.into_iter().map(|v| Element::to_f64(unsafe { v.assume_init() }).to_bits()).collect::<Vec<_>>()
            });
            let want: Vec<u64> = want.iter().map(|&v| Element::to_f64(v).to_bits()).collect();
            assert!(got == want, "{isa:?} {}: m={m} k={k} n={n}, {threads} threads", std::any::type_name::<T>());
        }
    }
    let mut rng = Rng64::new(11);
    for &isa in &isas("bias_rows_match_filling_then_accumulating") {
        for (m, k, n) in [(1, 1, 1), (13, 7, 33), (5, 0, 9), (30, 900, 50), (7, 300, 1700), (600, 500, 70)] {
            case::<f32>(isa, m, k, n, &mut rng);
            case::<f64>(isa, m, k, n, &mut rng);
        }
    }
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

fn same_bits_for_any_thread_count<T: Gemm>(isa: GemmIsa, case: &Case<T>) {
    let one = in_pool(1, || case.run(isa));
    for threads in [2, 4] {
        let many = in_pool(threads, || case.run(isa));
        let same = one.iter().zip(&many).all(|(x, y)| Element::to_f64(*x).to_bits() == Element::to_f64(*y).to_bits());
        assert!(same, "{isa:?} {}: m={} k={} n={}: 1 and {threads} threads differ", std::any::type_name::<T>(), case.m, case.k, case.n);
    }
}

#[test]
fn bitwise_equal_across_thread_counts() {
    let isas = isas("bitwise_equal_across_thread_counts");
    let mut rng = Rng64::new(5);
    // Large enough to run threaded: many rows, few rows (the columns are split too), and a
    // reduction past one packed block with beta ≠ 0.
    for (m, k, n) in [(257, 400, 777), (5, 1000, 1500), (64, 1200, 96), (1000, 64, 200)] {
        let c32 = Case::<f32>::new(m, k, n, Layout::RowMajor, Layout::Transposed, 1.0, 0.5, &mut rng);
        let c64 = Case::<f64>::new(m, k, n, Layout::Transposed, Layout::RowMajor, -1.0, 0.0, &mut rng);
        for &isa in &isas {
            same_bits_for_any_thread_count(isa, &c32);
            same_bits_for_any_thread_count(isa, &c64);
        }
    }
}

#[test]
fn available_ends_with_portable() {
    let isas = GemmIsa::available();
    assert_eq!(isas.last(), Some(&GemmIsa::Portable));
    assert!(isas.contains(&GemmIsa::selected()));
}

/// A bf16 product through the dot-product kernel (`gemm_bf16`): the operands are drawn as
/// f32 and rounded to bf16, and the reference sums the same bf16 values in f64. Products of
/// bf16 are exact in f32, so the only error is the f32 accumulation: within
/// `(k + 1)·ε_f32·Σ|aᵢₚ·bₚⱼ|`. Returns the output (`ldc = n + 1`, the gap checked untouched).
fn check_bf16(m: usize, k: usize, n: usize, la: Layout, lb: Layout, rng: &mut Rng64) -> Vec<f32> {
    check_bf16_on(gemm::Bf16Kernel::selected().expect("a bf16 kernel"), m, k, n, la, lb, rng)
}

/// [`check_bf16`] on one kernel.
fn check_bf16_on(kernel: gemm::Bf16Kernel, m: usize, k: usize, n: usize, la: Layout, lb: Layout, rng: &mut Rng64) -> Vec<f32> {
    use tessera::engine::half::bf16;
    let (a, b) = (Operand::<f32>::new(m, k, la, rng), Operand::<f32>::new(k, n, lb, rng));
    let half = |o: &Operand<f32>| o.data.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
    let (ah, bh) = (half(&a), half(&b));
    let at = |o: &Operand<f32>, d: &[bf16], i: usize, j: usize| d[(o.offset + i as isize * o.rs + j as isize * o.cs) as usize].to_f64();
    let ldc = n + 1;
    let mut c = vec![f32::NAN; m * ldc];
    for row in c.chunks_mut(ldc) {
        row[n] = GAP as f32;
    }
    let (va, vb) =
        (MatRef { data: &ah[..], offset: a.offset, rs: a.rs, cs: a.cs }, MatRef { data: &bh[..], offset: b.offset, rs: b.rs, cs: b.cs });
    // SAFETY: f32 and MaybeUninit<f32> share their layout.
    let cu = unsafe { &mut *(&mut c[..] as *mut [f32] as *mut [std::mem::MaybeUninit<f32>]) };
    assert!(gemm::gemm_bf16_on(kernel, m, k, n, va, vb, cu, ldc));
    for i in 0..m {
        assert_eq!(c[i * ldc + n], GAP as f32, "bf16 m={m} k={k} n={n}: wrote past row {i}");
        for j in 0..n {
            let (mut exact, mut magnitude) = (0.0, 0.0);
            for p in 0..k {
                let t = at(&a, &ah, i, p) * at(&b, &bh, p, j);
                exact += t;
                magnitude += t.abs();
            }
            let tol = (k + 1) as f64 * f32::EPSILON as f64 * magnitude;
            let g = c[i * ldc + j] as f64;
            assert!(
                (g - exact).abs() <= tol + f64::MIN_POSITIVE,
                "bf16 {la:?}×{lb:?} m={m} k={k} n={n}: c[{i}][{j}] = {g}, expected {exact} ± {tol}"
            );
        }
    }
    c
}

/// Whether this CPU runs the bf16 kernel, announcing the skip otherwise.
fn bf16_kernel(test: &str) -> bool {
    let has = gemm::bf16_gemm_available();
    if !has {
        println!("{test}: skipping (no AVX-512 BF16 on this CPU, or TESSERA_GEMM_ISA=portable): bf16 matmuls widen to f32 here");
    }
    has
}

#[test]
fn bf16_every_size_layout_and_edge() {
    if !bf16_kernel("bf16_every_size_layout_and_edge") {
        return;
    }
    let mut rng = Rng64::new(21);
    // Odd and even depths (a half pair at the end), tile edges, and every layout pair.
    for s in 1..=40 {
        let mut other = || 1 + rng.below(40);
        for (m, k, n) in [(s, other(), other()), (other(), s, other()), (other(), other(), s)] {
            check_bf16(m, k, n, Layout::RowMajor, Layout::Transposed, &mut rng);
        }
    }
    for la in LAYOUTS {
        for lb in LAYOUTS {
            let (m, k, n) = (1 + rng.below(30), 1 + rng.below(30), 1 + rng.below(50));
            check_bf16(m, k, n, la, lb, &mut rng);
        }
    }
    // Past the packing blocks (k > 512, n > 512) with an odd depth.
    check_bf16(29, 1031, 533, Layout::RowMajor, Layout::RowMajor, &mut rng);
}

/// Every bf16 kernel this CPU has (AMX and the dot-product tile on recent Intel CPUs), each
/// against the f64 reference: the tile edges of both (12 × 32 and 32 × 32), depths around
/// AMX's 32-step tile loads and the 512-step packing blocks, every layout pair.
#[test]
fn bf16_each_kernel_against_the_reference() {
    if !bf16_kernel("bf16_each_kernel_against_the_reference") {
        return;
    }
    let kernels = gemm::Bf16Kernel::available();
    println!("bf16 kernels on this CPU: {kernels:?}");
    let mut rng = Rng64::new(77);
    for &kernel in kernels {
        for (m, k, n) in
            [(1, 1, 1), (32, 32, 32), (33, 31, 65), (64, 33, 17), (5, 63, 40), (31, 64, 1), (70, 96, 96), (3, 545, 70), (40, 1030, 33)]
        {
            check_bf16_on(kernel, m, k, n, Layout::RowMajor, Layout::Transposed, &mut rng);
        }
        for la in LAYOUTS {
            for lb in LAYOUTS {
                let (m, k, n) = (1 + rng.below(70), 1 + rng.below(90), 1 + rng.below(70));
                check_bf16_on(kernel, m, k, n, la, lb, &mut rng);
            }
        }
    }
}

#[test]
fn bf16_bitwise_equal_across_thread_counts() {
    if !bf16_kernel("bf16_bitwise_equal_across_thread_counts") {
        return;
    }
    for (m, k, n) in [(300, 200, 150), (5, 700, 1300)] {
        let run = |threads| in_pool(threads, || check_bf16(m, k, n, Layout::RowMajor, Layout::Transposed, &mut Rng64::new(3)));
        let one = run(1);
        for threads in [2, 4] {
            let many = run(threads);
            assert!(
                one.iter().zip(&many).all(|(x, y)| x.to_bits() == y.to_bits()),
                "bf16 m={m} k={k} n={n}: 1 and {threads} threads differ"
            );
        }
    }
}
