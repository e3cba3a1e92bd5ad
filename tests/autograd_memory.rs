//! Memory held by the graph during the forward pass: a value is kept only while someone
//! holds its `Var` or a backward rule saved it. (Its own binary: `live_cpu_bytes` counts the
//! whole process, and other tests' allocations would blur the figures.)

use tessera::autograd::Var;
use tessera::engine::{live_cpu_bytes, DType, Tensor};

#[test]
fn an_intermediate_nobody_holds_is_freed_in_the_forward_pass() {
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
