//! GPU memory behaviour, in a test binary of its own so no other test allocates beside it:
//! after the first training step, steps reuse the caching allocator's buffers and never call
//! the driver's allocator; running out of GPU memory is a clear error naming the size.
//! Skipped with a message where there is no GPU.

mod common;

use tessera::autograd::{fused, Var};
use tessera::engine::{cuda, DType, Error, Generator, Tensor};

#[test]
fn training_steps_reuse_gpu_memory_and_oom_is_an_error() {
    let Some(dev) = common::gpu::gpu() else { return };
    let mut g = Generator::new(7);
    let x = g.normal_on(&[64, 3, 16, 16], 0.0, 1.0, DType::F32, dev).unwrap();
    let labels = Tensor::from_vec((0..64i64).map(|i| i % 10).collect(), &[64]).unwrap();
    let w1 = Var::param(g.normal_on(&[8, 3, 3, 3], 0.0, 0.2, DType::F32, dev).unwrap()).unwrap();
    let w2 = Var::param(g.normal_on(&[8 * 16 * 16, 10], 0.0, 0.02, DType::F32, dev).unwrap()).unwrap();
    let step = || {
        let h = Var::constant(x.clone()).conv2d(&w1, None, (1, 1), (1, 1), (1, 1), 1).unwrap();
        let h = fused::batch_norm(&h, None, None, 1e-5).unwrap().output.relu().unwrap();
        let logits = h.flatten(1, -1).unwrap().matmul(&w2).unwrap();
        fused::cross_entropy(&logits, &labels, 0.0).unwrap().backward().unwrap();
        w1.zero_grad();
        w2.zero_grad();
    };
    step();
    let after_first = cuda::memory_stats(0).unwrap().driver_allocs;
    for _ in 0..3 {
        step();
    }
    let stats = cuda::memory_stats(0).unwrap();
    assert_eq!(stats.driver_allocs, after_first, "steps after the first called cuMemAlloc: {stats:?}");

    // 2^42 f32 = 16 TiB: more than any GPU has.
    let err = Tensor::full_on(&[1 << 42], 0.0, DType::F32, dev).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { bytes, .. } if bytes == 4 << 42), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("out of memory") && msg.contains(&(4u64 << 42).to_string()), "{msg}");
    // The device stays usable.
    assert_eq!(Tensor::full_on(&[3], 2.0, DType::F32, dev).unwrap().to_vec::<f32>().unwrap(), vec![2.0; 3]);
}
