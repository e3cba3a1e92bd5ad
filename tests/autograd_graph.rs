//! Graph semantics: accumulation, no_grad, detach, diamonds, freeing (after backward; during
//! the forward pass: `autograd_memory.rs`), and that gradcheck
//! really fails on a wrong rule.

use tessera::autograd::{gradcheck, no_grad, Error, Var};
use tessera::engine::{live_cpu_bytes, DType, Generator, Tensor};

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

#[test]
fn gradients_accumulate_across_backward_calls() {
    let x = Var::param(t(&[1.0, 2.0], &[2])).unwrap();
    for _ in 0..2 {
        x.mul(&x).unwrap().sum_all().unwrap().backward().unwrap();
    }
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![4.0, 8.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
}

#[test]
fn no_grad_records_nothing_and_nests() {
    let x = Var::param(t(&[1.0], &[1])).unwrap();
    {
        let _g = no_grad();
        {
            let _inner = no_grad();
        }
        let y = x.mul_scalar(3.0).unwrap();
        assert!(!y.requires_grad(), "recorded under no_grad");
        assert!(matches!(y.sum_all().unwrap().backward(), Err(Error::NoGradient)));
    }
    assert!(x.mul_scalar(3.0).unwrap().requires_grad(), "the guard did not restore recording");
}

#[test]
fn detach_stops_gradients() {
    let x = Var::param(t(&[2.0], &[1])).unwrap();
    let y = x.mul(&x.detach()).unwrap(); // d/dx (x · c) = c = 2
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![2.0]);
}

#[test]
fn a_value_used_twice_gets_both_gradients() {
    let x = Var::param(t(&[3.0], &[1])).unwrap();
    let a = x.exp().unwrap();
    let y = a.mul_scalar(2.0).unwrap().add(&a.square().unwrap()).unwrap(); // 2e^x + e^2x
    y.sum_all().unwrap().backward().unwrap();
    let want = 2.0 * 3f64.exp() + 2.0 * 6f64.exp();
    assert!((x.grad().unwrap().item().unwrap() - want).abs() < 1e-9 * want);
}

#[test]
fn second_backward_over_freed_graph_is_an_error_unless_retained() {
    let x = Var::param(t(&[1.0, 2.0], &[2])).unwrap();
    let y = x.exp().unwrap().sum_all().unwrap();
    y.backward().unwrap();
    let err = y.backward().unwrap_err();
    assert!(err.to_string().contains("already been freed"), "{err}");

    let y = x.exp().unwrap().sum_all().unwrap();
    let one = Tensor::ones(&[], DType::F64).unwrap();
    y.backward_with(&one, true).unwrap();
    y.backward_with(&one, false).unwrap();
}

#[test]
fn backward_needs_a_scalar() {
    let x = Var::param(t(&[1.0, 2.0], &[2])).unwrap();
    let err = x.exp().unwrap().backward().unwrap_err();
    assert!(err.to_string().contains("[2]"), "{err}");
}

#[test]
fn graph_memory_is_released_after_backward() {
    let mut g = Generator::new(1);
    let w = Var::param(g.normal(&[256, 256], 0.0, 0.1, DType::F32).unwrap()).unwrap();
    let x = Var::constant(g.normal(&[512, 256], 0.0, 1.0, DType::F32).unwrap());
    let before = live_cpu_bytes();
    let mut h = x.clone();
    for _ in 0..4 {
        h = h.matmul(&w).unwrap().tanh().unwrap();
    }
    let loss = h.square().unwrap().mean_all().unwrap();
    let during = live_cpu_bytes();
    loss.backward().unwrap();
    drop(h);
    drop(loss);
    let after = live_cpu_bytes();
    // Other tests in this binary allocate concurrently; compare with a wide margin. The
    // graph holds at least 4 activations of 512×256 f32 (2 MiB); after backward only the
    // gradient of w (256 KiB) should remain.
    assert!(during > before + 2 * 512 * 256 * 4, "graph held {} bytes", during - before);
    assert!(after < before + 2 * 256 * 256 * 4 + (1 << 20), "graph not released: {} bytes remain", after as i64 - before as i64);
}

#[test]
fn gradcheck_catches_a_wrong_rule_and_names_the_element() {
    // y = x² with a backward that forgets the factor 2.
    let wrong = |v: &[Var]| -> tessera::autograd::Result<Var> {
        let x = v[0].value();
        let y = x.square()?;
        Ok(Var::from_op("test_wrong_square", y, &[&v[0]], move |g, _| Ok(vec![Some(g.mul(&x)?)])))
    };
    let err = gradcheck(wrong, &[t(&[1.0, 2.0, 3.0], &[3])], 1e-6, 1e-6, 1e-5).unwrap_err().to_string();
    assert!(err.contains("input 0") && err.contains("element [0]") && err.contains("analytic"), "{err}");
}
