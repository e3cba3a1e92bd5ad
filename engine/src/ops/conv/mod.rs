//! The convolution family on NCHW tensors (f32/f64): `unfold`/`fold` (im2col/col2im),
//! `conv2d` and `conv_transpose2d` (direct, channel-vectorized kernels), the pooling ops,
//! and every fused backward kernel autograd calls.
//!
//! Window parameters are `(height, width)` pairs. Sizes follow PyTorch: along one axis of
//! size `n`, a window of kernel `k`, stride `s`, padding `p` and dilation `d` fits
//! `⌊(n + 2p − d(k−1) − 1) / s⌋ + 1` times.
//!
//! Backward kernels are deterministic: the weight gradient sums the batch in fixed chunks
//! (chosen from the shapes, never from the thread count), combined in chunk order.

mod conv2d;
mod conv_transpose2d;
mod gpu_gemm;
mod pool;
mod unfold;

use crate::kinds::ConvGeom;
use crate::layout::checked_numel;
use crate::{Error, Result};

pub use crate::kinds::Pair;

/// The number of windows along one axis, or why none fit.
pub(crate) fn out_dim(n: usize, k: usize, s: usize, p: usize, d: usize) -> std::result::Result<usize, String> {
    if k == 0 {
        return Err("the kernel size must be positive".into());
    }
    if s == 0 {
        return Err("the stride must be positive".into());
    }
    if d == 0 {
        return Err("the dilation must be positive".into());
    }
    let padded = p.checked_mul(2).and_then(|x| x.checked_add(n)).ok_or_else(|| format!("padding {p} overflows"))?;
    let eff = (k - 1).checked_mul(d).and_then(|x| x.checked_add(1)).ok_or_else(|| format!("kernel {k} with dilation {d} overflows"))?;
    if padded < eff {
        return Err(format!(
            "the dilated kernel spans {eff} (kernel {k}, dilation {d}), more than the padded input {padded} (size {n}, padding {p})"
        ));
    }
    Ok((padded - eff) / s + 1)
}

/// The sliding-window geometry over `channels × h × w` images, with `(oh, ow)` the number of
/// windows that fit. `Err` holds a sentence on the first axis that fails.
pub(crate) fn window_geom(channels: usize, (h, w): Pair, k: Pair, s: Pair, p: Pair, d: Pair) -> std::result::Result<ConvGeom, String> {
    let oh = out_dim(h, k.0, s.0, p.0, d.0).map_err(|e| format!("height: {e}"))?;
    let ow = out_dim(w, k.1, s.1, p.1, d.1).map_err(|e| format!("width: {e}"))?;
    let g = ConvGeom { channels, h, w, kh: k.0, kw: k.1, sh: s.0, sw: s.1, ph: p.0, pw: p.1, dh: d.0, dw: d.1, oh, ow };
    check_sizes(&g)?;
    Ok(g)
}

/// Rejects geometries whose column matrix or output would overflow `usize`.
pub(crate) fn check_sizes(g: &ConvGeom) -> std::result::Result<(), String> {
    let cols = [g.channels, g.kh, g.kw, g.oh, g.ow].iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    if cols.is_none() {
        return Err(format!(
            "the column matrix of {} channels, kernel {}x{} and output {}x{} overflows",
            g.channels, g.kh, g.kw, g.oh, g.ow
        ));
    }
    Ok(())
}

/// A validated conv2d problem: input `[n, geom.channels, h, w]`, weight
/// `[cout, channels / groups, kh, kw]`, output `[n, cout, oh, ow]`.
pub(crate) struct ConvProblem {
    pub n: usize,
    pub cout: usize,
    pub groups: usize,
    pub geom: ConvGeom,
}

/// Checks the input and weight shapes of a conv2d and computes its geometry.
pub(crate) fn conv_problem(
    op: &'static str,
    input: &[usize],
    weight: &[usize],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: usize,
) -> Result<ConvProblem> {
    let bad = |hint: String| Error::shapes_hint(op, input, weight, hint);
    if input.len() != 4 {
        return Err(bad(format!("the input must be [N, C_in, H, W], got rank {}", input.len())));
    }
    if weight.len() != 4 {
        return Err(bad(format!("the weight must be [C_out, C_in/groups, kh, kw], got rank {}", weight.len())));
    }
    if groups == 0 {
        return Err(bad("groups must be positive".into()));
    }
    checked_numel(op, input)?;
    checked_numel(op, weight)?;
    let (n, cin, cout) = (input[0], input[1], weight[0]);
    if cin % groups != 0 || cout % groups != 0 {
        return Err(bad(format!("groups {groups} must divide both the {cin} input channels and the {cout} output channels")));
    }
    if weight[1].checked_mul(groups) != Some(cin) {
        return Err(bad(format!("the input has {cin} channels but the weight expects {} per group × {groups} groups", weight[1])));
    }
    let geom = window_geom(cin, (input[2], input[3]), (weight[2], weight[3]), stride, padding, dilation).map_err(bad)?;
    checked_numel(op, &[n, cout, geom.oh, geom.ow])?;
    Ok(ConvProblem { n, cout, groups, geom })
}

