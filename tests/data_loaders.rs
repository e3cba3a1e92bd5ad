//! File loaders on good and corrupted files (generated in a temp dir), checking that every
//! error names the file and the problem; the embedded dataset; the synthetic generator.

use std::path::{Path, PathBuf};

use tessera_engine::Generator;
use tessera_ssl::data::*;

#[path = "common/scratch.rs"]
mod scratch;
use scratch::ScratchDir;

fn temp_dir(name: &str) -> ScratchDir {
    ScratchDir::new("data", name)
}

/// An IDX file: magic, dims, then the body.
fn idx_bytes(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

fn expect_err<T: std::fmt::Debug>(r: Result<T>, path: &Path, needles: &[&str]) -> String {
    let msg = r.expect_err("expected an error").to_string();
    assert!(msg.starts_with(&path.display().to_string()), "error should start with the full path {}: {msg}", path.display());
    for n in needles {
        assert!(msg.contains(n), "error should mention {n:?}: {msg}");
    }
    msg
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn idx_good_raw_and_gzip() {
    let dir = temp_dir("idx-good");
    let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| i as u8).collect();
    std::fs::write(dir.join("img"), idx_bytes(0x803, &[3, 4, 5], &pixels)).unwrap();
    std::fs::write(dir.join("lab"), idx_bytes(0x801, &[3], &[2, 0, 1])).unwrap();
    let ds = load_idx(dir.join("img"), dir.join("lab"), vec!["a".into(), "b".into(), "c".into()]).unwrap();
    assert_eq!((ds.len(), ds.image_shape(), ds.labels()), (3, [1, 4, 5], &[2i64, 0, 1][..]));
    assert_eq!(ds.pixels(1), &pixels[20..40]);
    assert_eq!(ds.image(2).at(0, 0, 1), 41.0 / 255.0);
    // The committed gzip files load through the same path.
    let sub = repo_file("ssl/data/fashion-mnist-subset");
    let test = load_fashion_mnist(&sub, Split::Test).unwrap();
    assert_eq!((test.len(), test.image_shape(), test.num_classes()), (2000, [1, 28, 28], 10));
}

#[test]
fn idx_errors_name_file_and_problem() {
    let dir = temp_dir("idx-bad");
    let classes: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let img = dir.join("train-images-idx3-ubyte");
    let lab = dir.join("train-labels-idx1-ubyte");
    std::fs::write(&lab, idx_bytes(0x801, &[100], &[1; 100])).unwrap();

    std::fs::write(&img, idx_bytes(0x803, &[100, 28, 28], &[0; 5000])).unwrap();
    let msg = expect_err(load_idx(&img, &lab, classes.clone()), &img, &["truncated", "100 images of 28x28", "78400 bytes", "5000 bytes"]);
    println!("{msg}");

    std::fs::write(&img, idx_bytes(0x804, &[100, 28, 28], &[0; 78400])).unwrap();
    expect_err(load_idx(&img, &lab, classes.clone()), &img, &["wrong magic number 0x00000804", "0x00000803"]);

    // Image and label files swapped.
    let msg = expect_err(load_idx(&lab, &img, classes.clone()), &lab, &["wrong magic number 0x00000801", "swapped"]);
    println!("{msg}");

    std::fs::write(&img, idx_bytes(0x803, &[99, 28, 28], &[0; 78400])).unwrap();
    expect_err(load_idx(&img, &lab, classes.clone()), &img, &["count does not match", "99 images"]);

    std::fs::write(&img, idx_bytes(0x803, &[100, 28, 28], &[0; 78400])).unwrap();
    std::fs::write(&lab, idx_bytes(0x801, &[90], &[1; 90])).unwrap();
    expect_err(load_idx(&img, &lab, classes.clone()), &lab, &["90 labels", "100 images"]);

    std::fs::write(&lab, idx_bytes(0x801, &[100], &[[1u8; 50], [12u8; 50]].concat())).unwrap();
    expect_err(load_idx(&img, &lab, classes.clone()), &lab, &["label 50 is 12", "10 classes"]);

    std::fs::write(&img, [0u8, 0, 8]).unwrap();
    expect_err(load_idx(&img, &lab, classes.clone()), &img, &["truncated", "magic number"]);

    // A truncated gzip stream (the committed label file cut in half).
    std::fs::write(&img, idx_bytes(0x803, &[100, 28, 28], &[0; 78400])).unwrap();
    let gz = std::fs::read(repo_file("ssl/data/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz")).unwrap();
    let cut = dir.join("cut.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    expect_err(load_idx(&img, &cut, classes.clone()), &cut, &["truncated gzip"]);

    let missing = dir.join("nope");
    let msg = expect_err(load_idx(&missing, &lab, classes.clone()), &missing, &["cannot read"]);
    println!("{msg}");
    let msg = expect_err(load_mnist(dir.join("absent"), Split::Test), &dir.join("absent"), &["dataset directory"]);
    println!("{msg}");
    let empty = temp_dir("idx-empty");
    let msg = expect_err(load_mnist(&empty, Split::Test), &empty.join("t10k-images-idx3-ubyte.gz"), &["not found"]);
    println!("{msg}");
}

/// A CIFAR record: label bytes then 3072 pixels.
fn cifar_record(labels: &[u8], fill: u8) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend((0..3072).map(|i| fill.wrapping_add(i as u8)));
    r
}

#[test]
fn cifar10_good_and_corrupted() {
    let dir = temp_dir("cifar10");
    for b in 1..=5u8 {
        let body: Vec<u8> = (0..3u8).flat_map(|i| cifar_record(&[(b + i) % 10], b * 10 + i)).collect();
        std::fs::write(dir.join(format!("data_batch_{b}.bin")), body).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), cifar_record(&[9], 0)).unwrap();
    let train = load_cifar10(&dir, Split::Train).unwrap();
    assert_eq!((train.len(), train.image_shape(), train.num_classes()), (15, [3, 32, 32], 10));
    assert_eq!(train.label(3), 2);
    assert_eq!(train.pixels(4)[0], 21);
    assert_eq!(train.classes()[0], "airplane");
    assert_eq!(load_cifar10(&dir, Split::Test).unwrap().labels(), &[9]);

    let bad = dir.join("data_batch_3.bin");
    let mut body = cifar_record(&[1], 0);
    body.extend_from_slice(&cifar_record(&[1], 0)[..1000]);
    std::fs::write(&bad, &body).unwrap();
    let msg = expect_err(load_cifar10(&dir, Split::Train), &bad, &["truncated", "1 whole 3073-byte records", "1000 extra bytes"]);
    println!("{msg}");
    std::fs::write(&bad, cifar_record(&[10], 0)).unwrap();
    expect_err(load_cifar10(&dir, Split::Train), &bad, &["label of record 0 is 10", "10 classes"]);
    std::fs::write(&bad, []).unwrap();
    expect_err(load_cifar10(&dir, Split::Train), &bad, &["empty"]);
    std::fs::remove_file(&bad).unwrap();
    expect_err(load_cifar10(&dir, Split::Train), &bad, &["not found"]);
    // A malformed class-name file is reported too.
    std::fs::write(dir.join("batches.meta.txt"), "cat\ndog\n").unwrap();
    expect_err(load_cifar10(&dir, Split::Test), &dir.join("batches.meta.txt"), &["2 class names", "expected 10"]);
}

