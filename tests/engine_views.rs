//! Views against the naive reference: reshape (view when the layout allows, copy when it
//! must), permute/transpose, narrow/slice/select, expand, flip, unsqueeze/squeeze, flatten and
//! `contiguous`, on operands that are themselves transposed, sliced, flipped or expanded.

mod common;

use common::*;
use proptest::prelude::*;
use tessera::engine::{DType, Tensor};

/// A random shape holding exactly `n` elements (with a zero dim when `n == 0`).
fn shape_with_numel(n: usize, rng: &mut Rng64) -> Vec<usize> {
    let mut dims = Vec::new();
    if n == 0 {
        dims = (0..rng.below(3)).map(|_| rng.below(4)).collect();
        dims.insert(rng.below(dims.len() + 1), 0);
        return dims;
    }
    let mut rem = n;
    while rem > 1 && dims.len() < 3 {
        let divisors: Vec<usize> = (2..=rem).filter(|d| rem.is_multiple_of(*d)).collect();
        let d = divisors[rng.below(divisors.len())];
        dims.push(d);
        rem /= d;
    }
    if rem > 1 {
        dims.push(rem);
    }
    for _ in 0..rng.below(3) {
        dims.insert(rng.below(dims.len() + 1), 1);
    }
    dims
}

/// Storage position of each logical element of `t`, in row-major order.
fn positions(t: &Tensor) -> Vec<isize> {
    let l = t.layout();
    indices(&l.shape).iter().map(|i| l.offset as isize + i.iter().zip(&l.strides).map(|(&i, &s)| i as isize * s).sum::<isize>()).collect()
}

