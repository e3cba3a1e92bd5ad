//! The AMX bf16 micro-kernel: Intel's Advanced Matrix Extensions multiply 16 × 32 bf16 tiles
//! by 16-pair × 16-column tiles into 16 × 16 f32 accumulator tiles in one instruction
//! (`tdpbf16ps`: 16·16·32 = 8,192 multiply-adds, where an AVX-512 FMA does 16). The tile
//! registers are reached with `asm!` (the intrinsics are not stable Rust); Linux hands them
//! to a process only after it asks (`arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)`), which
//! [`available`] does once, falling back to the AVX-512 BF16 dot-product kernel (`bf16.rs`)
//! where the CPU or the kernel says no.
//!
//! The tile is 32 × 32 outputs: four accumulator tiles (tmm0–3), two `a` tiles (tmm4–5, rows
//! 0–15 and 16–31) and two `b` tiles (tmm6–7, columns 0–15 and 16–31), all eight registers.
//! Packed layouts, the depth padded with zeros to a multiple of 32 steps: an `a` panel is
//! `[32-step block][row][32 steps]` (a tile row is 64 contiguous bytes), a `b` panel is
//! `bf16.rs`'s `[pair][column][2]` (AMX's "VNNI" layout: a tile row is one step pair of 16
//! columns, and the pair rows of a panel are 128 bytes apart).
//!
//! Rounding: as the dot-product kernel, bf16 products are exact in f32 and are added to
//! their accumulator in reduction order, with denormals read and written as zero; each
//! accumulator sees its products in the same order whatever the thread count.

use super::avx512::store_tile;
use super::bf16::pack_pairs;
use super::blocked::{Epilogue, Kernel};
use super::pack::Strided;
use core::arch::asm;
use core::arch::x86_64::*;
use half::bf16;

/// Rows and columns of a tile.
const EDGE: usize = 32;
/// Reduction steps per tile load (64 bytes of bf16).
const STEPS: usize = 32;

/// The AMX tile as a [`Kernel`] of the blocked loop nest (f32 output).
pub(super) struct AmxBf16;

impl Kernel for AmxBf16 {
    type In = bf16;
    type Out = f32;
    const MR: usize = EDGE;
    const NR: usize = EDGE;
    /// An `a` panel of 32 rows × 512 steps and a `b` panel of 512 × 32 are 32 KiB each.
    const KC: usize = 512;
    /// A `b` block of 512 × 512 bf16 is 512 KiB (L2 2 MiB).
    const NC: usize = 512;
    /// Blocks but the last are whole tile loads, so only the last one is padded.
    const K_UNIT: usize = STEPS;
    const ONE: f32 = 1.0;

    fn a_layout(_: &Strided<bf16>) -> usize {
        0
    }

    fn a_panel_len(kc: usize, _: usize) -> usize {
        kc.next_multiple_of(STEPS) * EDGE
    }

    fn b_panel_len(kc: usize) -> usize {
        kc.next_multiple_of(STEPS) * EDGE
    }

    unsafe fn pack_a(src: Strided<bf16>, rows: usize, depth: usize, _: usize, dst: &mut [bf16]) {
        pack_row_blocks(src, rows, depth, dst)
    }

    unsafe fn pack_b(src: Strided<bf16>, depth: usize, width: usize, dst: &mut [bf16]) {
        pack_pairs::<EDGE>(src, depth, width, depth.next_multiple_of(STEPS) / 2, dst)
    }

    unsafe fn tile(
        kc: usize,
        _: usize,
        a: *const bf16,
        // Never in place (`reads_a_in_place` is false here): `a` is always a packed panel.
        _: usize,
        b: *const bf16,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        ep: Epilogue<f32>,
    ) {
        tile_amx(kc, a, b, c, ldc, rows, cols, ep)
    }
}

