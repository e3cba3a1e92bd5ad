//! Memory held by the graph during the forward pass: a value is kept only while someone
//! holds its `Var` or a backward rule saved it. (Its own binary: `live_cpu_bytes` counts the
//! whole process, and other tests' allocations would blur the figures.)

use std::sync::{Mutex, MutexGuard};
use tessera::autograd::Var;
use tessera::engine::{live_cpu_bytes, DType, Tensor};

/// The tests measure the whole process's live bytes: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Holds the process's live bytes for one test (a failed test does not block the others).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Elements of the tensors the tests hold: 32 MiB of f32, plain to see in the live bytes.
const N: usize = 8 << 20;

/// A parameter of [`N`] elements, all `value`.
fn filled(value: f64) -> Var {
    Var::param(Tensor::full(&[N], value, DType::F32).unwrap()).unwrap()
}

#[test]
fn an_intermediate_nobody_holds_is_freed_in_the_forward_pass() {
    let _one = one_at_a_time();
    // `add` saves nothing for its backward: once the caller drops `y`, nothing needs its
    // value (32 MiB), so it is freed then, not when backward reaches it. A value the caller
    // still holds stays readable, and the gradients are unchanged.
    let n = 8 << 20;
    let x = Var::param(Tensor::ones(&[n], DType::F32).unwrap()).unwrap();
    let y = x.mul_scalar(2.0).unwrap();
    let kept = x.mul_scalar(3.0).unwrap();
    let z = y.add(&x).unwrap().add(&kept).unwrap();
    let with_y = live_cpu_bytes() as i64;
    drop(y);
    let freed = with_y - live_cpu_bytes() as i64;
    assert!(freed > 24 << 20, "dropping the intermediate freed {freed} bytes, not its 32 MiB");
    z.sum_all().unwrap().backward().unwrap();
    let grad = x.grad().unwrap().to_vec::<f32>().unwrap();
    assert!(grad.iter().all(|&g| g == 6.0), "d(2x + x + 3x)/dx = 6");
    assert_eq!(kept.value().narrow(0, 0, 2).unwrap().to_vec::<f32>().unwrap(), vec![3.0, 3.0]);
    assert_eq!(kept.shape(), vec![n]);
}

#[test]
fn a_sum_or_mean_keeps_only_its_input_shape() {
    // A loss's mean over a batch of pixels must not hold those pixels until backward.
    let _one = one_at_a_time();
    let a = filled(2.0);
    let before = live_cpu_bytes() as i64;
    let shifted = a.add_scalar(1.0).unwrap();
    let (total, mean) = (shifted.sum_all().unwrap(), shifted.mean_all().unwrap());
    drop(shifted);
    let held = live_cpu_bytes() as i64 - before;
    assert!(held < 1 << 20, "sum and mean of a dropped 32 MiB input hold {held} bytes");
    total.add(&mean).unwrap().backward().unwrap();
    let expected = 1.0 + 1.0 / N as f32;
    assert!(a.grad().unwrap().to_vec::<f32>().unwrap().iter().all(|&g| g == expected));
}

#[test]
fn a_product_keeps_its_operands_not_its_output() {
    // `a · b` needs `a` and `b` for its gradients, not `a · b`: once the caller drops the
    // product (32 MiB), nothing holds it (a layer-scale gain kept each block's branch output
    // twice before). A quotient's gradient does read its output (d(a/b)/db = −(a/b)/b), so
    // that one stays until backward.
    let _one = one_at_a_time();
    let (a, b) = (filled(2.0), filled(4.0));
    let before = live_cpu_bytes() as i64;
    let product = a.mul(&b).unwrap();
    let z = product.sum_all().unwrap();
    drop(product);
    let held = live_cpu_bytes() as i64 - before;
    assert!(held < 1 << 20, "the graph of sum(a·b) holds {held} bytes beyond a and b");
    let quotient = a.div(&b).unwrap();
    let zq = quotient.sum_all().unwrap();
    drop(quotient);
    let held_q = live_cpu_bytes() as i64 - before - held;
    assert!(held_q >= 32 << 20, "a quotient's output (32 MiB) is saved for its backward, held {held_q} bytes");
    z.add(&zq).unwrap().backward().unwrap();
    let (ga, gb) = (a.grad().unwrap().to_vec::<f32>().unwrap(), b.grad().unwrap().to_vec::<f32>().unwrap());
    assert!(ga.iter().all(|&g| g == 4.25), "d(a·b + a/b)/da = b + 1/b");
    assert!(gb.iter().all(|&g| g == 1.875), "d(a·b + a/b)/db = a − a/b²");
}

#[test]
fn a_unary_op_keeps_only_what_its_derivative_reads() {
    // ReLU's derivative reads the sign of its input, which its output has too: it keeps its
    // output (which a next layer holds anyway) and its input is freed with its last handle.
    // GELU's reads its input: its output is freed once dropped.
    let _one = one_at_a_time();
    let a = filled(0.5);
    let before = live_cpu_bytes() as i64;
    let shifted = a.add_scalar(1.0).unwrap();
    let relu = shifted.relu().unwrap();
    drop(shifted);
    let held = live_cpu_bytes() as i64 - before;
    assert!((32 << 20..33 << 20).contains(&held), "relu of a dropped input holds {held} bytes, not its 32 MiB output");
    let gelu_sum = a.gelu().unwrap().sum_all().unwrap();
    let held_gelu = live_cpu_bytes() as i64 - before - held;
    assert!(held_gelu < 1 << 20, "sum(gelu(a)) holds {held_gelu} bytes beyond a");
    relu.sum_all().unwrap().add(&gelu_sum).unwrap().backward().unwrap();
    // d/da [relu(a + 1) + gelu(a)] at 0.5 = 1 + Φ(0.5) + 0.5·φ(0.5).
    let want = 1.0 + 0.691_462_5 + 0.5 * 0.352_065_3;
    assert!(a.grad().unwrap().to_vec::<f32>().unwrap().iter().all(|&g| (g - want).abs() < 1e-5));
}