/// Whether some strides for `shape` reach the same storage positions, in the same order, as
/// `t`'s layout: i.e. whether a reshape of `t` to `shape` can be a view.
fn viewable(t: &Tensor, shape: &[usize]) -> bool {
    let pos = positions(t);
    if pos.is_empty() {
        return true;
    }
    let unit = |d: usize| {
        let mut idx = vec![0; shape.len()];
        idx[d] = 1;
        idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
    };
    let strides: Vec<isize> = (0..shape.len()).map(|d| if shape[d] > 1 { pos[unit(d)] - pos[0] } else { 0 }).collect();
    indices(shape).iter().enumerate().all(|(k, i)| pos[k] == pos[0] + i.iter().zip(&strides).map(|(&i, &s)| i as isize * s).sum::<isize>())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn operands_hold_their_values(shape in shape(4, 4), seed: u64) {
        for dtype in FLOATS {
            let o = operand(&shape, dtype, seed);
            assert_exact(&format!("{o:?}"), &o.t, &o.a);
            let c = o.t.contiguous().unwrap();
            assert!(c.is_contiguous());
            assert_exact("contiguous", &c, &o.a);
        }
    }

    #[test]
    fn reshape_keeps_row_major_order_and_views_when_it_can(shape in shape(4, 4), seed: u64) {
        let o = operand(&shape, DType::F64, seed);
        let mut rng = Rng64::new(seed ^ 1);
        let target = shape_with_numel(numel(&shape), &mut rng);
        let r = if numel(&target) > 0 && !target.is_empty() && rng.coin(0.5) {
            let mut t: Vec<isize> = target.iter().map(|&d| d as isize).collect();
            let i = rng.below(t.len());
            t[i] = -1;
            o.t.reshape(&t).unwrap()
        } else {
            o.t.reshape_to(&target).unwrap()
        };
        assert_exact(&format!("reshape {o:?} to {target:?}"), &r, &o.a.reshape(&target));
        if o.t.is_contiguous() {
            assert!(r.shares_storage(&o.t), "a contiguous tensor reshapes as a view");
        }
        if numel(&shape) > 0 {
            assert_eq!(r.shares_storage(&o.t), viewable(&o.t, &target), "reshape of {o:?} to {target:?}: view iff the layout allows");
        }
    }

    #[test]
    fn permute_and_transpose_are_views(shape in shape(4, 4), seed: u64) {
        prop_assume!(!shape.is_empty());
        let o = operand(&shape, DType::F64, seed);
        let mut rng = Rng64::new(seed);
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        rng.shuffle(&mut perm);
        let p = o.t.permute(&perm).unwrap();
        assert!(p.shares_storage(&o.t));
        assert_exact("permute", &p, &o.a.permute(&perm));

        let (a, b) = (rng.below(shape.len()), rng.below(shape.len()));
        let mut swap: Vec<usize> = (0..shape.len()).collect();
        swap.swap(a, b);
        let t = o.t.transpose(a as isize - shape.len() as isize, b as isize).unwrap();
        assert!(t.shares_storage(&o.t));
        assert_exact("transpose", &t, &o.a.permute(&swap));
        if shape.len() >= 2 {
            let mut last: Vec<usize> = (0..shape.len()).collect();
            last.swap(shape.len() - 2, shape.len() - 1);
            assert_exact("t", &o.t.t().unwrap(), &o.a.permute(&last));
        }
    }

    #[test]
    fn narrow_slice_select_are_views(shape in shape(4, 5), seed: u64) {
        prop_assume!(!shape.is_empty());
        let o = operand(&shape, DType::F64, seed);
        let mut rng = Rng64::new(seed);
        let axis = rng.below(shape.len());
        let n = shape[axis];
        let start = rng.below(n + 1);
        let len = rng.below(n - start + 1);
        let v = o.t.narrow(axis as isize, start, len).unwrap();
        assert!(v.shares_storage(&o.t));
        assert_exact("narrow", &v, &o.a.slice(axis, start, start + len, 1));

        let (start, end, step) = (rng.below(n + 2), rng.below(n + 3), 1 + rng.below(3));
        let s = o.t.slice(axis as isize - shape.len() as isize, start, end, step).unwrap();
        assert!(s.shares_storage(&o.t));
        assert_exact(&format!("slice {start}..{end} step {step}"), &s, &o.a.slice(axis, start.min(n), end, step));

        if n > 0 {
            let i = rng.below(n);
            let s = o.t.select(axis as isize, i).unwrap();
            assert!(s.shares_storage(&o.t));
            assert_exact("select", &s, &o.a.select(axis, i));
        }
    }

    #[test]
    fn expand_broadcasts_with_zero_strides(shape in shape(3, 3), seed: u64) {
        let o = operand(&shape, DType::F64, seed);
        let mut rng = Rng64::new(seed);
        let mut target: Vec<usize> = (0..rng.below(3)).map(|_| rng.below(4)).collect();
        target.extend(shape.iter().map(|&n| if n == 1 { rng.below(4) } else { n }));
        let e = o.t.expand(&target).unwrap();
        assert!(e.shares_storage(&o.t));
        assert_exact("expand", &e, &o.a.expand(&target));
        let lead = target.len() - shape.len();
        for d in 0..target.len() {
            if d < lead || (shape[d - lead] == 1 && target[d] != 1) {
                assert_eq!(e.strides()[d], 0, "broadcast dim {d} of {target:?} has stride 0");
            }
        }
        assert_exact("broadcast_to", &o.t.broadcast_to(&target).unwrap(), &o.a.expand(&target));
    }

    #[test]
    fn flip_reverses_and_twice_is_identity(shape in shape(4, 4), seed: u64) {
        let o = operand(&shape, DType::F64, seed);
        let mut rng = Rng64::new(seed);
        let axes = axis_subset(shape.len(), &mut rng);
        let signed: Vec<isize> = axes.iter().map(|&a| if rng.coin(0.5) { a as isize - shape.len() as isize } else { a as isize }).collect();
        let f = o.t.flip(&signed).unwrap();
        assert!(f.shares_storage(&o.t));
        assert_exact("flip", &f, &o.a.flip(&axes));
        assert_exact("flip twice", &f.flip(&signed).unwrap(), &o.a);
    }

    #[test]
    fn unsqueeze_squeeze_flatten(shape in shape(4, 4), seed: u64) {
        let o = operand(&shape, DType::F64, seed);
        let mut rng = Rng64::new(seed);
        let rank = shape.len();
        let at = rng.below(rank + 1);
        let signed = if rng.coin(0.5) { at as isize - rank as isize - 1 } else { at as isize };
        let u = o.t.unsqueeze(signed).unwrap();
        let mut ushape = shape.clone();
        ushape.insert(at, 1);
        assert!(u.shares_storage(&o.t));
        assert_exact("unsqueeze", &u, &o.a.reshape(&ushape));
        let s = u.squeeze_axis(at as isize).unwrap();
        assert!(s.shares_storage(&o.t));
        assert_exact("squeeze", &s, &o.a);

        if rank > 0 {
            let (a, b) = (rng.below(rank), rng.below(rank));
            let (start, end) = (a.min(b), a.max(b));
            let mut fshape = shape[..start].to_vec();
            fshape.push(shape[start..=end].iter().product());
            fshape.extend(&shape[end + 1..]);
            assert_exact("flatten", &o.t.flatten(start as isize, end as isize - rank as isize).unwrap(), &o.a.reshape(&fshape));
        } else {
            assert_exact("flatten 0-d", &o.t.flatten(0, 0).unwrap(), &o.a.reshape(&[1]));
        }
    }
}

