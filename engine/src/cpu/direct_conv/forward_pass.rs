//! The forward pass: rows are output pixels, the reduction runs over (input channel, tap),
//! the vectors are the weights `[k][co]` (see the parent module).

use super::*;

// ---- forward ----------------------------------------------------------------------------

/// What every task of a forward pass shares.
struct FwdPlan<T> {
    /// Padded input plane: `hp × wp`, with the image at (ph, pw); a padded sample and its
    /// layout.
    hp: usize,
    wp: usize,
    pad_len: usize,
    layout: Layout,
    /// Groups, input channels and output channels per group, channel blocks per group.
    groups: usize,
    cg: usize,
    mg: usize,
    ncb: usize,
    /// Reduction offsets of (ci, tap) in the layout's order, relative to a pixel's window
    /// corner in a padded sample, in one group.
    offs: Offsets,
    /// The output pixels of a task's samples: window corners in the task's padded samples
    /// (laid end to end), places in the task's output, taps inside the image.
    rows: TasksRows,
    /// Weights packed per (group, channel block) as `[k][NR]`, `k` in the order of `offs`,
    /// zero past the channels.
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
    let layout = Layout::for_rows(l, g.channels, hp * wp);
    let kk = g.kh * g.kw;
    let order = reduction_order(layout.skips_padding(), cg, kk);
    let offs: Vec<usize> = order.iter().map(|&(ci, t)| layout.at(ci, (t / g.kw) * g.dh * wp + (t % g.kw) * g.dw)).collect();
    let per_sample: Vec<_> = window_corners(g, wp)
        .into_iter()
        .enumerate()
        .map(|(q, corner)| {
            let rect = TapRect::inside_output(g, q / g.ow, q % g.ow).read(layout.skips_padding(), (g.kh, g.kw));
            (layout.at(0, corner), q, rect)
        })
        .collect();
    let per_task = samples_per_task(l, n, |per| TaskRows::new(&per_sample, per, pad_len, m * l, MR).work);
    let rows = TasksRows::new(&per_sample, n, per_task, pad_len, m * l, MR);
    let ncb = mg.div_ceil(NR);
    // Lane c of block (grp, cb) is output channel co = grp·mg + cb·NR + c: row co of `w`.
    let in_row: Vec<usize> = order.iter().map(|&(ci, t)| ci * kk + t).collect();
    let wpk = pack_weight_blocks::<T, NR>(w, groups * ncb, &in_row, kg, |blk| {
        let (grp, cb) = (blk / ncb, blk % ncb);
        ((grp * mg + cb * NR) * kg, NR.min(mg - cb * NR))
    });
    let plan = FwdPlan { hp, wp, pad_len, layout, groups, cg, mg, ncb, offs: Offsets::new(offs), rows, wpk };
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
/// block's `min(NR, mg − cb·NR)` channels, every output pixel of every sample (the rows; a
/// pixel whose window lies wholly in the padding gets the bias).
#[inline(always)]
fn forward_task<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    p: &FwdPlan<T>,
    g: &ConvGeom,
    xs: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    let (img, kg) = (g.image_len(), p.offs.v.len());
    let per_sample = p.groups * p.mg * g.col_len();
    let samples = y.len() / per_sample;
    for b in 0..samples {
        let dst = &mut pad[b * p.pad_len..][..p.pad_len];
        p.layout.pad(&xs[b * img..][..img], (g.channels, g.h, g.w), dst, (p.hp, p.wp), (g.ph, g.pw));
    }
    let task = p.rows.of(samples);
    for grp in 0..p.groups {
        for cb in 0..p.ncb {
            let co0 = grp * p.mg + cb * NR;
            let cn = NR.min(p.mg - cb * NR);
            let wv = &p.wpk[(grp * p.ncb + cb) * kg * NR..][..kg * NR];
            let mut init = [T::zero(); NR];
            if let Some(b) = bias {
                init[..cn].copy_from_slice(&b[co0..co0 + cn]);
            }
            let gbase = p.layout.at(grp * p.cg, 0);
            let grid = (g.kw, p.cg);
            tiles_to_output::<T, MR, NR, FMA>(pad, gbase, task, &p.offs, grid, wv, &init, (co0, cn, g.col_len()), y);
        }
    }
}
