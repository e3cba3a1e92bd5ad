use std::time::Instant;
use tessera::engine::{DType, Generator, Tensor};
#[test]
fn perf() {
    let mut g = Generator::new(1);
    let x = g.normal(&[64, 64, 32, 32], 0.0, 1.0, DType::F32).unwrap();
    let w = g.normal(&[64, 64, 3, 3], 0.0, 0.1, DType::F32).unwrap();
    let b = g.normal(&[64], 0.0, 0.1, DType::F32).unwrap();
    for _ in 0..2 {
        x.conv2d(&w, Some(&b), (1, 1), (1, 1), (1, 1), 1).unwrap();
    }
    let t = Instant::now();
    let y = x.conv2d(&w, Some(&b), (1, 1), (1, 1), (1, 1), 1).unwrap();
    let fwd = t.elapsed();
    let t = Instant::now();
    let cols = x.unfold((3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
    let unf = t.elapsed();
    // pure GEMM of the same size: [64, 576] x [64, 576, 1024]
    let wm = w.reshape(&[64, 576]).unwrap();
    let t = Instant::now();
    let _ = wm.matmul(&cols).unwrap();
    let mm = t.elapsed();
    let t = Instant::now();
    let _dx = y.conv2d_backward_input(&w, x.shape(), (1, 1), (1, 1), (1, 1), 1).unwrap();
    let bi = t.elapsed();
    let t = Instant::now();
    let _dw = y.conv2d_backward_weight(&x, w.shape(), (1, 1), (1, 1), (1, 1), 1).unwrap();
    let bw = t.elapsed();
    let t = Instant::now();
    let _ = x.max_pool2d((2, 2), (2, 2), (0, 0), (1, 1)).unwrap();
    let mp = t.elapsed();
    let t = Instant::now();
    let w1 = g.normal(&[64, 64, 1, 1], 0.0, 0.1, DType::F32).unwrap();
    let _ = x.conv2d(&w1, None, (1, 1), (0, 0), (1, 1), 1).unwrap();
    let c1 = t.elapsed();
    eprintln!("fwd {fwd:?} unfold {unf:?} batched-matmul {mm:?} bwd_in {bi:?} bwd_w {bw:?} maxpool {mp:?} conv1x1 {c1:?}");
}
