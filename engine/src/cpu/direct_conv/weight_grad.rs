//! The weight gradient: rows are taps, the reduction runs over the output pixels of a few
//! samples at a time, summed in fixed chunks (see the parent module).

use super::*;

// ---- weight gradient --------------------------------------------------------------------

pub(super) fn backward_weight<T: ConvElem, const MR: usize, const NR: usize>(
    isa: Isa,
    dy: &[T],
    x: &[T],
    n: usize,
    m: usize,
    groups: usize,
    g: &ConvGeom,
) -> Vec<T> {
    let (l, img) = (g.col_len(), g.image_len());
    let (cg, mg) = (g.channels / groups, m / groups);
    let kg = cg * g.kh * g.kw;
    let wlen = m * kg;
    if n == 0 || wlen == 0 || l == 0 {
        return vec![T::zero(); wlen];
    }
    let (hp, wp) = padded_dims(g);
    let (taps, pix) = window_offsets(g, cg, hp, wp);
    let pad_len = g.channels * hp * wp;
    let ncb = mg.div_ceil(NR);
    // Samples per microkernel call: enough pixels to amortize loading the accumulators,
    // few enough that the batch stays in cache.
    let per_sample = pad_len + ncb * groups * NR * l;
    let batch = WGRAD_MIN_PIXELS.div_ceil(l).min(WGRAD_MAX_BATCH_ELEMS / per_sample.max(1)).clamp(1, n);
    let red: Vec<usize> = (0..batch).flat_map(|b| pix.iter().map(move |&q| b * pad_len + q)).collect();
    let red = Offsets::new(red);
    let chunks = n.min(WGRAD_MAX_CHUNKS).min((WGRAD_MAX_PARTIAL / wlen).max(1));
    let per = n.div_ceil(chunks);
    let chunks = n.div_ceil(per);
    let plan = WgradPlan { groups, cg, mg, ncb, l, pad_len, hp, wp, batch, taps, red };
    let partial = |c: usize| -> Vec<T> {
        let mut acc = vec![T::zero(); wlen];
        let mut pads = vec![T::zero(); batch * pad_len];
        let mut dyt = vec![T::zero(); groups * ncb * batch * l * NR];
        let (s0, s1) = (c * per, ((c + 1) * per).min(n));
        for b0 in (s0..s1).step_by(batch) {
            let bn = batch.min(s1 - b0);
            let xs = &x[b0 * img..(b0 + bn) * img];
            let dys = &dy[b0 * m * l..(b0 + bn) * m * l];
            run_on_isa!(isa, backward_weight_batch::<T, MR, NR>(
                p: &WgradPlan = &plan,
                g: &ConvGeom = g,
                m: usize = m,
                bn: usize = bn,
                xs: &[T] = xs,
                dys: &[T] = dys,
                acc: &mut [T] = &mut acc,
                pads: &mut [T] = &mut pads,
                dyt: &mut [T] = &mut dyt,
            ));
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
    let mut sum = parts.next().unwrap_or_else(|| vec![T::zero(); wlen]);
    for p in parts {
        for (o, &v) in sum.iter_mut().zip(&p) {
            *o += v;
        }
    }
    // [kg, m] → [m, kg].
    let mut out = vec![T::zero(); wlen];
    for (k, row) in sum.chunks_exact(m).enumerate() {
        for (co, &v) in row.iter().enumerate() {
            out[co * kg + k] = v;
        }
    }
    out
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
    /// (ci, i, j) offsets in one group of a padded sample: the tile rows.
    taps: Offsets,
    /// Window corners of every output pixel of `batch` padded samples laid end to end.
    red: Offsets,
}

/// Adds the weight gradient of `bn` consecutive samples to `acc`, transposed (`[kg, m]`):
/// pads their
/// inputs end to end, transposes their output gradients to `[pixel][NR]` per channel block,
/// then runs the microkernel over every (tap tile, channel block), each accumulating in
/// sample-then-pixel order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_weight_batch<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    p: &WgradPlan,
    g: &ConvGeom,
    m: usize,
    bn: usize,
    xs: &[T],
    dys: &[T],
    acc: &mut [T],
    pads: &mut [T],
    dyt: &mut [T],
) {
    let (l, img, kg) = (p.l, g.image_len(), p.taps.v.len());
    let blk = p.batch * l * NR;
    for b in 0..bn {
        pad_image(
            &xs[b * img..(b + 1) * img],
            (g.channels, g.h, g.w),
            &mut pads[b * p.pad_len..(b + 1) * p.pad_len],
            (p.hp, p.wp),
            (g.ph, g.pw),
        );
        for grp in 0..p.groups {
            for cb in 0..p.ncb {
                let out = &mut dyt[(grp * p.ncb + cb) * blk + b * l * NR..][..l * NR];
                for c in 0..NR {
                    let co = cb * NR + c;
                    if co < p.mg {
                        let src = &dys[(b * m + grp * p.mg + co) * l..][..l];
                        for (q, &v) in src.iter().enumerate() {
                            out[q * NR + c] = v;
                        }
                    } else {
                        for q in 0..l {
                            out[q * NR + c] = T::zero();
                        }
                    }
                }
            }
        }
    }
    let plane = p.hp * p.wp;
    let len = bn * l;
    for grp in 0..p.groups {
        let gbase = grp * p.cg * plane;
        for cb in 0..p.ncb {
            let co0 = grp * p.mg + cb * NR;
            let cn = NR.min(p.mg - cb * NR);
            let vecs = &dyt[(grp * p.ncb + cb) * blk..][..len * NR];
            for k0 in (0..kg).step_by(MR) {
                let kn = MR.min(kg - k0);
                let rows: [usize; MR] = std::array::from_fn(|r| gbase + p.taps.v[(k0 + r).min(kg - 1)]);
                let mut t = [[T::zero(); NR]; MR];
                for (r, tr) in t.iter_mut().enumerate().take(kn) {
                    tr[..cn].copy_from_slice(&acc[(k0 + r) * m + co0..][..cn]);
                }
                tile::<T, MR, NR, FMA>(pads, &rows, &p.red, 0..len, vecs, &mut t);
                for (r, tr) in t.iter().enumerate().take(kn) {
                    acc[(k0 + r) * m + co0..][..cn].copy_from_slice(&tr[..cn]);
                }
            }
        }
    }
}
