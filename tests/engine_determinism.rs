//! Results do not depend on the thread count: random tensors, elementwise ops, reductions,
//! softmax and matmul are bitwise equal under rayon pools of 1 and 2 threads, on sizes above
//! `PAR_MIN_ELEMS`, and called from a pool's worker (`on_pool_worker`, as the CLI runs its
//! steps) or from an outside thread. (matrixmultiply's own threads are set once per process by
//! `MATMUL_NUM_THREADS`; its split does not change the summation order either.)

use tessera::engine::cpu::{on_pool_worker, PAR_MIN_ELEMS};
use tessera::engine::{DType, Generator, Tensor};

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec_f64().unwrap().iter().map(|x| x.to_bits()).collect()
}

/// Runs `f` under 1 and 2 threads (and the global pool, from this thread and from one of its
/// workers) and asserts the outputs are bitwise equal, tensor by tensor.
fn same_under_any_pool(what: &str, f: impl Fn() -> Vec<Tensor> + Send + Sync) {
    let one = in_pool(1, &f);
    let two = in_pool(2, &f);
    let global = f();
    let on_worker = on_pool_worker(&f);
    assert_eq!(one.len(), two.len());
    for (i, (((a, b), c), d)) in one.iter().zip(&two).zip(&global).zip(&on_worker).enumerate() {
        assert_eq!(a.shape(), b.shape(), "{what} #{i}");
        let (ba, bb, bc, bd) = (bits(a), bits(b), bits(c), bits(d));
        assert!(ba == bb && ba == bc, "{what} #{i}: results differ between 1 and 2 threads");
        assert!(ba == bd, "{what} #{i}: results differ when called from a pool worker");
    }
}

/// Shape [rows, cols] with well over `PAR_MIN_ELEMS` elements.
const ROWS: usize = 301;
const COLS: usize = 4 * PAR_MIN_ELEMS / 300 + 3;

fn data(seed: u64) -> Tensor {
    Generator::new(seed).normal(&[ROWS, COLS], 0.0, 3.0, DType::F32).unwrap()
}

#[test]
fn random_tensors() {
    let n = 3 * PAR_MIN_ELEMS + 11;
    same_under_any_pool("random", || {
        let mut g = Generator::new(2024);
        vec![
            g.uniform(&[n], -1.0, 1.0, DType::F32).unwrap(),
            g.normal(&[n], 0.0, 1.0, DType::F64).unwrap(),
            g.bernoulli(&[n], 0.4).unwrap(),
            g.randint(&[n], 0, 1000).unwrap(),
            g.trunc_normal(&[1000], 0.0, 1.0, -2.0, 2.0, DType::F32).unwrap(),
            g.randperm(5000),
        ]
    });
}

#[test]
fn elementwise_and_views() {
    same_under_any_pool("elementwise", || {
        let (x, y) = (data(1), data(2));
        let row = y.select(0, 0).unwrap();
        vec![
            x.add(&row).unwrap(),
            x.t().unwrap().mul(&y.t().unwrap()).unwrap(),
            x.gelu().unwrap(),
            x.exp().unwrap().unary_backward(tessera::engine::UnaryOp::Exp, &x.exp().unwrap(), &y).unwrap(),
            Tensor::where_(&x.gt(&y).unwrap(), &x, &y).unwrap(),
            x.flip(&[0, 1]).unwrap().contiguous().unwrap(),
            x.to_dtype(DType::F64).unwrap(),
        ]
    });
}

#[test]
fn reductions_and_softmax() {
    same_under_any_pool("reductions", || {
        let x = data(3);
        let xt = x.t().unwrap();
        let mut out = vec![];
        for t in [&x, &xt] {
            for axes in [&[0isize][..], &[1], &[]] {
                out.push(t.sum(axes, false).unwrap());
                out.push(t.mean(axes, true).unwrap());
                out.push(t.var(axes, true, false).unwrap());
                out.push(t.max(axes, false).unwrap());
                out.push(t.logsumexp(axes, false).unwrap());
            }
            out.push(t.argmax(1, false).unwrap());
            out.push(t.argmin(0, false).unwrap());
            let (s, ls) = (t.softmax(1).unwrap(), t.log_softmax(0).unwrap());
            out.push(s.softmax_backward(t, 1).unwrap());
            out.push(ls.log_softmax_backward(t, 0).unwrap());
            out.push(s);
            out.push(ls);
        }
        out.push(x.sum_to_shape(&[1, COLS]).unwrap());
        out
    });
}

#[test]
fn matmul() {
    same_under_any_pool("matmul", || {
        let mut g = Generator::new(77);
        let a = g.normal(&[200, 300], 0.0, 1.0, DType::F32).unwrap();
        let b = g.normal(&[300, 260], 0.0, 1.0, DType::F32).unwrap();
        let batch = g.normal(&[16, 48, 40], 0.0, 1.0, DType::F64).unwrap();
        let w = g.normal(&[40, 56], 0.0, 1.0, DType::F64).unwrap();
        vec![
            a.matmul(&b).unwrap(),
            b.t().unwrap().matmul(&a.t().unwrap()).unwrap(),
            batch.matmul(&w).unwrap(),
            batch.matmul(&batch.t().unwrap()).unwrap(),
            a.select(0, 3).unwrap().matmul(&b).unwrap(),
        ]
    });
}

