//! The forward pass: rows are output pixels, the reduction runs over (input channel, tap),
//! the vectors are the weights `[k][co]` (see the parent module).

use super::*;

// ---- forward ----------------------------------------------------------------------------

/// What every task of a forward pass shares.
struct FwdPlan<T> {
    /// Padded input plane: `hp × wp`, with the image at (ph, pw); a padded sample.
    hp: usize,
    wp: usize,
    pad_len: usize,
    /// Groups, input channels and output channels per group, channel blocks per group.
    groups: usize,
    cg: usize,
    mg: usize,
    ncb: usize,
    /// Reduction offsets of (ci, i, j) relative to a pixel's window corner, in one group.
    offs: Offsets,
    /// For the output pixels of a full task's samples in order: the window corner in the
    /// task's padded samples (laid end to end), and the pixel's place in the task's output.
    rows: Vec<usize>,
    outs: Vec<usize>,
    /// Weights packed per (group, channel block) as `[k][NR]`, zero past the channels.
    wpk: Vec<T>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn forward<T: ConvElem, const MR: usize, const NR: usize>(
    isa: Isa,
    x: &[T],
    n: usize,
    w: &[T],
    m: usize,
    groups: usize,
    g: &ConvGeom,
    bias: Option<&[T]>,
) -> Vec<T> {
    let l = g.col_len();
    if l == 0 || m == 0 {
        return vec![T::zero(); n * m * l];
    }
    let (cg, mg) = (g.channels / groups, m / groups);
    let kg = cg * g.kh * g.kw;
    let (hp, wp) = padded_dims(g);
    let pad_len = g.channels * hp * wp;
    let (offs, pix) = window_offsets(g, cg, hp, wp);
    let per_task = samples_per_task(l, n);
    let (rows, outs) = repeat_per_sample(&pix, &(0..l).collect::<Vec<_>>(), per_task, pad_len, m * l);
    let ncb = mg.div_ceil(NR);
    let mut wpk = vec![T::zero(); groups * ncb * kg * NR];
    for grp in 0..groups {
        for cb in 0..ncb {
            let blk = &mut wpk[(grp * ncb + cb) * kg * NR..][..kg * NR];
            for c in 0..NR.min(mg - cb * NR) {
                let co = grp * mg + cb * NR + c;
                for (k, &v) in w[co * kg..(co + 1) * kg].iter().enumerate() {
                    blk[k * NR + c] = v;
                }
            }
        }
    }
    let plan = FwdPlan { hp, wp, pad_len, groups, cg, mg, ncb, offs, rows, outs, wpk };
    let img = g.image_len();
    collect_samples(n, m * l, per_task, m * kg * l, pad_len, |s0, y, pad| {
        let xs = &x[s0 * img..];
        run_on_isa!(isa, forward_task::<T, MR, NR>(
            p: &FwdPlan<T> = &plan,
            g: &ConvGeom = g,
            xs: &[T] = xs,
            bias: Option<&[T]> = bias,
            y: &mut [MaybeUninit<T>] = y,
            pad: &mut [T] = pad,
        ))
    })
}

/// One task of the forward pass: the samples whose outputs make up `y` (`m × l` each), the
/// first of them at the start of `xs`. Writes every element of `y`: each group, each channel
/// block's `min(NR, mg − cb·NR)` channels, every output pixel of every sample (the rows).
#[inline(always)]
fn forward_task<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    p: &FwdPlan<T>,
    g: &ConvGeom,
    xs: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    let (plane, img, kg) = (p.hp * p.wp, g.image_len(), p.offs.v.len());
    let per_sample = p.groups * p.mg * g.col_len();
    let samples = y.len() / per_sample;
    for b in 0..samples {
        let dst = &mut pad[b * p.pad_len..][..p.pad_len];
        pad_image(&xs[b * img..][..img], (g.channels, g.h, g.w), dst, (p.hp, p.wp), (g.ph, g.pw));
    }
    let rows = samples * g.col_len();
    let (task_rows, outs) = (&p.rows[..rows], &p.outs[..rows]);
    for grp in 0..p.groups {
        for cb in 0..p.ncb {
            let co0 = grp * p.mg + cb * NR;
            let cn = NR.min(p.mg - cb * NR);
            let wv = &p.wpk[(grp * p.ncb + cb) * kg * NR..][..kg * NR];
            let mut init = [T::zero(); NR];
            if let Some(b) = bias {
                init[..cn].copy_from_slice(&b[co0..co0 + cn]);
            }
            let gbase = grp * p.cg * plane;
            tiles_to_output::<T, MR, NR, FMA>(pad, gbase, task_rows, outs, &p.offs, wv, &init, (co0, cn, g.col_len()), y);
        }
    }
}
