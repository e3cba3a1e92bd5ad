//! The weight gradient: rows are taps, the reduction runs over the output pixels of a batch
//! of samples at a time (see the parent module).
//!
//! The gradient is accumulated in blocks, one per (group, channel block): `[kg][NR]`, the
//! `NR` output channels of the block side by side, so that a tile's accumulators are whole
//! rows of its block. Two ways to share the work between threads, chosen by the shapes only
//! (so the result never depends on the thread count):
//!
//! * small weights (most layers): the batch is cut into at most [`MAX_CHUNKS`] chunks,
//!   each summed by one worker into its own partial gradient, and the partials are added in
//!   order;
//! * large weights (at least [`LARGE`] elements, such as ResNet-18's 512 × 512 × 3 × 3 on 4 × 4
//!   images): a partial gradient no longer stays in cache, and each batch of samples reads
//!   and writes it whole, so the samples are summed into one gradient, in batches of many
//!   samples, and the workers share each batch's channel blocks instead.

use super::*;

/// Small weights: the batch is summed in at most this many chunks ...
const MAX_CHUNKS: usize = 8;
/// ... keeping at most this many partial-sum elements alive.
const MAX_PARTIAL: usize = 1 << 24;
/// Small weights: at least this many output pixels per microkernel call (several samples),
/// to amortize loading the accumulators ...
const MIN_PIXELS: usize = 512;
/// ... as long as the padded inputs and gradients of those samples stay this small
/// (elements), so that they are reused from cache across the tiles.
const MAX_BATCH_ELEMS: usize = 96 * 1024;
/// Weights with at least this many elements (in blocks, padded to `NR` channels) are
/// large: summed into one gradient whose channel blocks the workers share ...
const LARGE: usize = 1 << 19;
/// ... in batches of at least this many output pixels, since each batch reads and writes the
/// whole gradient ...
const LARGE_MIN_PIXELS: usize = 2048;
/// ... as long as the batch's padded inputs and gradients stay this small (elements).
const LARGE_MAX_BATCH_ELEMS: usize = 1 << 22;

pub(super) fn backward_weight<T: ConvElem, const MR: usize, const NR: usize>(
    isa: Isa,
    dy: &[T],
    x: &[T],
    n: usize,
    m: usize,
    groups: usize,
    g: &ConvGeom,
) -> Vec<T> {
    backward_weight_with::<T, MR, NR>(isa, dy, x, n, m, groups, g, None)
}