/// FNV-1a over the bits of a tensor's values.
fn digest(t: &Tensor) -> u64 {
    bits(t).iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b).wrapping_mul(0x0100_0000_01b3))
}

/// The child half of `matmul_under_matmul_num_threads`: prints a digest of two products when
/// run by it, does nothing otherwise.
#[test]
fn matmul_digest_child() {
    if std::env::var_os("TESSERA_MATMUL_DIGEST_CHILD").is_none() {
        return;
    }
    let mut g = Generator::new(78);
    let a = g.normal(&[512, 384], 0.0, 1.0, DType::F32).unwrap();
    let b = g.normal(&[384, 448], 0.0, 1.0, DType::F32).unwrap();
    let c = g.normal(&[300, 500], 0.0, 1.0, DType::F64).unwrap();
    println!("DIGEST {:x} {:x}", digest(&a.matmul(&b).unwrap()), digest(&c.t().unwrap().matmul(&c).unwrap()));
}

/// matrixmultiply reads `MATMUL_NUM_THREADS` once per process, so each setting runs in a
/// child process (this test binary, filtered to the child test).
#[test]
fn matmul_under_matmul_num_threads() {
    let run = |threads: &str| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "matmul_digest_child", "--nocapture", "--test-threads=1"])
            .env("TESSERA_MATMUL_DIGEST_CHILD", "1")
            .env("MATMUL_NUM_THREADS", threads)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The line starts with the test harness's "test matmul_digest_child ... ".
        let digest = stdout.lines().find_map(|l| l.find("DIGEST").map(|i| l[i..].to_string()));
        digest.unwrap_or_else(|| panic!("child printed no digest: {stdout}"))
    };
    assert_eq!(run("1"), run("2"), "matmul differs between MATMUL_NUM_THREADS=1 and 2");
}

#[test]
fn on_pool_worker_runs_on_a_worker_and_returns_its_value() {
    assert_eq!(rayon::current_thread_index(), None, "the test harness's thread is not a pool worker");
    let (index, value) = on_pool_worker(|| (rayon::current_thread_index(), 42));
    assert!(index.is_some(), "on_pool_worker ran its closure outside the pool");
    assert_eq!(value, 42);
    // Nested: already on a worker, it runs in place.
    assert!(on_pool_worker(|| on_pool_worker(rayon::current_thread_index).is_some()));
}

/// f32 3×3 convolutions with 128 channels on 8×8 images run as Winograd's F(4×4, 3×3), with
/// 512 channels on 4×4 images as F(2×2, 3×3) (`cpu::winograd`): forward and both gradients
/// are bitwise the same under any pool, and within 1e-5 (of the largest magnitude) of the
/// f64 direct kernels on the same values.
#[test]
fn winograd_convolutions() {
    for (n, c, side) in [(32, 128, 8), (32, 512, 4)] {
        let mut g = Generator::new(91);
        let x = g.normal(&[n, c, side, side], 0.0, 1.0, DType::F32).unwrap();
        let w = g.normal(&[c, c, 3, 3], 0.0, 0.05, DType::F32).unwrap();
        let dy = g.normal(&[n, c, side, side], 0.0, 1.0, DType::F32).unwrap();
        let b = g.normal(&[c], 0.0, 1.0, DType::F32).unwrap();
        let run = |x: &Tensor, w: &Tensor, dy: &Tensor, b: &Tensor| {
            vec![
                x.conv2d(w, Some(b), (1, 1), (1, 1), (1, 1), 1).unwrap(),
                dy.conv2d_backward_input(w, x.shape(), (1, 1), (1, 1), (1, 1), 1).unwrap(),
                dy.conv2d_backward_weight(x, w.shape(), (1, 1), (1, 1), (1, 1), 1).unwrap(),
            ]
        };
        same_under_any_pool(&format!("winograd conv, {c} channels on {side}×{side}"), || run(&x, &w, &dy, &b));
        let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let got = run(&x, &w, &dy, &b);
        let want = run(&f64s(&x), &f64s(&w), &f64s(&dy), &f64s(&b));
        for (what, (a, e)) in ["forward", "input gradient", "weight gradient"].iter().zip(got.iter().zip(&want)) {
            let (a, e) = (a.to_vec_f64().unwrap(), e.to_vec_f64().unwrap());
            let scale = e.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = a.iter().zip(&e).fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
            assert!(err <= 1e-5 * scale, "{c} channels on {side}×{side}, {what}: error {err:e} against scale {scale:e}");
        }
    }
}