#[test]
fn cifar100_good_and_corrupted() {
    let dir = temp_dir("cifar100");
    let body: Vec<u8> = [(3u8, 42u8), (19, 99), (0, 0)].iter().flat_map(|&(c, f)| cifar_record(&[c, f], f)).collect();
    std::fs::write(dir.join("train.bin"), &body).unwrap();
    let ds = load_cifar100(&dir, Split::Train).unwrap();
    assert_eq!(ds.labels(), &[42, 99, 0]);
    let (coarse, names) = ds.coarse().unwrap();
    assert_eq!((coarse, names.len(), ds.num_classes()), (&[3i64, 19, 0][..], 20, 100));
    assert_eq!(ds.classes()[99], "worm");
    assert_eq!(ds.pixels(1)[1], 100);

    let test = dir.join("test.bin");
    std::fs::write(&test, &body[..body.len() - 1]).unwrap();
    expect_err(load_cifar100(&dir, Split::Test), &test, &["truncated", "3074-byte records"]);
    std::fs::write(&test, cifar_record(&[20, 5], 0)).unwrap();
    expect_err(load_cifar100(&dir, Split::Test), &test, &["coarse label of record 0 is 20", "20 classes"]);
    std::fs::write(&test, cifar_record(&[2, 100], 0)).unwrap();
    expect_err(load_cifar100(&dir, Split::Test), &test, &["label of record 0 is 100"]);
}