/// [`backward_weight`], on the large-weight path or not with `batch` samples per microkernel
/// call as `forced` says (tests), or as the shapes choose.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_weight_with<T: ConvElem, const MR: usize, const NR: usize>(
    isa: Isa,
    dy: &[T],
    x: &[T],
    n: usize,
    m: usize,
    groups: usize,
    g: &ConvGeom,
    forced: Option<(bool, usize)>,
) -> Vec<T> {
    let (l, img) = (g.col_len(), g.image_len());
    let (cg, mg) = (g.channels / groups, m / groups);
    let kg = cg * g.kh * g.kw;
    let wlen = m * kg;
    if n == 0 || wlen == 0 || l == 0 {
        return vec![T::zero(); wlen];
    }
    let (hp, wp) = padded_dims(g);
    let pad_len = g.channels * hp * wp;
    let ncb = mg.div_ceil(NR);
    let blocks = groups * ncb;
    let block_len = kg * NR;
    let (large, batch) = forced.unwrap_or_else(|| {
        let large = blocks > 1 && blocks * block_len >= LARGE;
        let (min_pixels, max_elems) = if large { (LARGE_MIN_PIXELS, LARGE_MAX_BATCH_ELEMS) } else { (MIN_PIXELS, MAX_BATCH_ELEMS) };
        let per_sample = pad_len + blocks * NR * l;
        (large, min_pixels.div_ceil(l).min(max_elems / per_sample.max(1)))
    });
    let batch = batch.clamp(1, n);
    // Small images skip the padding: the rows run tap by tap (channels innermost), so that a
    // tile's rows share a tap, and the pixels are grouped by the taps they read inside the
    // image, so that a tap's pixels form a few runs (see `BatchOrder`).
    let skip = skips_padding(l);
    let kk = g.kh * g.kw;
    let order = reduction_order(skip, cg, kk);
    let taps = Offsets::new(order.iter().map(|&(ci, t)| ci * hp * wp + (t / g.kw) * g.dh * wp + (t % g.kw) * g.dw).collect());
    let pixels: Vec<(usize, TapRect)> = window_corners(g, wp)
        .into_iter()
        .enumerate()
        .map(|(q, corner)| (corner, TapRect::inside_output(g, q / g.ow, q % g.ow).read(skip, (g.kh, g.kw))))
        .collect();
    let plan = WgradPlan { groups, cg, mg, ncb, l, pad_len, hp, wp, batch, order, taps, pixels };
    let sum = if large {
        large_weight_gradient::<T, MR, NR>(isa, &plan, g, dy, x, n, m)
    } else {
        let chunks = n.min(MAX_CHUNKS).min((MAX_PARTIAL / (blocks * block_len)).max(1));
        let per = n.div_ceil(chunks);
        let chunks = n.div_ceil(per);
        let partial = |c: usize| -> Vec<T> {
            let mut acc = vec![T::zero(); blocks * block_len];
            let mut batch_bufs = BatchBuffers::new::<NR>(&plan);
            let (s0, s1) = (c * per, ((c + 1) * per).min(n));
            for b0 in (s0..s1).step_by(batch) {
                let bn = batch.min(s1 - b0);
                batch_bufs.fill::<NR>(&plan, g, m, &x[b0 * img..], &dy[b0 * m * l..], bn, false);
                for (blk, acc) in acc.chunks_mut(block_len).enumerate() {
                    accumulate_block_on::<T, MR, NR>(isa, &plan, &batch_bufs, blk, bn, acc);
                }
            }
            acc
        };
        let work = n.saturating_mul(wlen).saturating_mul(l);
        let parts: Vec<Vec<T>> = if chunks > 1 && work >= PAR_MIN_FLOPS {
            (0..chunks).into_par_iter().map(partial).collect()
        } else {
            (0..chunks).map(partial).collect()
        };
        let mut parts = parts.into_iter();
        let mut sum = parts.next().unwrap_or_else(|| vec![T::zero(); blocks * block_len]);
        for p in parts {
            for (o, &v) in sum.iter_mut().zip(&p) {
                *o += v;
            }
        }
        sum
    };
    // Blocks [group][channel block][k][NR] → [m, kg], k in the plan's order: row co is lane
    // co mod NR of its group's block (co mod mg) / NR, and its element ci·kk + t comes from
    // the step k = slot[ci·kk + t] with order[k] = (ci, t).
    let mut slot = vec![0; kg];
    for (k, &(ci, t)) in plan.order.iter().enumerate() {
        slot[ci * kk + t] = k;
    }
    blocks_from(m, kg, |co, row| {
        let (grp, o) = (co / mg, co % mg);
        let block = &sum[(grp * ncb + o / NR) * block_len..][..block_len];
        for (e, &k) in row.iter_mut().zip(&slot) {
            e.write(block[k * NR + o % NR]);
        }
    })
}

/// The large-weight path: every batch of samples is summed into one gradient, the workers
/// sharing its channel blocks (each block sums its batches in order).
fn large_weight_gradient<T: ConvElem, const MR: usize, const NR: usize>(
    isa: Isa,
    p: &WgradPlan,
    g: &ConvGeom,
    dy: &[T],
    x: &[T],
    n: usize,
    m: usize,
) -> Vec<T> {
    let (l, img) = (p.l, g.image_len());
    let block_len = p.taps.v.len() * NR;
    let mut acc = zeroed_blocks(p.groups * p.ncb, block_len);
    let mut batch_bufs = BatchBuffers::new::<NR>(p);
    for b0 in (0..n).step_by(p.batch) {
        let bn = p.batch.min(n - b0);
        batch_bufs.fill::<NR>(p, g, m, &x[b0 * img..], &dy[b0 * m * l..], bn, true);
        let bufs = &batch_bufs;
        acc.par_chunks_mut(block_len).enumerate().for_each(|(blk, acc)| accumulate_block_on::<T, MR, NR>(isa, p, bufs, blk, bn, acc));
    }
    acc
}

