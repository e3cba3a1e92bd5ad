//! The input gradient, phase by phase of the stride: a plain correlation of the padded
//! output gradient with the taps of each phase (see the parent module).

use super::*;

// ---- input gradient ---------------------------------------------------------------------

/// One stride phase of the input gradient: the input pixels (y, x) with y ≡ ry (mod sh) and
/// x ≡ rx (mod sw), and the taps that reach them.
struct Phase<T> {
    /// The phase's pixels of a task's samples: window corners in the task's padded output
    /// gradients (laid end to end), places in the task's input gradient, taps inside the
    /// output gradient.
    rows: TasksRows,
    /// The phase's pixels per sample, and its taps per tap row.
    count: usize,
    cols: usize,
    /// (output channel, tap) offsets relative to the window corner, in one group, in the
    /// layout's order: the taps (a, b) of the phase's tap rows and columns.
    offs: Offsets,
    /// The phase's packed weights: per (group, channel block) a `[k][NR]` block.
    wpk: Vec<T>,
}

struct BwdPlan<T> {
    /// Padded output-gradient plane `hq × wq`, with the gradient at (ty, tx), and the padded
    /// samples' layout.
    hq: usize,
    wq: usize,
    ty: usize,
    tx: usize,
    layout: Layout,
    groups: usize,
    cg: usize,
    mg: usize,
    ncb: usize,
    phases: Vec<Phase<T>>,
    /// Whether some phase with pixels has no taps (a kernel smaller than the stride): its
    /// pixels are zero.
    zero_phases: bool,
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
    // Tasks take several samples when a phase has few pixels (see `samples_per_task`).
    let smallest_phase = ay.iter().flat_map(|(ny, _)| ax.iter().map(move |(nx, _)| ny * nx)).filter(|&c| c > 0).min().unwrap_or(1);
    let layout = Layout::for_rows(smallest_phase, m, plane);
    // Each phase's pixels in one sample: window corner, place in the input gradient, taps.
    let mut phase_pixels = Vec::with_capacity(g.sh * g.sw);
    for (ry, (ny, ti)) in ay.iter().enumerate() {
        for (rx, (nx, tj)) in ax.iter().enumerate() {
            let mut per_sample = Vec::with_capacity(ny * nx);
            for py in 0..*ny {
                for px in 0..*nx {
                    let inside = TapRect::new(
                        TapRect::axis(ti.len(), g.oh, |a| py as isize + ti[a].1),
                        TapRect::axis(tj.len(), g.ow, |b| px as isize + tj[b].1),
                    );
                    let rect = inside.read(layout.skips_padding(), (ti.len(), tj.len()));
                    per_sample.push((layout.at(0, py * wq + px), (ry + g.sh * py) * g.w + rx + g.sw * px, rect));
                }
            }
            phase_pixels.push(per_sample);
        }
    }
    let per_task =
        samples_per_task(smallest_phase, n, |per| phase_pixels.iter().map(|px| TaskRows::new(px, per, m * plane, img, MR).work).sum());
    let mut phases = Vec::with_capacity(g.sh * g.sw);
    // The phases in the order `phase_pixels` has them.
    let phase_axes = ay.iter().flat_map(|a| ax.iter().map(move |b| (a, b)));
    for (((ny, ti), (nx, tj)), per_sample) in phase_axes.zip(&phase_pixels) {
        // A phase without pixels gets no taps: its offsets may lie outside the padding.
        let used = ny * nx > 0;
        // (output channel, phase tap) in the layout's order; tap t is (ti[t / cols], tj[t % cols]).
        let cols = tj.len();
        let order = if used { reduction_order(layout.skips_padding(), mg, ti.len() * cols) } else { Vec::new() };
        let offs: Vec<usize> = order
            .iter()
            .map(|&(co, t)| {
                let (ey, ex) = (ti[t / cols].1, tj[t % cols].1);
                layout.at(co, (ey + ty as isize) as usize * wq + (ex + tx as isize) as usize)
            })
            .collect();
        // Lane c of block (grp, cb) is input channel cb·NR + c of group grp: element
        // (co, cb·NR + c, tap) of the group's weights.
        let in_group: Vec<usize> = order.iter().map(|&(co, t)| co * kg + ti[t / cols].0 * g.kw + tj[t % cols].0).collect();
        let wpk = pack_weight_blocks::<T, NR>(w, groups * ncb, &in_group, kk, |blk| {
            let (grp, cb) = (blk / ncb, blk % ncb);
            (grp * mg * kg + cb * NR * kk, NR.min(cg - cb * NR))
        });
        let rows = TasksRows::new(per_sample, n, per_task, m * plane, img, MR);
        phases.push(Phase { rows, count: ny * nx, cols, offs: Offsets::new(offs), wpk });
    }
    let zero_phases = phases.iter().any(|ph| ph.count > 0 && ph.offs.v.is_empty());
    let plan = BwdPlan { hq, wq, ty, tx, layout, groups, cg, mg, ncb, phases, zero_phases };
    collect_samples(n, img, per_task, m * kg * l, m * plane, |s0, dx, pad| {
        let dys = &dy[s0 * m * l..];
        run_on_isa!(isa, backward_input_task::<T, MR, NR>(
            p: &BwdPlan<T> = &plan,
            g: &ConvGeom = g,
            m: usize = m,
            dys: &[T] = dys,
            dx: &mut [MaybeUninit<T>] = dx,
            pad: &mut [T] = pad,
        ))
    })
}

/// One task of the input gradient: the samples whose gradients make up `dx` (`C × h × w`
/// each), the first of their output gradients at the start of `dys`. Writes every element
/// of `dx`: the phases partition the pixels of a plane (`y mod sh`, `x mod sw`), and each
/// group's channel blocks cover its `cg` channels; phases without taps are zero, written up
/// front by one fill of the whole task.
#[inline(always)]
fn backward_input_task<T: ConvElem, const MR: usize, const NR: usize, const FMA: bool>(
    p: &BwdPlan<T>,
    g: &ConvGeom,
    m: usize,
    dys: &[T],
    dx: &mut [MaybeUninit<T>],
    pad: &mut [T],
) {
    let plane = p.hq * p.wq;
    let (hw, l) = (g.h * g.w, g.col_len());
    let samples = dx.len() / g.image_len();
    for b in 0..samples {
        let dst = &mut pad[b * m * plane..][..m * plane];
        p.layout.pad(&dys[b * m * l..][..m * l], (m, g.oh, g.ow), dst, (p.hq, p.wq), (p.ty, p.tx));
    }
    if p.zero_phases {
        for o in dx.iter_mut() {
            o.write(T::zero());
        }
    }
    let zero = [T::zero(); NR];
    for ph in &p.phases {
        let kp = ph.offs.v.len();
        if ph.count == 0 || (kp == 0 && p.zero_phases) {
            continue;
        }
        let task = ph.rows.of(samples);
        for grp in 0..p.groups {
            let gbase = p.layout.at(grp * p.mg, 0);
            for cb in 0..p.ncb {
                let ci0 = grp * p.cg + cb * NR;
                let cn = NR.min(p.cg - cb * NR);
                let wv = &ph.wpk[(grp * p.ncb + cb) * kp * NR..][..kp * NR];
                tiles_to_output::<T, MR, NR, FMA>(pad, gbase, task, &ph.offs, (ph.cols, p.mg), wv, &zero, (ci0, cn, hw), dx);
            }
        }
    }
}