/// A validated transposed-convolution problem, expressed as the conv2d it is the adjoint of:
/// `geom` maps the transposed conv's *output* `[n, cout, geom.h, geom.w]` (the conv2d's
/// input) to its *input* `[n, cin, geom.oh, geom.ow]` (the conv2d's output), and the weight
/// `[cin, cout / groups, kh, kw]` is that conv2d's weight.
pub(crate) struct ConvTProblem {
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    pub groups: usize,
    pub geom: ConvGeom,
}

/// Checks a transposed convolution. The output size is either computed from
/// `output_padding` (`Ok`) or given (`Err`), in which case the implied output padding is
/// checked instead.
#[allow(clippy::too_many_arguments)]
pub(crate) fn convt_problem(
    op: &'static str,
    input: &[usize],
    weight: &[usize],
    stride: Pair,
    padding: Pair,
    out: std::result::Result<Pair, Pair>,
    dilation: Pair,
    groups: usize,
) -> Result<ConvTProblem> {
    let bad = |hint: String| Error::shapes_hint(op, input, weight, hint);
    if input.len() != 4 {
        return Err(bad(format!("the input must be [N, C_in, H, W], got rank {}", input.len())));
    }
    if weight.len() != 4 {
        return Err(bad(format!("the weight must be [C_in, C_out/groups, kh, kw], got rank {}", weight.len())));
    }
    if groups == 0 {
        return Err(bad("groups must be positive".into()));
    }
    checked_numel(op, input)?;
    checked_numel(op, weight)?;
    let (n, cin) = (input[0], input[1]);
    if weight[0] != cin {
        return Err(bad(format!("the input has {cin} channels but the weight's first dim is {}", weight[0])));
    }
    if cin % groups != 0 {
        return Err(bad(format!("groups {groups} must divide the {cin} input channels")));
    }
    let cout = weight[1].checked_mul(groups).ok_or_else(|| bad("the output channel count overflows".into()))?;
    let mut hw = [0usize; 2];
    for ax in 0..2 {
        let name = ["height", "width"][ax];
        let pick = |p: Pair| if ax == 0 { p.0 } else { p.1 };
        let (h, k, s, p, d) = (input[2 + ax], weight[2 + ax], pick(stride), pick(padding), pick(dilation));
        if k == 0 || s == 0 || d == 0 {
            return Err(bad(format!("{name}: kernel size, stride and dilation must be positive (got {k}, {s}, {d})")));
        }
        if h == 0 {
            return Err(bad(format!("{name}: the input is empty")));
        }
        // (h − 1)·s + d·(k − 1) + 1 − 2p, before output padding.
        let base = (h - 1).checked_mul(s).and_then(|a| (k - 1).checked_mul(d).and_then(|b| a.checked_add(b)?.checked_add(1)));
        let base = base.ok_or_else(|| bad(format!("{name}: the output size overflows")))?;
        let two_p = p.checked_mul(2).ok_or_else(|| bad(format!("{name}: padding {p} overflows")))?;
        let size = match out {
            Ok(op_pad) => {
                let o = pick(op_pad);
                if o >= s && o >= d {
                    return Err(bad(format!("{name}: output padding {o} must be smaller than the stride {s} or the dilation {d}")));
                }
                match base.checked_add(o).and_then(|t| t.checked_sub(two_p)) {
                    Some(v) if v > 0 => v,
                    _ => {
                        return Err(bad(format!(
                            "{name}: the output would be empty (input {h}, kernel {k}, stride {s}, padding {p}, dilation {d})"
                        )))
                    }
                }
            }
            Err(given) => {
                let v = pick(given);
                // The implied output padding v + 2p − base must lie in [0, max(s, d)).
                let implied = v.checked_add(two_p).and_then(|t| t.checked_sub(base));
                match implied {
                    Some(o) if v > 0 && (o < s || o < d) => v,
                    _ => {
                        return Err(bad(format!(
                            "{name}: an output of size {v} does not match an input of size {h} (kernel {k}, stride {s}, padding {p}, dilation {d})"
                        )))
                    }
                }
            }
        };
        hw[ax] = size;
    }
    let geom = ConvGeom {
        channels: cout,
        h: hw[0],
        w: hw[1],
        kh: weight[2],
        kw: weight[3],
        sh: stride.0,
        sw: stride.1,
        ph: padding.0,
        pw: padding.1,
        dh: dilation.0,
        dw: dilation.1,
        oh: input[2],
        ow: input[3],
    };
    check_sizes(&geom).map_err(bad)?;
    checked_numel(op, &[n, cout, geom.h, geom.w])?;
    Ok(ConvTProblem { n, cin, cout, groups, geom })
}