struct WgradPlan {
    groups: usize,
    cg: usize,
    mg: usize,
    ncb: usize,
    /// Output pixels per sample, padded input length per sample and its plane.
    l: usize,
    pad_len: usize,
    hp: usize,
    wp: usize,
    /// Samples per microkernel call.
    batch: usize,
    /// The tile rows: (input channel, tap) pairs of one group, in order, and their offsets
    /// in a padded sample.
    order: Vec<(usize, usize)>,
    taps: Offsets,
    /// Each output pixel's window corner in a padded sample, and the taps it reads inside
    /// the image (all of them when the padding is not skipped).
    pixels: Vec<(usize, TapRect)>,
}

/// The reduction of one batch of `bn` samples: its pixels grouped by the taps they read
/// inside the image (then by sample, then in order), their window corners in the batch's
/// padded samples, and for each tap the runs of that order whose pixels read it.
struct BatchOrder {
    /// The reduction step of pixel `q` of sample `b`, at `b · l + q`.
    step_of: Vec<usize>,
    red: Offsets,
    tap_runs: Vec<Vec<Range<usize>>>,
}

impl BatchOrder {
    fn new(p: &WgradPlan, bn: usize, taps: (usize, usize)) -> Self {
        let mut by_taps: Vec<usize> = (0..p.l).collect();
        by_taps.sort_by_key(|&q| p.pixels[q].1);
        let mut steps = Vec::with_capacity(bn * p.l);
        let mut classes = Vec::new();
        for class in by_taps.chunk_by(|&a, &b| p.pixels[a].1 == p.pixels[b].1) {
            let start = steps.len();
            for b in 0..bn {
                steps.extend(class.iter().map(|&q| (b, q)));
            }
            classes.push((p.pixels[class[0]].1, start..steps.len()));
        }
        let red = Offsets::new(steps.iter().map(|&(b, q)| b * p.pad_len + p.pixels[q].0).collect());
        let (rows, cols) = taps;
        let tap_runs = (0..rows * cols)
            .map(|t| {
                let (a, b) = ((t / cols) as u32, (t % cols) as u32);
                let mut runs: Vec<Range<usize>> = Vec::new();
                for (rect, range) in &classes {
                    if !rect.contains(a, b) {
                        continue;
                    }
                    match runs.last_mut() {
                        Some(last) if last.end == range.start => last.end = range.end,
                        _ => runs.push(range.clone()),
                    }
                }
                runs
            })
            .collect();
        let mut step_of = vec![0; steps.len()];
        for (step, &(b, q)) in steps.iter().enumerate() {
            step_of[b * p.l + q] = step;
        }
        BatchOrder { step_of, red, tap_runs }
    }
}

/// One batch of samples as the microkernel reads it: the inputs padded end to end, and the
/// output gradients transposed to `[pixel][NR]` per (group, channel block), zero past the
/// channels.
struct BatchBuffers<T> {
    pads: Vec<T>,
    dyt: Vec<T>,
    /// The order of the batch's pixels in `dyt` (and in the reduction).
    order: Option<BatchOrder>,
    /// Elements of `dyt` per block: `batch · l · NR`.
    dyt_block: usize,
}

impl<T: ConvElem> BatchBuffers<T> {
    fn new<const NR: usize>(p: &WgradPlan) -> Self {
        let dyt_block = p.batch * p.l * NR;
        BatchBuffers {
            pads: vec![T::zero(); p.batch * p.pad_len],
            dyt: vec![T::zero(); p.groups * p.ncb * dyt_block],
            order: None,
            dyt_block,
        }
    }

