//! MoCo's pieces by known answers and naive references: the InfoNCE loss over a queue, the
//! v3 contrastive loss, the EMA update, the cosine momentum schedule and the key queue.

use tessera::autograd::Var;
use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::methods::{contrastive_loss, cosine_momentum, moco_infonce, KeyQueue, MomentumEncoder, MomentumSchedule};
use tessera::ssl::nn::{Linear, Module};

fn normal(shape: &[usize], seed: u64) -> Tensor {
    Generator::new(seed).normal(shape, 0.0, 1.0, DType::F64).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let d = t.shape()[1];
    t.to_vec::<f64>().unwrap().chunks(d).map(|r| r.to_vec()).collect()
}

fn unit(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// −log softmax(logits)[target], written out.
fn nll(logits: &[f64], target: usize) -> f64 {
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
    lse - logits[target]
}

#[test]
fn moco_infonce_matches_a_naive_reference() {
    let (q, k, queue) = (normal(&[5, 4], 1), normal(&[5, 4], 2), normal(&[7, 4], 3));
    let k_rows: Vec<Vec<f64>> = rows(&k).iter().map(|r| unit(r)).collect();
    let queue_rows: Vec<Vec<f64>> = rows(&queue).iter().map(|r| unit(r)).collect();
    let to_t = |r: &Vec<Vec<f64>>| Tensor::from_vec(r.concat(), &[r.len(), 4]).unwrap();
    let tau = 0.2;
    let got = moco_infonce(&Var::constant(q.clone()), &to_t(&k_rows), &to_t(&queue_rows), tau).unwrap().value().item().unwrap();
    let mut total = 0.0;
    for (i, qi) in rows(&q).iter().enumerate() {
        let qi = unit(qi);
        let mut logits = vec![dot(&qi, &k_rows[i]) / tau];
        logits.extend(queue_rows.iter().map(|n| dot(&qi, n) / tau));
        total += nll(&logits, 0);
    }
    assert!((got - total / 5.0).abs() < 1e-12, "{got} vs {}", total / 5.0);
}

#[test]
fn moco_infonce_sends_the_gradient_to_q_only_and_names_bad_shapes() {
    let q = Var::param(normal(&[3, 4], 1)).unwrap();
    let loss = moco_infonce(&q, &normal(&[3, 4], 2), &normal(&[6, 4], 3), 0.2).unwrap();
    loss.backward().unwrap();
    assert_eq!(q.grad().unwrap().shape(), &[3, 4]);
    let err = moco_infonce(&q, &normal(&[3, 4], 2), &normal(&[6, 5], 3), 0.2).unwrap_err().to_string();
    assert!(err.contains("moco_infonce") && err.contains("[3, 4]") && err.contains("[6, 5]"), "{err}");
    let err = moco_infonce(&q, &normal(&[2, 4], 2), &normal(&[6, 4], 3), 0.2).unwrap_err().to_string();
    assert!(err.contains("[3, 4]") && err.contains("[2, 4]"), "{err}");
}

#[test]
fn contrastive_loss_matches_a_naive_reference() {
    let (q, k) = (normal(&[4, 3], 5), normal(&[4, 3], 6));
    let tau = 0.2;
    let got = contrastive_loss(&Var::constant(q.clone()), &k, tau).unwrap().value().item().unwrap();
    let (qr, kr) = (rows(&q), rows(&k));
    let mut total = 0.0;
    for (i, qi) in qr.iter().enumerate().take(4) {
        let logits: Vec<f64> = kr.iter().map(|kj| dot(&unit(qi), &unit(kj)) / tau).collect();
        total += nll(&logits, i);
    }
    let want = total / 4.0 * 2.0 * tau;
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

#[test]
fn cosine_momentum_rises_from_its_base_to_one() {
    assert_eq!(cosine_momentum(0.99, 0, 100), 0.99);
    assert!((cosine_momentum(0.99, 50, 100) - 0.995).abs() < 1e-15);
    assert_eq!(cosine_momentum(0.99, 100, 100), 1.0);
    assert_eq!(cosine_momentum(0.99, 150, 100), 1.0, "past the end it stays at 1");
}

#[test]
fn moco_v2_momentum_schedules() {
    for step in [0, 37, 100] {
        assert_eq!(MomentumSchedule::Constant.at(0.99, step, 100), 0.99, "the paper's m stays put");
        assert_eq!(MomentumSchedule::Cosine.at(0.99, step, 100), cosine_momentum(0.99, step, 100));
    }
}

#[test]
fn the_momentum_encoder_starts_as_a_copy_and_follows_by_ema() {
    let mut g = Generator::new(0);
    let online = (Linear::new(2, 2, true, &mut g).unwrap(), Linear::new(2, 1, false, &mut g).unwrap());
    let key = MomentumEncoder::new(
        Box::new(Linear::new(2, 2, true, &mut g).unwrap()),
        Box::new(Linear::new(2, 1, false, &mut g).unwrap()),
        (&online.0, &online.1),
    )
    .unwrap();
    assert_eq!(key.backbone.state_dict()[0].1.to_vec::<f32>().unwrap(), online.0.state_dict()[0].1.to_vec::<f32>().unwrap());
    assert!(key.backbone.trainable_parameters().is_empty(), "the key encoder is frozen");
    // Online weights set to 1, key weights to 0: one update with m = 0.9 gives 0.1.
    for p in online.0.parameters().iter().chain(&online.1.parameters()) {
        p.set_value(p.value().ones_like().unwrap()).unwrap();
    }
    for p in key.backbone.parameters().iter().chain(&key.head.parameters()) {
        p.set_value(p.value().zeros_like().unwrap()).unwrap();
    }
    key.update((&online.0, &online.1), 0.9).unwrap();
    for p in key.backbone.parameters().iter().chain(&key.head.parameters()) {
        assert!(p.value().to_vec::<f32>().unwrap().iter().all(|&v| (v - 0.1).abs() < 1e-7));
    }
    // Keys are computed without a graph.
    let k = key.forward(&Tensor::ones(&[3, 2], DType::F32).unwrap()).unwrap();
    assert_eq!(k.shape(), &[3, 1]);
}

#[test]
fn the_queue_writes_over_the_oldest_keys_and_wraps() {
    let queue = KeyQueue::new(6, 2, &mut Generator::new(1)).unwrap();
    let initial = queue.keys().to_vec::<f32>().unwrap();
    let norms: Vec<f32> = initial.chunks(2).map(|r| (r[0] * r[0] + r[1] * r[1]).sqrt()).collect();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-6), "starts with unit keys: {norms:?}");
    let batch = |v: f32| Tensor::from_vec(vec![v, v, v + 0.5, v + 0.5], &[2, 2]).unwrap();
    assert_eq!(queue.ptr().unwrap(), 0);
    queue.enqueue(&batch(1.0)).unwrap();
    assert_eq!(queue.ptr().unwrap(), 2);
    let after = queue.keys().to_vec::<f32>().unwrap();
    assert_eq!(&after[..4], &[1.0, 1.0, 1.5, 1.5]);
    assert_eq!(&after[4..], &initial[4..], "the rest is untouched");
    queue.enqueue(&batch(2.0)).unwrap();
    queue.enqueue(&batch(3.0)).unwrap();
    assert_eq!(queue.ptr().unwrap(), 0, "wraps to the start");
    queue.enqueue(&batch(4.0)).unwrap();
    assert_eq!(queue.keys().to_vec::<f32>().unwrap(), vec![4.0, 4.0, 4.5, 4.5, 2.0, 2.0, 2.5, 2.5, 3.0, 3.0, 3.5, 3.5]);
    assert_eq!(queue.ptr().unwrap(), 2);
    let err = queue.enqueue(&Tensor::ones(&[4, 2], DType::F32).unwrap()).unwrap_err().to_string();
    assert!(err.contains("not a multiple of the batch size 4"), "{err}");
}