/// Packs `rows × depth` of `a` into `rows.div_ceil(32)` panels of `[block][32 rows][32
/// steps]`, zero past `rows` and `depth`.
///
/// # Safety
/// Every element (i, p), i < rows, p < depth, of `src` is readable.
unsafe fn pack_row_blocks(src: Strided<bf16>, rows: usize, depth: usize, dst: &mut [bf16]) {
    let depth_padded = depth.next_multiple_of(STEPS);
    let panel_len = depth_padded * EDGE;
    let panels = rows.div_ceil(EDGE);
    assert!(dst.len() >= panels * panel_len, "gemm: packing buffer too small");
    for (q, panel) in dst.chunks_exact_mut(panel_len).take(panels).enumerate() {
        let r0 = q * EDGE;
        let height = EDGE.min(rows - r0);
        if height < EDGE || depth < depth_padded {
            panel.fill(bf16::ZERO);
        }
        if src.rs == 1 && src.cs != 1 {
            // `a` stored transposed (a weight gradient's `dyᵀ`): each step's 32 rows are
            // contiguous, so read them in order and scatter into the rows' blocks.
            for p in 0..depth {
                let column = std::slice::from_raw_parts(src.from(r0, p).ptr, height);
                let (block, kk) = (p / STEPS, p % STEPS);
                let out = &mut panel[block * STEPS * EDGE + kk..];
                for (r, &v) in column.iter().enumerate() {
                    out[r * STEPS] = v;
                }
            }
            continue;
        }
        for r in 0..height {
            let row = src.from(r0 + r, 0);
            for block in 0..depth_padded / STEPS {
                let p0 = block * STEPS;
                let n = STEPS.min(depth.saturating_sub(p0));
                let out = &mut panel[block * STEPS * EDGE + r * STEPS..][..n];
                if row.cs == 1 && n == STEPS {
                    // One 64-byte move, inlined (a `memcpy` call per block cost more than it).
                    let block = row.ptr.add(p0).cast::<[bf16; STEPS]>().read_unaligned();
                    out.as_mut_ptr().cast::<[bf16; STEPS]>().write_unaligned(block);
                } else if row.cs == 1 {
                    std::ptr::copy_nonoverlapping(row.ptr.add(p0), out.as_mut_ptr(), n);
                } else {
                    for (kk, o) in out.iter_mut().enumerate() {
                        *o = *row.ptr.offset((p0 + kk) as isize * row.cs);
                    }
                }
            }
        }
    }
}

/// The palette-1 configuration of the eight tiles: every one 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

static CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// A tile's f32 results on their way from the tile registers to `c`.
#[repr(C, align(64))]
struct Staging([f32; EDGE * EDGE]);

/// One 32 × 32 tile: `c = alpha·a·b + beta·c` for its first `rows` rows and `cols` columns.
///
/// # Safety
/// The CPU has AMX-BF16 and AVX-512F and this process may use the tiles ([`available`]); `a`
/// and `b` are packed panels of depth `kc`; `c` is valid for `rows` rows of `cols` elements
/// with row stride `ldc`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_amx(kc: usize, a: *const bf16, b: *const bf16, c: *mut f32, ldc: usize, rows: usize, cols: usize, ep: Epilogue<f32>) {
    asm!("ldtilecfg [{cfg}]", cfg = in(reg) &CONFIG, options(nostack, readonly));
    asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
    // Byte strides between tile rows: an `a` block row is 32 steps, a `b` pair row 32 columns.
    let (a_stride, b_stride) = (STEPS * 2, EDGE * 2 * 2);
    for block in 0..kc.div_ceil(STEPS) {
        let a0 = a.add(block * STEPS * EDGE);
        let b0 = b.add(block * (STEPS / 2) * EDGE * 2);
        asm!(
            "tileloadd tmm4, [{a0} + {sa}*1]",
            "tileloadd tmm5, [{a1} + {sa}*1]",
            "tileloadd tmm6, [{b0} + {sb}*1]",
            "tileloadd tmm7, [{b1} + {sb}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a0 = in(reg) a0,
            a1 = in(reg) a0.add(16 * STEPS),
            b0 = in(reg) b0,
            b1 = in(reg) b0.add(16 * 2),
            sa = in(reg) a_stride,
            sb = in(reg) b_stride,
            options(nostack, readonly),
        );
    }
    let mut out = Staging([0.0; EDGE * EDGE]);
    let s = out.0.as_mut_ptr();
    asm!(
        "tilestored [{p0} + {st}*1], tmm0",
        "tilestored [{p1} + {st}*1], tmm1",
        "tilestored [{p2} + {st}*1], tmm2",
        "tilestored [{p3} + {st}*1], tmm3",
        "tilerelease",
        p0 = in(reg) s,
        p1 = in(reg) s.add(16),
        p2 = in(reg) s.add(16 * EDGE),
        p3 = in(reg) s.add(16 * EDGE + 16),
        st = in(reg) EDGE * 4,
        options(nostack),
    );
    let acc: [[__m512; 2]; EDGE] = std::array::from_fn(|i| [_mm512_load_ps(s.add(i * EDGE)), _mm512_load_ps(s.add(i * EDGE + 16))]);
    store_tile::<f32, EDGE, 2>(&acc, c, ldc, rows, cols, ep)
}

/// Whether this CPU has AMX-BF16 and the tiles are ours to use: CPUID says so and Linux
/// granted the request for the tile data state (asked once per process).
pub(super) fn available() -> bool {
    static GRANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *GRANTED.get_or_init(|| {
        // CPUID.(EAX=7, ECX=0):EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
        let leaf = __cpuid_count(7, 0);
        let cpu = leaf.edx & (1 << 22) != 0 && leaf.edx & (1 << 24) != 0 && std::arch::is_x86_feature_detected!("avx512f");
        cpu && request_tile_data()
    })
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: true when Linux grants it.
#[cfg(target_os = "linux")]
fn request_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_data() -> bool {
    false
}