#[test]
fn reshape_views_or_copies_as_the_layout_requires() {
    let x = Tensor::arange(0.0, 24.0, 1.0, DType::F32).unwrap();
    // Contiguous: always a view.
    let r = x.reshape(&[2, 3, 4]).unwrap();
    assert!(r.shares_storage(&x));
    // A transposed matrix cannot be flattened without a copy ...
    let t = r.reshape(&[6, 4]).unwrap().t().unwrap();
    let flat = t.reshape(&[24]).unwrap();
    assert!(!flat.shares_storage(&x));
    assert_eq!(flat.to_vec::<f32>().unwrap()[..6], [0.0, 4.0, 8.0, 12.0, 16.0, 20.0]);
    // ... but splitting one of its dims is a view.
    let split = t.reshape(&[2, 2, 6]).unwrap();
    assert!(split.shares_storage(&x));
    assert_eq!(split.to_vec::<f32>().unwrap(), t.contiguous().unwrap().to_vec::<f32>().unwrap());
    // Narrowed columns: rows stay separate chunks; splitting rows is a view, merging is not.
    let cols = x.reshape(&[4, 6]).unwrap().narrow(1, 1, 3).unwrap();
    assert!(cols.reshape(&[2, 2, 3]).unwrap().shares_storage(&x));
    assert!(!cols.reshape(&[12]).unwrap().shares_storage(&x));
    // Expanded (stride 0) dims can be split without a copy.
    let e = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3, 1]).unwrap().expand(&[3, 4]).unwrap();
    let s = e.reshape(&[3, 2, 2]).unwrap();
    assert!(s.shares_storage(&e));
    assert_eq!(s.to_vec::<f64>().unwrap(), [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0]);
    // A permutation that undoes itself is contiguous again and views.
    let back = r.permute(&[2, 0, 1]).unwrap().permute(&[1, 2, 0]).unwrap();
    assert!(back.is_contiguous() && back.reshape(&[24]).unwrap().shares_storage(&x));
}

#[test]
fn contiguous_copies_only_when_it_must() {
    let x = Tensor::arange(0.0, 12.0, 1.0, DType::F64).unwrap().reshape(&[3, 4]).unwrap();
    assert!(x.contiguous().unwrap().shares_storage(&x));
    let t = x.t().unwrap();
    assert!(!t.is_contiguous());
    let c = t.contiguous().unwrap();
    assert!(!c.shares_storage(&x) && c.is_contiguous());
    assert_eq!(c.to_vec::<f64>().unwrap(), [0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]);
    // Contiguous again after transposing back: no copy.
    let tt = t.t().unwrap();
    assert!(tt.contiguous().unwrap().shares_storage(&x));
    // Size-1 dims with odd strides are still contiguous.
    let u = x.unsqueeze(1).unwrap();
    assert!(u.is_contiguous() && u.contiguous().unwrap().shares_storage(&x));
    // A row block is contiguous but does not start the storage: `contiguous()` compacts it.
    let rows = x.narrow(0, 1, 2).unwrap();
    assert!(rows.is_contiguous());
    let rc = rows.contiguous().unwrap();
    assert_eq!(rc.to_vec::<f64>().unwrap(), [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    // Expanded and flipped views must be materialized.
    let e = Tensor::ones(&[1, 4], DType::F32).unwrap().expand(&[3, 4]).unwrap();
    assert!(!e.contiguous().unwrap().shares_storage(&e));
    let f = x.flip(&[1]).unwrap();
    assert_eq!(f.contiguous().unwrap().to_vec::<f64>().unwrap()[..4], [3.0, 2.0, 1.0, 0.0]);
}

#[test]
fn views_of_empty_tensors() {
    let x = Tensor::zeros(&[3, 0, 2], DType::F32).unwrap();
    for v in [
        x.narrow(0, 2, 1).unwrap(),
        x.select(0, 2).unwrap().unsqueeze(0).unwrap(),
        x.flip(&[0, 2]).unwrap(),
        x.slice(0, 1, 3, 1).unwrap(),
        x.permute(&[2, 0, 1]).unwrap(),
        x.expand(&[2, 3, 0, 2]).unwrap().select(0, 1).unwrap(),
    ] {
        assert_eq!(v.numel(), 0);
        assert!(v.to_vec::<f32>().unwrap().is_empty(), "{v:?}");
        assert!(v.contiguous().unwrap().to_vec::<f32>().unwrap().is_empty());
        assert_eq!(v.reshape(&[-1, 2]).unwrap().shape(), &[0, 2]);
        assert_eq!(v.sum_all().unwrap().item().unwrap(), 0.0);
        assert_eq!(v.exp().unwrap().numel(), 0);
        assert_eq!(v.add(&v).unwrap().numel(), 0);
    }
    let s = Tensor::scalar(5.0f64);
    assert_eq!(s.reshape(&[1, 1, 1]).unwrap().shape(), &[1, 1, 1]);
    assert_eq!(s.unsqueeze(0).unwrap().shape(), &[1]);
    assert_eq!(s.expand(&[2, 3]).unwrap().to_vec::<f64>().unwrap(), [5.0; 6]);
}

/// The backward of narrow/slice/select on a GPU: zeros with the gradient written into the view.
#[test]
fn gpu_scatter_into_zeros_matches_cpu() {
    for dtype in [DType::F32, DType::F64, DType::I64, DType::U8] {
        let inputs = [operand(&[5, 3], dtype, 1).t, operand(&[6], dtype, 2).t, operand(&[2, 0], dtype, 3).t];
        gpu::same_on_gpu(&format!("scatter_into_zeros {dtype:?}"), &inputs, |t| {
            Ok(vec![
                t[0].scatter_into_zeros(&[5, 6], |z| z.narrow(1, 2, 3))?,
                t[0].scatter_into_zeros(&[5, 9], |z| z.slice(1, 1, 9, 3))?,
                t[1].scatter_into_zeros(&[4, 6], |z| z.select(0, 2))?,
                t[2].scatter_into_zeros(&[2, 4], |z| z.narrow(1, 4, 0))?,
            ])
        });
    }
}