/// A MoCo v2 step through the Method API: the loss is finite, only the query side gets
/// gradients (the key encoder records no graph and is left out of the optimizer), and the
/// hook after the step moves the key encoder and fills the queue.
#[test]
fn a_moco_v2_step_trains_the_query_side_only() {
    use tessera::ssl::data::TrainBatch;
    use tessera::ssl::methods::{build_default, StepContext};
    use tessera::ssl::nn::{EncoderSpec, Pool};
    let spec = EncoderSpec { name: "resnet-narrow".into(), channels: 1, side: 28, patch_size: 0, pool: Pool::Token };
    let method = build_default("moco-v2", &spec, 8, 0).unwrap();
    let mut g = Generator::new(3);
    let views = (0..2).map(|_| g.normal(&[8, 1, 28, 28], 0.0, 1.0, DType::F32).unwrap()).collect();
    let batch = TrainBatch {
        views,
        targets: None,
        mask: None,
        tokens: None,
        labels: Tensor::zeros(&[8], DType::I64).unwrap(),
        indices: (0..8).collect(),
    };
    let ctx = StepContext { step: 0, total_steps: 10 };
    let out = method.training_step(&batch, &ctx).unwrap();
    assert!(out.loss.value().item().unwrap().is_finite());
    out.loss.backward().unwrap();
    let params = method.named_parameters();
    assert!(params.iter().filter(|(n, _)| n.starts_with("momentum.")).all(|(_, p)| p.grad().is_none()), "the key side has gradients");
    assert!(params.iter().filter(|(n, _)| n.starts_with("encoder.")).all(|(_, p)| p.grad().is_some()), "the query encoder lacks gradients");
    assert!(method.named_trainable_parameters().iter().all(|(n, _)| !n.starts_with("momentum.") && n != "queue"));
    let queue_before = method.state_dict().into_iter().find(|(n, _)| n == "queue").unwrap().1.to_vec::<f32>().unwrap();
    method.after_step(&StepContext { step: 1, total_steps: 10 }).unwrap();
    let state = method.state_dict();
    let get = |name: &str| state.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(get("queue_ptr").to_vec::<i64>().unwrap(), vec![8]);
    assert_ne!(get("queue").to_vec::<f32>().unwrap()[..8 * 128], queue_before[..8 * 128], "the keys were enqueued");
}
