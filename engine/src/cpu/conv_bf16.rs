//! bf16 convolutions on the bf16 GEMM (AMX tiles, or AVX-512 BF16 dot products): im2col of
//! the bf16 image, products accumulated in f32, the bias and the column sums (col2im) added
//! in f32, and each output rounded to bf16 once. That is the widened path's arithmetic (f32
//! sums of exact bf16 products) up to summation order, without widening the operands: under
//! `--precision bf16-mixed` every convolution of a ResNet comes here. With `x` an input batch
//! `[n, C, h, w]`, `w` a weight `[m, kg]` (`kg = C/groups · kh · kw`) and `cols(x[s])` the
//! `[C·kh·kw, L]` column matrix of sample `s`:
//!
//! * forward: `y[s] = w · cols(x[s]) (+ bias)`, one GEMM per sample (and group), samples in
//!   parallel;
//! * input gradient: `dx[s] = col2im(wᵀ · dy[s])`, likewise (`wᵀ` copied once);
//! * weight gradient: `dw = dy' · cols'ᵀ` as one GEMM whose reduction runs over the whole
//!   batch (`dy'` is `dy` as `[m, n·L]`, `cols'` the batch's columns as `[C·kh·kw, n·L]`), so
//!   the sum over samples is the GEMM's own, the same whatever the thread count.
//!
//! Every function returns `None` where this CPU has no bf16 GEMM or the convolution has
//! fewer than [`MIN_CHANNELS`] channels in or out per group; the caller then widens.

use crate::cpu::bf16_cast::{f32_to_bf16, narrow_slice};
use crate::cpu::gemm::{self, MatRef};
use crate::cpu::im2col::{col2im, im2col};
use crate::cpu::strided::build;
use crate::kinds::ConvGeom;
use half::bf16;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Whether a convolution runs here: the CPU has a bf16 GEMM and `TESSERA_BF16_CONV=widen`
/// (read once per process; for benchmarks) does not send every bf16 convolution to the
/// widened f32 kernels instead.
fn enabled() -> bool {
    static WIDEN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    gemm::bf16_gemm_available() && !*WIDEN.get_or_init(|| std::env::var("TESSERA_BF16_CONV").as_deref() == Ok("widen"))
}

/// Fewer input or output channels per group than this and a convolution widens to the f32
/// direct kernels instead: im2col, packing and col2im move about (channels)⁻¹ bytes per
/// multiply-add, and below 64 channels that traffic outweighs the tiles' speed. Measured on a
/// 2-core Sapphire Rapids host (bf16-mixed steps, `TESSERA_BF16_CONV=widen` against this
/// path for every conv): ResNet-18 (64–512 channels) 1.50 → 1.08 s, the narrow ResNet
/// (16–128) 0.49 → 0.70 s.
const MIN_CHANNELS: usize = 64;

/// Whether the convolution of `m` output channels over `g` runs here.
fn runs_here(m: usize, groups: usize, g: &ConvGeom) -> bool {
    enabled() && m / groups >= MIN_CHANNELS && g.channels / groups >= MIN_CHANNELS
}

/// `c = a·b` on the bf16 GEMM into the uninitialized f32 `c` (row stride `ldc`).
#[allow(clippy::too_many_arguments)]
fn product(m: usize, k: usize, n: usize, a: MatRef<bf16>, b: MatRef<bf16>, c: &mut [MaybeUninit<f32>], ldc: usize) {
    assert!(gemm::gemm_bf16_uninit(m, k, n, a, b, c, ldc), "bf16 GEMM unavailable after it was checked");
}

/// A row-major `rows × cols` view of `data` from `offset`, with row stride `rs`.
fn rows_of(data: &[bf16], offset: usize, rs: usize) -> MatRef<'_, bf16> {
    MatRef { data, offset: offset as isize, rs: rs as isize, cs: 1 }
}

/// One thread's buffers, kept from sample to sample: fresh ones per sample cost page faults.
#[derive(Default)]
struct Scratch {
    cols: Vec<bf16>,
    wide: Vec<f32>,
    image: Vec<f32>,
}

/// Runs `f(sample, out_chunk, scratch)` over the `per`-long chunks of the `n · per` output,
/// samples in parallel, each chunk written once.
fn per_sample(n: usize, per: usize, f: impl Fn(usize, &mut [MaybeUninit<bf16>], &mut Scratch) + Sync) -> Vec<bf16> {
    build(n * per, |out| {
        if per > 0 {
            out.par_chunks_mut(per).enumerate().for_each_init(Scratch::default, |scratch, (s, o)| f(s, o, scratch));
        }
    })
}

/// `buf` resized to `len` (values unspecified: callers overwrite or clear what they read).
fn sized<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    buf.resize(len, T::default());
    &mut buf[..len]
}

/// `buf` as `len` elements to be written (the GEMM only writes its output).
fn to_write(buf: &mut Vec<f32>, len: usize) -> &mut [MaybeUninit<f32>] {
    buf.clear();
    buf.reserve(len);
    &mut buf.spare_capacity_mut()[..len]
}

