//! Optimizers, schedules, clipping and EMA of `tessera::ssl::nn::optim`: hand-computed
//! updates, LARS's exclusions, state export and bitwise resume through checkpoints.

use tessera::autograd::Var;
use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::nn::checkpoint::{load_optimizer, save_optimizer};
use tessera::ssl::nn::optim::{clip_grad_norm, ema_update, ema_update_modules, step_decay, warmup_cosine, UpdateRule};
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
    let dir = std::env::temp_dir().join(format!("tessera-nn-optim-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
