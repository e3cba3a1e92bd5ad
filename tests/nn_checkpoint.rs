//! Model checkpoints: bitwise round trips through safetensors, atomic saves, and errors that
//! name the file and list every missing, unexpected or misshapen tensor.

use tessera::autograd::Var;
use tessera::engine::{DType, Generator, Tensor};
use tessera::ssl::nn::checkpoint::{load_tensors, save_tensors, temp_path};
use tessera::ssl::nn::{load_model, load_model_prefixed, save_model, Module, NnError, ResNet, ResNetConfig};

#[path = "common/scratch.rs"]
mod scratch_dir;
use scratch_dir::ScratchDir;

fn scratch(tag: &str) -> ScratchDir {
    ScratchDir::new("nn-ckpt", tag)
}

fn tiny(widths: Vec<usize>, seed: u64) -> ResNet {
    let cfg = ResNetConfig { depths: vec![1; widths.len()], widths, stem_width: 4, ..ResNetConfig::narrow() };
    ResNet::new(&cfg, &mut Generator::new(seed)).unwrap()
}

fn bits(m: &dyn Module) -> Vec<(String, Vec<u8>)> {
    m.state_dict()
        .into_iter()
        .map(|(n, t)| {
            let b = match t.dtype() {
                DType::F32 => t.to_vec::<f32>().unwrap().iter().flat_map(|x| x.to_le_bytes()).collect(),
                DType::I64 => t.to_vec::<i64>().unwrap().iter().flat_map(|x| x.to_le_bytes()).collect(),
                d => panic!("unexpected dtype {d:?}"),
            };
            (n, b)
        })
        .collect()
}

#[test]
fn model_round_trip_is_bitwise() {
    let dir = scratch("roundtrip");
    let net = tiny(vec![4, 8], 1);
    // A training step moves the BN statistics and num_batches_tracked off their defaults.
    net.forward(&Var::constant(Generator::new(2).normal(&[3, 1, 8, 8], 0.0, 1.0, DType::F32).unwrap())).unwrap();
    let path = dir.join("net.safetensors");
    save_model(&path, &net).unwrap();
    let other = tiny(vec![4, 8], 3);
    assert_ne!(bits(&net), bits(&other));
    load_model(&path, &other).unwrap();
    assert_eq!(bits(&net), bits(&other));
    let (tensors, meta) = load_tensors(&path).unwrap();
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    let nbt = tensors.iter().find(|(n, _)| n == "bn1.num_batches_tracked").unwrap();
    assert_eq!((nbt.1.dtype(), nbt.1.shape().len(), nbt.1.to_vec::<i64>().unwrap()[0]), (DType::I64, 0, 1));
    assert!(!temp_path(&path).exists(), "the temporary file is renamed away");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_failed_save_leaves_the_previous_checkpoint() {
    let dir = scratch("atomic");
    let path = dir.join("ckpt.safetensors");
    let first = tiny(vec![4, 8], 1);
    save_model(&path, &first).unwrap();
    let before = std::fs::read(&path).unwrap();
    // A directory where the temporary file must go makes the save fail before the rename.
    std::fs::create_dir(temp_path(&path)).unwrap();
    let err = save_model(&path, &tiny(vec![4, 8], 2)).unwrap_err();
    assert!(err.to_string().contains("ckpt.safetensors"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let check = tiny(vec![4, 8], 5);
    load_model(&path, &check).unwrap();
    assert_eq!(bits(&check), bits(&first));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mismatches_list_names_and_shapes() {
    let dir = scratch("mismatch");
    let path = dir.join("a.safetensors");
    save_model(&path, &tiny(vec![4, 8], 1)).unwrap();
    let wider = tiny(vec![4, 6, 8], 1);
    let before = bits(&wider);
    let err = load_model(&path, &wider).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, NnError::Mismatch { .. }));
    assert!(text.contains("a.safetensors"), "{text}");
    assert!(text.contains("missing") && text.contains("layer3.0.conv1.weight [8, 6, 3, 3]"), "{text}");
    assert!(text.contains("layer2.0.conv1.weight: expected f32[6, 4, 3, 3], found f32[8, 4, 3, 3]"), "{text}");
    assert_eq!(bits(&wider), before, "a failed load changes nothing");
    // Extra tensors are unexpected in a strict load and ignored under a prefix.
    let net = tiny(vec![4, 8], 1);
    let mut tensors: Vec<(String, Tensor)> = net.state_dict().into_iter().map(|(n, t)| (format!("encoder.{n}"), t)).collect();
    tensors.push(("head.weight".into(), Tensor::zeros(&[2, 8], DType::F32).unwrap()));
    let full = dir.join("full.safetensors");
    save_tensors(&full, &tensors, None).unwrap();
    let text = load_model(&full, &net).unwrap_err().to_string();
    assert!(text.contains("unexpected") && text.contains("head.weight [2, 8]"), "{text}");
    load_model_prefixed(&full, &net, "encoder.").unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_and_corrupt_files_name_the_path() {
    let dir = scratch("missing");
    let net = tiny(vec![4], 1);
    let err = load_model(dir.join("nope.safetensors"), &net).unwrap_err();
    assert!(matches!(err, NnError::Io { .. }) && err.to_string().contains("nope.safetensors"), "{err}");
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let err = load_model(&junk, &net).unwrap_err();
    assert!(matches!(err, NnError::Format { .. }) && err.to_string().contains("junk.safetensors"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn half_tensors_round_trip_bit_for_bit() {
    let dir = scratch("halves");
    let path = dir.join("halves.safetensors");
    let x = Generator::new(3).normal(&[3, 5], 0.0, 100.0, DType::F32).unwrap();
    let tensors = vec![("b".to_string(), x.to_dtype(DType::BF16).unwrap()), ("h".to_string(), x.to_dtype(DType::F16).unwrap())];
    save_tensors(&path, &tensors, None).unwrap();
    let (back, _) = load_tensors(&path).unwrap();
    for ((name, want), (got_name, got)) in tensors.iter().zip(&back) {
        assert_eq!(name, got_name);
        assert_eq!((got.dtype(), got.shape()), (want.dtype(), want.shape()), "{name}");
        let bits = |t: &Tensor| t.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(got), bits(want), "{name}");
    }
}

/// The same tensors and metadata give the same file bytes in every save: the metadata map's
/// hash order (new in every map) does not reach the file, and the metadata reads back.
#[test]
fn saving_the_same_state_writes_the_same_bytes() {
    let dir = scratch("same-bytes");
    let x = Generator::new(5).normal(&[4, 3], 0.0, 1.0, DType::F32).unwrap();
    let tensors = vec![
        ("w".to_string(), x.clone()),
        ("b".to_string(), x.sum(&[0], false).unwrap()),
        ("a.b".to_string(), x.to_dtype(DType::F64).unwrap()),
    ];
    let metadata = || -> std::collections::HashMap<String, String> {
        [
            ("format", "tessera-checkpoint-1"),
            ("method", "moco-v2"),
            ("state", r#"{"epoch":0,"batch":6,"step":6}"#),
            ("note", "a \"quoted\" value"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let files: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let path = dir.join(format!("{i}.safetensors"));
            save_tensors(&path, &tensors, Some(metadata())).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    assert!(files.iter().all(|f| f == &files[0]), "the saves differ");
    let (back, meta) = load_tensors(dir.join("0.safetensors")).unwrap();
    assert_eq!(meta, metadata());
    let names: Vec<&str> = back.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a.b", "b", "w"]);
    assert_eq!(back[2].1.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
}
