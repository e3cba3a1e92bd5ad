//! The input gradient, phase by phase of the stride: a plain correlation of the padded
//! output gradient with the taps of each phase (see the parent module).

use super::*;

// ---- input gradient ---------------------------------------------------------------------

/// One stride phase of the input gradient: the input pixels (y, x) with y ≡ ry (mod sh) and
/// x ≡ rx (mod sw), and the taps that reach them.
struct Phase {
    /// Offset of each pixel's window corner in the padded output gradient, and the pixel's
    /// position in an input plane.
    rows: Vec<usize>,
    outs: Vec<usize>,
    /// (output channel, tap) offsets relative to the window corner, in one group.
    offs: Offsets,
    /// Where this phase's packed weights start in `BwdPlan::wpk`: per (group, channel
    /// block) a `[k][NR]` block.
    wstart: usize,
}

struct BwdPlan<T> {
    /// Padded output-gradient plane `hq × wq`, with the gradient at (ty, tx).
    hq: usize,
    wq: usize,
    ty: usize,
    tx: usize,
    groups: usize,
    cg: usize,
    mg: usize,
    ncb: usize,
    phases: Vec<Phase>,
    /// Whether some phase with pixels has no taps (a kernel smaller than the stride): its
    /// pixels are zero.
    zero_phases: bool,
    wpk: Vec<T>,
}

/// Along one axis of an input of size `n` (stride `s`, padding `p`, dilation `d`, kernel
/// `k`): for each phase `r < s`, the pixels of the phase and the taps `(i, e)` that reach
/// them, where input pixel `r + s·t` reads output position `t + e`.
fn axis_phases(n: usize, k: usize, s: usize, p: usize, d: usize) -> Vec<(usize, Vec<(usize, isize)>)> {
    (0..s)
        .map(|r| {
            let count = if r < n { (n - r).div_ceil(s) } else { 0 };
            let taps = (0..k)
                .filter_map(|i| {
                    let t = (r + p) as isize - (i * d) as isize;
                    (t.rem_euclid(s as isize) == 0).then(|| (i, t.div_euclid(s as isize)))
                })
                .collect();
            (count, taps)
        })
        .collect()
}

/// The zero padding (before, total) an axis of `out` output positions needs so that every
/// tap of every phase reads inside the padded gradient.
fn axis_padding(phases: &[(usize, Vec<(usize, isize)>)], out: usize) -> (usize, usize) {
    let mut before = 0isize;
    let mut end = out as isize;
    for (count, taps) in phases {
        if *count == 0 {
            continue;
        }
        for &(_, e) in taps {
            before = before.max(-e);
            end = end.max(*count as isize - 1 + e + 1);
        }
    }
    (before as usize, (before + end) as usize)
}

