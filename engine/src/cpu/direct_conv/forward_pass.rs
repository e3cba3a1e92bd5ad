//! The forward pass: rows are output pixels, the reduction runs over (input channel, tap),
//! the vectors are the weights `[k][co]` (see the parent module).

use super::*;

// ---- forward ----------------------------------------------------------------------------

/// What every sample of a forward pass shares.
struct FwdPlan<T> {
    /// Padded input plane: `hp × wp`, with the image at (ph, pw).
    hp: usize,
    wp: usize,
    /// Groups, input channels and output channels per group, channel blocks per group.
    groups: usize,
    cg: usize,
    mg: usize,
    ncb: usize,
    /// Reduction offsets of (ci, i, j) relative to a pixel's window corner, in one group.
    offs: Offsets,
    /// Window corner of each output pixel in the padded image.
    pix: Vec<usize>,
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
    let (offs, pix) = window_offsets(g, cg, hp, wp);
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
    let plan = FwdPlan { hp, wp, groups, cg, mg, ncb, offs, pix, wpk };
    let img = g.image_len();
    collect_samples(n, m * l, m * kg * l, g.channels * hp * wp, |s, y, pad| {
        let xs = &x[s * img..(s + 1) * img];
        run_on_isa!(isa, forward_sample::<T, MR, NR>(
            p: &FwdPlan<T> = &plan,
            g: &ConvGeom = g,
            xs: &[T] = xs,
            bias: Option<&[T]> = bias,
            y: &mut [MaybeUninit<T>] = y,
            pad: &mut [T] = pad,
        ))
    })
}

/// One sample of the forward pass. Writes every element of `y` (`m × l`): each group, each
/// channel block's `min(NR, mg − cb·NR)` channels, each pixel tile's `min(MR, l − p0)`
/// pixels.
#[inline(always)]
fn forward_sample<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    p: &FwdPlan<T>,
    g: &ConvGeom,
    xs: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    let (plane, l, kg) = (p.hp * p.wp, p.pix.len(), p.offs.v.len());
    pad_image(xs, (g.channels, g.h, g.w), pad, (p.hp, p.wp), (g.ph, g.pw));
    for grp in 0..p.groups {
        let gbase = grp * p.cg * plane;
        for cb in 0..p.ncb {
            let co0 = grp * p.mg + cb * NR;
            let cn = NR.min(p.mg - cb * NR);
            let wv = &p.wpk[(grp * p.ncb + cb) * kg * NR..][..kg * NR];
            let mut init = [T::zero(); NR];
            if let Some(b) = bias {
                init[..cn].copy_from_slice(&b[co0..co0 + cn]);
            }
            for p0 in (0..l).step_by(MR) {
                let rows: [usize; MR] = std::array::from_fn(|r| gbase + p.pix[(p0 + r).min(l - 1)]);
                let mut acc = [init; MR];
                tile::<T, MR, NR, FMA>(pad, &rows, &p.offs, 0..kg, wv, &mut acc);
                let pn = MR.min(l - p0);
                for c in 0..cn {
                    for (r, o) in y[(co0 + c) * l + p0..][..pn].iter_mut().enumerate() {
                        o.write(acc[r][c]);
                    }
                }
            }
        }
    }
}