/// `y = conv(x, w) (+ bias)`: `[n, m, oh·ow]` in bf16.
pub(crate) fn forward(x: &[bf16], n: usize, w: &[bf16], m: usize, groups: usize, g: &ConvGeom, bias: Option<&[bf16]>) -> Option<Vec<bf16>> {
    if !runs_here(m, groups, g) {
        return None;
    }
    let (rows, l, img) = (g.col_rows(), g.col_len(), g.image_len());
    let (mg, kg) = (m / groups, rows / groups);
    Some(per_sample(n, m * l, |s, out, scratch| {
        let cols = sized(&mut scratch.cols, rows * l);
        im2col(&x[s * img..(s + 1) * img], g, cols);
        let y = to_write(&mut scratch.wide, m * l);
        for grp in 0..groups {
            let c = &mut y[grp * mg * l..(grp + 1) * mg * l];
            product(mg, kg, l, rows_of(w, grp * mg * kg, kg), rows_of(cols, grp * kg * l, l), c, l);
        }
        // SAFETY: the groups' products wrote all m·l elements.
        unsafe { scratch.wide.set_len(m * l) };
        for (ch, (o, yr)) in out.chunks_mut(l).zip(scratch.wide.chunks(l)).enumerate() {
            let b = bias.map_or(0.0, |b| b[ch].to_f32());
            for (o, &v) in o.iter_mut().zip(yr) {
                o.write(f32_to_bf16(v + b));
            }
        }
    }))
}

/// `dx = convᵀ(dy, w)`: `[n, C, h, w]` in bf16 from `dy` `[n, m, oh·ow]`.
pub(crate) fn backward_input(dy: &[bf16], n: usize, w: &[bf16], m: usize, groups: usize, g: &ConvGeom) -> Option<Vec<bf16>> {
    if !runs_here(m, groups, g) {
        return None;
    }
    let (rows, l, img) = (g.col_rows(), g.col_len(), g.image_len());
    let (mg, kg) = (m / groups, rows / groups);
    // wᵀ of each group, `[groups, kg, mg]`, made once: every sample's product packs it again,
    // and a row-major copy packs as plain copies where the transposed view packed element by
    // element (most of a ResNet-18 step).
    let wt: Vec<bf16> = build(m * kg, |out| {
        for grp in 0..groups {
            for p in 0..kg {
                for i in 0..mg {
                    out[(grp * kg + p) * mg + i].write(w[(grp * mg + i) * kg + p]);
                }
            }
        }
    });
    Some(per_sample(n, img, |s, out, scratch| {
        let cols = to_write(&mut scratch.wide, rows * l);
        for grp in 0..groups {
            let c = &mut cols[grp * kg * l..(grp + 1) * kg * l];
            product(kg, mg, l, rows_of(&wt, grp * kg * mg, mg), rows_of(dy, s * m * l + grp * mg * l, l), c, l);
        }
        // SAFETY: the groups' products wrote all rows·l elements.
        unsafe { scratch.wide.set_len(rows * l) };
        let dx = sized(&mut scratch.image, img);
        dx.fill(0.0);
        col2im(&scratch.wide, g, dx);
        narrow_slice(dx, out);
    }))
}

/// `dw = Σ_s dy[s] ⋆ x[s]`: `[m, kg]` in bf16.
pub(crate) fn backward_weight(dy: &[bf16], x: &[bf16], n: usize, m: usize, groups: usize, g: &ConvGeom) -> Option<Vec<bf16>> {
    if !runs_here(m, groups, g) {
        return None;
    }
    let (rows, l, img) = (g.col_rows(), g.col_len(), g.image_len());
    let (mg, kg, nl) = (m / groups, rows / groups, n * l);
    // The batch's columns side by side, `[rows, n·L]`: each sample's im2col, then its rows
    // placed at column s·L.
    let mut per = vec![bf16::ZERO; n * rows * l];
    if rows * l > 0 {
        per.par_chunks_mut(rows * l).enumerate().for_each(|(s, cols)| im2col(&x[s * img..(s + 1) * img], g, cols));
    }
    let all = side_by_side(&per, n, rows, l);
    // dy as `[m, n·L]`.
    let dyt = side_by_side(dy, n, m, l);
    let mut dw: Vec<f32> = Vec::with_capacity(m * kg);
    for grp in 0..groups {
        // cols'ᵀ of the group: element (q, p) is all[(grp·kg + p)·nL + q].
        let colst = MatRef { data: &all[..], offset: (grp * kg * nl) as isize, rs: 1, cs: nl as isize };
        let c = &mut dw.spare_capacity_mut()[grp * mg * kg..(grp + 1) * mg * kg];
        product(mg, nl, kg, rows_of(&dyt, grp * mg * nl, nl), colst, c, kg);
    }
    // SAFETY: the groups' products wrote all m·kg elements.
    unsafe { dw.set_len(m * kg) };
    Some(build(m * kg, |out| narrow_slice(&dw, out)))
}

/// `[n, r, l]` as `[r, n·l]`: row `i` holds every sample's row `i`, sample after sample.
fn side_by_side(src: &[bf16], n: usize, r: usize, l: usize) -> Vec<bf16> {
    build(n * r * l, |out| {
        if n * l == 0 {
            return;
        }
        out.par_chunks_mut(n * l).enumerate().for_each(|(i, row)| {
            for (s, o) in row.chunks_mut(l).enumerate() {
                for (o, &v) in o.iter_mut().zip(&src[(s * r + i) * l..(s * r + i + 1) * l]) {
                    o.write(v);
                }
            }
        })
    })
}
