//! Optimizers, schedules, clipping and EMA of `tessera::ssl::nn::optim`: hand-computed
//! updates, LARS's exclusions, state export and bitwise resume through checkpoints.

mod common;

use common::scratch::ScratchDir;
use tessera::autograd::Var;
use tessera::engine::{DType, Device, Element, FloatElem, Generator, Tensor};
use tessera::ssl::nn::checkpoint::{load_optimizer, save_optimizer};
use tessera::ssl::nn::optim::{clip_grad_norm, ema_update, ema_update_modules, step_decay, warmup_cosine, Hyper, UpdateRule};
use tessera::ssl::nn::{load_model, save_model, AdamW, Lars, Linear, Module, Optim, Optimizer, ParamGroup, Schedule, Sgd};

fn param(v: &[f32], shape: &[usize]) -> Var {
    Var::param(Tensor::from_slice(v, shape).unwrap()).unwrap()
}

fn set_grad(p: &Var, g: &[f32]) {
    p.set_grad(Some(Tensor::from_slice(g, &p.shape()).unwrap()));
}

fn values(p: &Var) -> Vec<f32> {
    p.value().to_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((*x as f64 - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn schedules_are_pure_functions_of_the_step() {
    assert_eq!(warmup_cosine(0, 110, 10, 0.0), 0.0);
    assert_eq!(warmup_cosine(5, 110, 10, 0.0), 0.5);
    assert_eq!(warmup_cosine(10, 110, 10, 0.0), 1.0);
    assert!((warmup_cosine(60, 110, 10, 0.0) - 0.5).abs() < 1e-12);
    assert!((warmup_cosine(110, 110, 10, 0.1) - 0.1).abs() < 1e-12);
    assert!((warmup_cosine(500, 110, 10, 0.1) - 0.1).abs() < 1e-12);
    assert!((warmup_cosine(35, 110, 10, 0.0) - 0.5 * (1.0 + (std::f64::consts::PI * 0.25).cos())).abs() < 1e-12);
    assert_eq!(step_decay(0, &[10, 20], 0.1), 1.0);
    assert!((step_decay(10, &[10, 20], 0.1) - 0.1).abs() < 1e-15);
    assert!((step_decay(25, &[10, 20], 0.1) - 0.01).abs() < 1e-15);
    assert_eq!(Schedule::Constant.factor(7), 1.0);
    assert_eq!(Schedule::WarmupCosine { total_steps: 110, warmup_steps: 10, final_factor: 0.0 }.factor(5), 0.5);
}

#[test]
fn sgd_momentum_nesterov_and_weight_decay_by_hand() {
    let p = param(&[1.0, 2.0], &[2]);
    let mut opt = Optimizer::single(Sgd::momentum(0.9, true), vec![("p".into(), p.clone())], 0.1, 0.01).unwrap();
    let (mut w, mut buf) = ([1.0f64, 2.0], [0.0f64; 2]);
    for step in 0..3 {
        let g = [0.5f64, -1.0];
        set_grad(&p, &g.map(|x| x as f32));
        opt.step().unwrap();
        for i in 0..2 {
            let gi = g[i] + 0.01 * w[i];
            buf[i] = if step == 0 { gi } else { 0.9 * buf[i] + gi };
            w[i] -= 0.1 * (gi + 0.9 * buf[i]);
        }
        close(&values(&p), &w, 1e-6);
    }
    assert_eq!(opt.step_count(), 3);
}

#[test]
fn adamw_first_steps_by_hand() {
    let p = param(&[1.0, -2.0, 3.0], &[3]);
    let mut opt = Optimizer::single(AdamW::default(), vec![("p".into(), p.clone())], 0.01, 0.1).unwrap();
    let (mut w, mut m, mut v) = ([1.0f64, -2.0, 3.0], [0.0f64; 3], [0.0f64; 3]);
    for t in 1..=3 {
        let g = [0.3f64 * t as f64, -0.1, 2.0];
        set_grad(&p, &g.map(|x| x as f32));
        opt.step().unwrap();
        for i in 0..3 {
            w[i] *= 1.0 - 0.01 * 0.1;
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
            let (mh, vh) = (m[i] / (1.0 - 0.9f64.powi(t)), v[i] / (1.0 - 0.999f64.powi(t)));
            w[i] -= 0.01 * mh / (vh.sqrt() + 1e-8);
        }
        close(&values(&p), &w, 1e-6);
    }
}

#[test]
fn lars_adapts_matrices_and_excludes_vectors() {
    let (w, b) = (param(&[3.0, 4.0, 0.0, 0.0], &[2, 2]), param(&[1.0, 1.0], &[2]));
    let groups = vec![ParamGroup::new(vec![("w".into(), w.clone()), ("b".into(), b.clone())], 0.5, 0.1)];
    let mut opt = Optimizer::new(Lars::default(), groups).unwrap();
    set_grad(&w, &[0.0, 0.0, 1.0, 0.0]);
    set_grad(&b, &[2.0, -2.0]);
    opt.step().unwrap();
    // w: g' = g + 0.1·w = [0.3, 0.4, 1, 0], ‖w‖ = 5, ‖g'‖ = √1.25; trust = 0.001·5/√1.25.
    let trust = 0.001 * 5.0 / 1.25f64.sqrt();
    let gw = [0.3, 0.4, 1.0, 0.0];
    close(&values(&w), &[3.0, 4.0, 0.0, 0.0].iter().zip(gw).map(|(x, g)| x - 0.5 * trust * g).collect::<Vec<_>>(), 1e-6);
    // b: excluded, plain momentum SGD without decay.
    close(&values(&b), &[0.0, 2.0], 1e-6);
    assert_eq!(Lars::default().state_names(), &["momentum_buffer"]);
}

#[test]
fn clipping_scales_to_the_max_norm() {
    let (a, b) = (param(&[0.0, 0.0], &[2]), param(&[0.0], &[1]));
    set_grad(&a, &[3.0, 0.0]);
    set_grad(&b, &[4.0]);
    let norm = clip_grad_norm(&[a.clone(), b.clone()], 1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-9);
    close(&a.grad().unwrap().to_vec::<f32>().unwrap(), &[0.6, 0.0], 1e-6);
    close(&b.grad().unwrap().to_vec::<f32>().unwrap(), &[0.8], 1e-6);
    // Below the threshold nothing changes.
    assert!((clip_grad_norm(&[a.clone(), b], 10.0).unwrap() - 1.0).abs() < 1e-6);
    close(&a.grad().unwrap().to_vec::<f32>().unwrap(), &[0.6, 0.0], 1e-6);
}

#[test]
fn ema_moves_the_target_toward_the_online_weights() {
    let (t, o) = (param(&[1.0, 1.0], &[2]), param(&[3.0, -1.0], &[2]));
    ema_update(std::slice::from_ref(&t), std::slice::from_ref(&o), 0.9).unwrap();
    close(&values(&t), &[1.2, 0.8], 1e-6);
    assert!(ema_update(&[t], &[o, param(&[0.0], &[1])], 0.9).is_err());
    let mut g = Generator::new(1);
    let (a, b) = (Linear::new(2, 2, true, &mut g).unwrap(), Linear::new(2, 2, true, &mut g).unwrap());
    let (before, online) = (a.weight.value().to_vec::<f32>().unwrap(), b.weight.value().to_vec::<f32>().unwrap());
    ema_update_modules(&a, &b, 0.5).unwrap();
    let after = a.weight.value().to_vec::<f32>().unwrap();
    for i in 0..4 {
        assert!((after[i] - 0.5 * (before[i] + online[i])).abs() < 1e-6);
    }
    assert!(ema_update_modules(&a, &Linear::new(2, 2, false, &mut g).unwrap(), 0.5).is_err());
}

fn train_steps(model: &Linear, opt: &mut dyn Optim, data: &(Tensor, Tensor), from: u64, n: u64) {
    for step in from..from + n {
        opt.set_lr_factor(warmup_cosine(step, 10, 2, 0.0));
        opt.zero_grad();
        let y = model.forward(&Var::constant(data.0.clone())).unwrap();
        let loss = tessera::autograd::fused::mse_loss(&y, &Var::constant(data.1.clone()), None).unwrap();
        loss.backward().unwrap();
        opt.step().unwrap();
    }
}

fn resume_is_bitwise<R: UpdateRule + Clone>(rule: R, tag: &str) {
    let dir = ScratchDir::new("nn-optim", tag);
    let mut g = Generator::new(42);
    let data = (g.normal(&[8, 3], 0.0, 1.0, DType::F32).unwrap(), g.normal(&[8, 2], 0.0, 1.0, DType::F32).unwrap());
    let make = |groups_of: &Linear| ParamGroup::split_decay(groups_of.named_parameters(), 0.1, 0.05);
    let model = Linear::new(3, 2, true, &mut Generator::new(7)).unwrap();
    let mut opt = Optimizer::new(rule.clone(), make(&model)).unwrap();
    train_steps(&model, &mut opt, &data, 0, 3);
    save_model(dir.join("model.safetensors"), &model).unwrap();
    save_optimizer(dir.join("optim.safetensors"), &opt).unwrap();
    train_steps(&model, &mut opt, &data, 3, 2);
    let resumed = Linear::new(3, 2, true, &mut Generator::new(99)).unwrap();
    let mut opt2 = Optimizer::new(rule, make(&resumed)).unwrap();
    load_model(dir.join("model.safetensors"), &resumed).unwrap();
    load_optimizer(dir.join("optim.safetensors"), &mut opt2).unwrap();
    assert_eq!(opt2.step_count(), 3);
    let from = opt2.step_count();
    train_steps(&resumed, &mut opt2, &data, from, 2);
    for ((n, a), (_, b)) in model.state_dict().iter().zip(resumed.state_dict()) {
        assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap(), "{tag}: {n} differs after resuming");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resuming_from_checkpoints_is_bitwise_exact() {
    resume_is_bitwise(AdamW::default(), "adamw");
    resume_is_bitwise(Sgd::momentum(0.9, false), "sgd");
    resume_is_bitwise(Lars::default(), "lars");
}

#[test]
fn optimizer_state_mismatch_lists_the_names() {
    let p = param(&[1.0, 2.0], &[2]);
    let mut opt = Optimizer::single(AdamW::default(), vec![("enc.w".into(), p.clone())], 0.1, 0.0).unwrap();
    let bad = vec![
        ("step".to_string(), Tensor::scalar(3i64)),
        ("state.enc.w.step".to_string(), Tensor::scalar(3i64)),
        ("state.enc.w.exp_avg".to_string(), Tensor::zeros(&[3], DType::F32).unwrap()),
        ("state.other.exp_avg".to_string(), Tensor::zeros(&[2], DType::F32).unwrap()),
    ];
    let report = opt.load_state_tensors(&bad).unwrap_err();
    let text = report.to_string();
    assert!(text.contains("state.enc.w.exp_avg: expected f32[2], found f32[3]"), "{text}");
    assert!(text.contains("state.enc.w.exp_avg_sq [2]"), "{text}");
    assert!(text.contains("state.other.exp_avg [2]"), "{text}");
    assert_eq!(opt.step_count(), 0, "a failed load changes nothing");
    assert!(Optimizer::single(Sgd::default(), vec![("a".into(), p.clone()), ("a".into(), p)], 0.1, 0.0).is_err());
}

// ---- the tensor path (engine ops, what GPU parameters run) against the slice path ---------

/// `|a - b| <= tol · max(|a|, |b|)`, element by element.
fn assert_rel_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol * a.abs().max(b.abs()), "{what}: element {i}: tensor path {a} vs slice path {b}");
    }
}

/// One parameter for [`tensor_path_matches_slices`]: its shape, a constant start (random
/// when `None`), the weight decay, and whether the tensor path gets its gradients as
/// transposed (strided) views.
struct Case {
    shape: &'static [usize],
    init: Option<f64>,
    wd: f64,
    strided_grad: bool,
}

/// Matrices, a 3-d tensor without decay, a vector (LARS excludes it), zeros (LARS's
/// zero-norm branch) and strided gradients.
const CASES: [Case; 5] = [
    Case { shape: &[7, 5], init: None, wd: 0.01, strided_grad: false },
    Case { shape: &[3, 4, 2], init: None, wd: 0.0, strided_grad: false },
    Case { shape: &[6], init: None, wd: 0.1, strided_grad: false },
    Case { shape: &[4, 4], init: Some(0.0), wd: 0.1, strided_grad: false },
    Case { shape: &[5, 3], init: None, wd: 0.01, strided_grad: true },
];

/// Three steps of `rule` on random values, once through `update` on host slices and once
/// through `update_tensors` on CPU tensors, comparing parameter and state after each step.
/// `exact` asks for bitwise equality, which purely elementwise rules give (same ops, same
/// order, same rounded constants); LARS's norms are sums in another order, so it gets
/// 1e-6 relative in f32 and 1e-12 in f64.
fn tensor_path_matches_slices<R: UpdateRule, T: FloatElem>(what: &str, rule: &R, case: &Case, exact: bool) {
    let shape = case.shape;
    let (dtype, tol) = if T::DTYPE == DType::F32 { (DType::F32, 1e-6) } else { (DType::F64, 1e-12) };
    let tol = if exact { 0.0 } else { tol };
    let what = format!("{what} {shape:?} ({})", dtype.name());
    let mut gen = Generator::new(what.len() as u64 * 7919 + shape.iter().sum::<usize>() as u64);
    let p0 = match case.init {
        Some(c) => Tensor::full(shape, c, dtype).unwrap(),
        None => gen.normal(shape, 0.0, 1.0, dtype).unwrap(),
    };
    let mut slice_param: Vec<T> = p0.to_vec().unwrap();
    let mut slice_state: Vec<Vec<T>> = rule.state_names().iter().map(|_| vec![T::c(0.0); p0.numel()]).collect();
    let mut param = p0.clone();
    let mut state: Vec<Tensor> = rule.state_names().iter().map(|_| p0.zeros_like().unwrap()).collect();
    for step in 1..=3 {
        let grad = if case.strided_grad {
            let reversed: Vec<usize> = shape.iter().rev().copied().collect();
            gen.normal(&reversed, 0.0, 1.0, dtype).unwrap().permute(&(0..shape.len()).rev().collect::<Vec<_>>()).unwrap()
        } else {
            gen.normal(shape, 0.0, 1.0, dtype).unwrap()
        };
        let h = Hyper { lr: 0.05 * step as f64, weight_decay: case.wd, step, is_vector: shape.len() <= 1 };
        let mut state_views: Vec<&mut [T]> = slice_state.iter_mut().map(|b| &mut b[..]).collect();
        rule.update(&h, &mut slice_param, &grad.to_vec::<T>().unwrap(), &mut state_views);
        let (p, st) = rule.update_tensors(&h, &param, &grad, &state).unwrap();
        assert_eq!((p.shape(), p.dtype()), (shape, dtype), "{what}: parameter kind");
        assert_eq!(st.len(), slice_state.len(), "{what}: state count");
        let f64s = |v: &[T]| v.iter().map(|&x| Element::to_f64(x)).collect::<Vec<_>>();
        assert_rel_close(&format!("{what} step {step}: param"), &p.to_vec_f64().unwrap(), &f64s(&slice_param), tol);
        for ((t, s), name) in st.iter().zip(&slice_state).zip(rule.state_names()) {
            assert_rel_close(&format!("{what} step {step}: {name}"), &t.to_vec_f64().unwrap(), &f64s(s), tol);
        }
        (param, state) = (p, st);
    }
}

/// Every case of `rule`, in both float dtypes.
fn tensor_path_cases<R: UpdateRule>(what: &str, rule: &R, exact: bool) {
    for case in &CASES {
        tensor_path_matches_slices::<R, f32>(what, rule, case, exact);
        tensor_path_matches_slices::<R, f64>(what, rule, case, exact);
    }
}

#[test]
fn sgd_tensor_path_matches_the_slice_path() {
    tensor_path_cases("sgd plain", &Sgd::default(), true);
    tensor_path_cases("sgd momentum", &Sgd::momentum(0.9, false), true);
    tensor_path_cases("sgd nesterov", &Sgd::momentum(0.9, true), true);
    tensor_path_cases("sgd dampening", &Sgd { momentum: 0.8, dampening: 0.3, nesterov: false }, true);
}

#[test]
fn adamw_tensor_path_matches_the_slice_path() {
    tensor_path_cases("adamw", &AdamW::default(), true);
    tensor_path_cases("adamw custom", &AdamW { beta1: 0.8, beta2: 0.95, eps: 1e-6 }, true);
}

#[test]
fn lars_tensor_path_matches_the_slice_path() {
    tensor_path_cases("lars", &Lars::default(), false);
    tensor_path_cases("lars nesterov", &Lars { nesterov: true, ..Lars::default() }, false);
    tensor_path_cases("lars adapting vectors", &Lars { exclude_vectors: false, eta: 0.02, ..Lars::default() }, false);
}

/// An optimizer over a matrix and a vector parameter takes 3 steps, exports its state (which
/// must live where the parameters do), restores it into a fresh optimizer as a checkpoint
/// would (host tensors) and both take a 4th step, which must agree bitwise. Run once on the
/// CPU everywhere, then on a GPU (skipped where none is found), whose parameters and state
/// must match the CPU run's.
fn optimizer_same_on_gpu<R: UpdateRule + Clone>(what: &str, rule: R, dtype: DType) {
    let mut gen = Generator::new(5);
    let (ws, bs) = ([48usize, 300], [48usize]);
    let mut inputs = vec![gen.normal(&ws, 0.0, 0.5, dtype).unwrap(), gen.normal(&bs, 0.0, 0.5, dtype).unwrap()];
    for _ in 0..4 {
        inputs.push(gen.normal(&ws, 0.0, 1.0, dtype).unwrap());
        inputs.push(gen.normal(&bs, 0.0, 1.0, dtype).unwrap());
    }
    let run = |t: &[Tensor]| {
        let device = t[0].device();
        let make = |w: Tensor, b: Tensor| {
            let (w, b) = (Var::param(w).unwrap(), Var::param(b).unwrap());
            let groups = vec![ParamGroup::new(vec![("w".into(), w.clone()), ("b".into(), b.clone())], 0.1, 0.01)];
            (w, b, Optimizer::new(rule.clone(), groups).unwrap())
        };
        let step = |opt: &mut Optimizer<R>, w: &Var, b: &Var, k: usize| {
            w.set_grad(Some(t[2 + 2 * k].clone()));
            b.set_grad(Some(t[3 + 2 * k].clone()));
            opt.step().unwrap();
        };
        let (w, b, mut opt) = make(t[0].clone(), t[1].clone());
        for k in 0..3 {
            step(&mut opt, &w, &b, k);
        }
        let floats = |st: Vec<(String, Tensor)>| st.into_iter().filter(|(_, x)| x.dtype() != DType::I64).collect::<Vec<_>>();
        let exported = floats(opt.state_tensors());
        assert!(exported.iter().all(|(_, x)| x.device() == device), "{what}: state lives with the parameters");
        // A checkpoint comes back as host tensors.
        let host: Vec<(String, Tensor)> = opt.state_tensors().into_iter().map(|(n, x)| (n, x.to_device(Device::Cpu).unwrap())).collect();
        let (w2, b2, mut resumed) = make(w.value(), b.value());
        resumed.load_state_tensors(&host).unwrap();
        let restored = floats(resumed.state_tensors());
        assert!(restored.iter().all(|(_, x)| x.device() == device), "{what}: restored state joins the parameters' device");
        step(&mut opt, &w, &b, 3);
        step(&mut resumed, &w2, &b2, 3);
        assert_eq!(resumed.step_count(), 4, "{what}: resumed step count");
        for (a, b) in [(&w, &w2), (&b, &b2)] {
            assert_eq!(a.value().to_vec_f64().unwrap(), b.value().to_vec_f64().unwrap(), "{what} on {device:?}: resumed differs");
        }
        let mut out = vec![w.value(), b.value()];
        out.extend(floats(resumed.state_tensors()).into_iter().map(|(_, x)| x));
        Ok(out)
    };
    run(&inputs).unwrap();
    common::gpu::same_on_gpu(what, &inputs, run);
}

#[test]
fn optimizers_step_gpu_parameters_like_cpu_ones() {
    optimizer_same_on_gpu("sgd momentum", Sgd::momentum(0.9, false), DType::F32);
    optimizer_same_on_gpu("sgd nesterov dampened", Sgd { momentum: 0.9, dampening: 0.1, nesterov: true }, DType::F32);
    optimizer_same_on_gpu("sgd plain", Sgd::default(), DType::F32);
    optimizer_same_on_gpu("adamw", AdamW::default(), DType::F32);
    optimizer_same_on_gpu("adamw f64", AdamW::default(), DType::F64);
    optimizer_same_on_gpu("lars", Lars::default(), DType::F32);
    optimizer_same_on_gpu("lars nesterov, vectors adapted", Lars { nesterov: true, exclude_vectors: false, ..Lars::default() }, DType::F32);
    optimizer_same_on_gpu("lars f64", Lars::default(), DType::F64);
}

/// A parameter larger than one piece of the pool's split (SGD and AdamW update large
/// parameters in pieces across the pool, `UPDATE_CHUNK` = 16384 elements) ends up with the
/// bits of one `update` call over the whole slice, step after step, under 1 and 2 threads.
fn split_update_is_one_update<R: UpdateRule + Clone>(what: &str, rule: R) {
    let len = 3 * 16384 + 123;
    let mut gen = Generator::new(17);
    let p0 = gen.normal(&[len], 0.0, 1.0, DType::F32).unwrap().to_vec::<f32>().unwrap();
    let grads: Vec<Vec<f32>> = (0..3).map(|_| gen.normal(&[len], 0.0, 1.0, DType::F32).unwrap().to_vec::<f32>().unwrap()).collect();
    // The reference: the rule on whole slices.
    let (mut want, mut state) = (p0.clone(), vec![vec![0f32; len]; rule.state_names().len()]);
    for (step, g) in grads.iter().enumerate() {
        let h = Hyper { lr: 0.01, weight_decay: 0.05, step: step as u64 + 1, is_vector: false };
        let mut views: Vec<&mut [f32]> = state.iter_mut().map(|b| &mut b[..]).collect();
        rule.update(&h, &mut want, g, &mut views);
    }
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let got = pool.install(|| {
            let w = param(&p0, &[len]);
            let mut opt = Optimizer::new(rule.clone(), vec![ParamGroup::new(vec![("w".into(), w.clone())], 0.01, 0.05)]).unwrap();
            for g in &grads {
                set_grad(&w, g);
                opt.step().unwrap();
            }
            values(&w)
        });
        let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{what}, {threads} threads: the split update differs from one call");
    }
}

#[test]
fn large_parameters_update_in_pieces_with_the_bits_of_one_call() {
    split_update_is_one_update("sgd", Sgd { momentum: 0.9, ..Sgd::default() });
    split_update_is_one_update("adamw", AdamW::default());
}