pub(super) fn backward_input<T: ConvElem, const MR: usize, const NR: usize>(
    isa: Isa,
    dy: &[T],
    n: usize,
    w: &[T],
    m: usize,
    groups: usize,
    g: &ConvGeom,
) -> Vec<T> {
    let img = g.image_len();
    let l = g.col_len();
    if img == 0 {
        return Vec::new();
    }
    let (cg, mg) = (g.channels / groups, m / groups);
    let (kk, kg) = (g.kh * g.kw, g.channels / groups * g.kh * g.kw);
    let ay = axis_phases(g.h, g.kh, g.sh, g.ph, g.dh);
    let ax = axis_phases(g.w, g.kw, g.sw, g.pw, g.dw);
    let (ty, hq) = axis_padding(&ay, g.oh);
    let (tx, wq) = axis_padding(&ax, g.ow);
    let plane = hq * wq;
    let ncb = cg.div_ceil(NR);
    let mut phases = Vec::with_capacity(g.sh * g.sw);
    let mut wpk = Vec::new();
    for (ry, (ny, ti)) in ay.iter().enumerate() {
        for (rx, (nx, tj)) in ax.iter().enumerate() {
            let mut rows = Vec::with_capacity(ny * nx);
            let mut outs = Vec::with_capacity(ny * nx);
            for py in 0..*ny {
                for px in 0..*nx {
                    rows.push(py * wq + px);
                    outs.push((ry + g.sh * py) * g.w + rx + g.sw * px);
                }
            }
            // A phase without pixels gets no taps: its offsets may lie outside the padding.
            let used = ny * nx > 0;
            let mut offs = Vec::with_capacity(mg * ti.len() * tj.len());
            for co in (0..mg).filter(|_| used) {
                for &(_, ey) in ti {
                    for &(_, ex) in tj {
                        offs.push(co * plane + (ey + ty as isize) as usize * wq + (ex + tx as isize) as usize);
                    }
                }
            }
            let kp = offs.len();
            let wstart = wpk.len();
            wpk.resize(wstart + groups * ncb * kp * NR, T::zero());
            for grp in 0..groups {
                for cb in 0..ncb {
                    let blk = &mut wpk[wstart + (grp * ncb + cb) * kp * NR..][..kp * NR];
                    let mut k = 0;
                    for co in (0..mg).filter(|_| used) {
                        let wrow = &w[(grp * mg + co) * kg..(grp * mg + co + 1) * kg];
                        for &(i, _) in ti {
                            for &(j, _) in tj {
                                for c in 0..NR.min(cg - cb * NR) {
                                    blk[k * NR + c] = wrow[(cb * NR + c) * kk + i * g.kw + j];
                                }
                                k += 1;
                            }
                        }
                    }
                }
            }
            phases.push(Phase { rows, outs, offs: Offsets::new(offs), wstart });
        }
    }
    let zero_phases = phases.iter().any(|ph| !ph.rows.is_empty() && ph.offs.v.is_empty());
    let plan = BwdPlan { hq, wq, ty, tx, groups, cg, mg, ncb, phases, zero_phases, wpk };
    collect_samples(n, img, m * kg * l, m * plane, |s, dx, pad| {
        let dys = &dy[s * m * l..(s + 1) * m * l];
        run_on_isa!(isa, backward_input_sample::<T, MR, NR>(
            p: &BwdPlan<T> = &plan,
            g: &ConvGeom = g,
            m: usize = m,
            dys: &[T] = dys,
            dx: &mut [MaybeUninit<T>] = dx,
            pad: &mut [T] = pad,
        ))
    })
}

/// One sample of the input gradient. Writes every element of `dx` (`C × h × w`): the
/// phases partition the pixels of a plane (`y mod sh`, `x mod sw`), and each group's
/// channel blocks cover its `cg` channels; phases without taps are zero, written up front
/// by one fill of the whole sample.
#[inline(always)]
fn backward_input_sample<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    p: &BwdPlan<T>,
    g: &ConvGeom,
    m: usize,
    dys: &[T],
    dx: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    let plane = p.hq * p.wq;
    let hw = g.h * g.w;
    pad_image(dys, (m, g.oh, g.ow), pad, (p.hq, p.wq), (p.ty, p.tx));
    if p.zero_phases {
        for o in dx.iter_mut() {
            o.write(T::zero());
        }
    }
    for ph in &p.phases {
        let (np, kp) = (ph.rows.len(), ph.offs.v.len());
        if np == 0 || (kp == 0 && p.zero_phases) {
            continue;
        }
        for grp in 0..p.groups {
            let gbase = grp * p.mg * plane;
            for cb in 0..p.ncb {
                let ci0 = grp * p.cg + cb * NR;
                let cn = NR.min(p.cg - cb * NR);
                let wv = &p.wpk[ph.wstart + (grp * p.ncb + cb) * kp * NR..][..kp * NR];
                for p0 in (0..np).step_by(MR) {
                    let rows: [usize; MR] = std::array::from_fn(|r| gbase + ph.rows[(p0 + r).min(np - 1)]);
                    let mut acc = [[T::zero(); NR]; MR];
                    tile::<T, MR, NR, FMA>(pad, &rows, &ph.offs, 0..kp, wv, &mut acc);
                    let pn = MR.min(np - p0);
                    let outs = &ph.outs[p0..p0 + pn];
                    if outs[pn - 1] - outs[0] == pn - 1 {
                        // The tile's pixels are adjacent in the image (always at stride 1).
                        for c in 0..cn {
                            for (r, o) in dx[(ci0 + c) * hw + outs[0]..][..pn].iter_mut().enumerate() {
                                o.write(acc[r][c]);
                            }
                        }
                    } else {
                        for c in 0..cn {
                            let out = &mut dx[(ci0 + c) * hw..][..hw];
                            for (r, &q) in outs.iter().enumerate() {
                                out[q].write(acc[r][c]);
                            }
                        }
                    }
                }
            }
        }
    }
}