#[test]
fn image_folder_good_and_corrupted() {
    let root = temp_dir("folder");
    let mut g = Generator::new(0);
    let mut rand_img = |h: usize, w: usize| Image::new(3, h, w, (0..3 * h * w).map(|_| g.next_f64() as f32).collect()).unwrap();
    for class in ["zebra", "apple"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    let a0 = rand_img(6, 5);
    save_image(root.join("apple/0.png"), &a0).unwrap();
    save_image(root.join("apple/1.jpg"), &rand_img(6, 5)).unwrap();
    save_image(root.join("zebra/z.PNG"), &rand_img(6, 5)).unwrap();
    std::fs::write(root.join("zebra/notes.txt"), "ignored").unwrap();
    let ds = load_image_folder(&root, FolderOptions::default()).unwrap();
    assert_eq!(ds.classes(), &["apple".to_string(), "zebra".to_string()]);
    assert_eq!((ds.len(), ds.image_shape(), ds.labels()), (3, [3, 6, 5], &[0i64, 0, 1][..]));
    // PNG is lossless: the first image comes back to within u8 rounding.
    let back = ds.image(0);
    assert!(back.data().iter().zip(a0.data()).all(|(a, b)| (a - b).abs() <= 0.5 / 255.0 + 1e-6));
    let gray = load_image_folder(&root, FolderOptions { channels: 1, size: Some((8, 4)), ..FolderOptions::default() }).unwrap();
    assert_eq!(gray.image_shape(), [1, 8, 4]);

    save_image(root.join("zebra/big.png"), &rand_img(7, 5)).unwrap();
    let big = root.join("zebra/big.png");
    expect_err(load_image_folder(&root, FolderOptions::default()), &big, &["7x5", "6x5"]);
    assert!(load_image_folder(&root, FolderOptions { channels: 3, size: Some((6, 5)), ..FolderOptions::default() }).is_ok());

    let broken = root.join("apple/2.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    let msg = expect_err(load_image_folder(&root, FolderOptions::default()), &broken, &["cannot decode image"]);
    println!("{msg}");
    std::fs::remove_file(&broken).unwrap();

    std::fs::create_dir_all(root.join("empty")).unwrap();
    expect_err(load_image_folder(&root, FolderOptions::default()), &root.join("empty"), &["no PNG or JPEG"]);
    let missing = root.join("missing");
    expect_err(load_image_folder(&missing, FolderOptions::default()), &missing, &["cannot list directory"]);
}

#[test]
fn embedded_subset_is_complete() {
    let train = fashion_mnist_subset(Split::Train).unwrap();
    let test = fashion_mnist_subset(Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (10_000, 2_000));
    assert_eq!(train.image_shape(), [1, 28, 28]);
    assert_eq!(train.classes()[9], "Ankle boot");
    // Every class is well represented in the first 10,000 training images.
    let mut counts = [0usize; 10];
    train.labels().iter().for_each(|&l| counts[l as usize] += 1);
    assert!(counts.iter().all(|&c| (900..=1100).contains(&c)), "{counts:?}");
    let (mean, std) = train.channel_mean_std();
    assert!((mean[0] - 0.286).abs() < 0.01 && (std[0] - 0.353).abs() < 0.01, "Fashion-MNIST's mean and std, got {mean:?} {std:?}");
    // The embedded files equal the committed ones loaded from disk.
    let disk = load_fashion_mnist(repo_file("ssl/data/fashion-mnist-subset"), Split::Train).unwrap();
    assert_eq!((disk.labels(), disk.pixels(9999)), (train.labels(), train.pixels(9999)));
}

#[test]
fn synthetic_colour_is_seeded_and_coloured() {
    let cfg = SyntheticConfig { len: 200, num_classes: 10, size: 32, seed: 4 };
    let a = synthetic_colour(cfg).unwrap();
    assert_eq!((a.len(), a.image_shape(), a.num_classes()), (200, [3, 32, 32], 10));
    assert_eq!(a, synthetic_colour(cfg).unwrap());
    assert_ne!(a.pixels(0), synthetic_colour(SyntheticConfig { seed: 5, ..cfg }).unwrap().pixels(0));
    assert_eq!(a.label(13), 3);
    // Colour: the channels differ, and class mean colours differ between classes.
    let mean_rgb = |ds: &Dataset, class: i64| {
        let mut m = [0.0f64; 3];
        let idx: Vec<usize> = (0..ds.len()).filter(|&i| ds.label(i) == class).collect();
        for &i in &idx {
            for (c, mc) in m.iter_mut().enumerate() {
                *mc += ds.pixels(i)[c * 1024..(c + 1) * 1024].iter().map(|&p| p as f64).sum::<f64>() / 1024.0;
            }
        }
        m.map(|v| v / idx.len() as f64)
    };
    let (m0, m1) = (mean_rgb(&a, 0), mean_rgb(&a, 1));
    let dist = m0.iter().zip(&m1).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    assert!(dist > 10.0, "class colours differ: {m0:?} vs {m1:?}");
    assert!((m0[0] - m0[1]).abs() + (m0[1] - m0[2]).abs() > 10.0, "not gray: {m0:?}");
    assert!(synthetic_colour(SyntheticConfig { num_classes: 21, ..cfg }).is_err());
    let dir = temp_dir("synthetic");
    for i in 0..4 {
        save_image(dir.join(format!("{i}.png")), &a.image(i)).unwrap();
    }
}