    /// Pads the `bn` inputs at the start of `xs` and transposes their output gradients (at
    /// the start of `dys`): by sample and by block across the pool when `parallel`.
    #[allow(clippy::too_many_arguments)]
    fn fill<const NR: usize>(&mut self, p: &WgradPlan, g: &ConvGeom, m: usize, xs: &[T], dys: &[T], bn: usize, parallel: bool) {
        let (img, l) = (g.image_len(), p.l);
        if self.order.as_ref().is_none_or(|o| o.step_of.len() != bn * l) {
            self.order = Some(BatchOrder::new(p, bn, (g.kh, g.kw)));
        }
        let step_of = &self.order.as_ref().expect("set above").step_of;
        let pad_one = |b: usize, dst: &mut [T]| pad_image(&xs[b * img..][..img], (g.channels, g.h, g.w), dst, (p.hp, p.wp), (g.ph, g.pw));
        // Sample by sample, each sample's `cn × l` block of the gradient transposed to the
        // block's `[step][NR]` (cpu/transpose.rs: 8 × 8 blocks in registers; element by
        // element, each step's line was written once per channel), the lanes past the
        // channels zeroed.
        let transpose_block = |blk: usize, out: &mut [T]| {
            let (grp, cb) = (blk / p.ncb, blk % p.ncb);
            let cn = NR.min(p.mg - cb * NR);
            for b in 0..bn {
                let rows = &dys[(b * m + grp * p.mg + cb * NR) * l..];
                transpose_scatter(rows, (cn, l), l, out, |q| step_of[b * l + q] * NR);
            }
            if cn < NR {
                out[..bn * l * NR].chunks_exact_mut(NR).for_each(|o| o[cn..].fill(T::zero()));
            }
        };
        let pads = &mut self.pads[..bn * p.pad_len];
        if parallel {
            pads.par_chunks_mut(p.pad_len).enumerate().for_each(|(b, dst)| pad_one(b, dst));
            self.dyt.par_chunks_mut(self.dyt_block).enumerate().for_each(|(blk, out)| transpose_block(blk, out));
        } else {
            pads.chunks_mut(p.pad_len).enumerate().for_each(|(b, dst)| pad_one(b, dst));
            self.dyt.chunks_mut(self.dyt_block).enumerate().for_each(|(blk, out)| transpose_block(blk, out));
        }
    }
}

/// [`accumulate_block`] on the ISA `isa`, with block `blk`'s transposed gradients.
fn accumulate_block_on<T: ConvElem, const MR: usize, const NR: usize>(
    isa: Isa,
    p: &WgradPlan,
    bufs: &BatchBuffers<T>,
    blk: usize,
    bn: usize,
    acc: &mut [T],
) {
    let vecs = &bufs.dyt[blk * bufs.dyt_block..][..bufs.dyt_block];
    let order = bufs.order.as_ref().expect("the batch was filled");
    run_on_isa!(isa, accumulate_block::<T, MR, NR>(
        p: &WgradPlan = p,
        order: &BatchOrder = order,
        pads: &[T] = &bufs.pads,
        vecs: &[T] = vecs,
        blk: usize = blk,
        bn: usize = bn,
        acc: &mut [T] = acc,
    ))
}

/// Adds one batch's contribution to one block of the gradient: `acc` is block `blk`'s
/// `[kg][NR]`; each tile of `MR` rows runs the microkernel over the batch's pixels in the
/// batch's order, starting from the block's running sums: over the runs of pixels that read
/// its tap inside the image when all its rows share one, over all pixels otherwise (the
/// others read zeros from the padding).
#[inline(always)]
fn accumulate_block<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    p: &WgradPlan,
    order: &BatchOrder,
    pads: &[T],
    vecs: &[T],
    blk: usize,
    bn: usize,
    acc: &mut [T],
) {
    let plane = p.hp * p.wp;
    let kg = p.taps.v.len();
    let gbase = (blk / p.ncb) * p.cg * plane;
    let len = bn * p.l;
    for k0 in (0..kg).step_by(MR) {
        let kn = MR.min(kg - k0);
        let rows: [usize; MR] = std::array::from_fn(|r| gbase + p.taps.v[(k0 + r).min(kg - 1)]);
        let mut t = [[T::zero(); NR]; MR];
        for (r, tr) in t.iter_mut().enumerate().take(kn) {
            tr.copy_from_slice(&acc[(k0 + r) * NR..][..NR]);
        }
        let tap = p.order[k0].1;
        if p.order[k0..k0 + kn].iter().all(|&(_, t)| t == tap) {
            for run in &order.tap_runs[tap] {
                tile::<T, MR, NR, FMA>(pads, &rows, &order.red, run.clone(), &vecs[run.start * NR..], &mut t);
            }
        } else {
            tile::<T, MR, NR, FMA>(pads, &rows, &order.red, 0..len, &vecs[..len * NR], &mut t);
        }
        for (r, tr) in t.iter().enumerate().take(kn) {
            acc[(k0 + r) * NR..][..NR].copy_from_slice(tr);
        }
    }
}
