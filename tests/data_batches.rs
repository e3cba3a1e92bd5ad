//! The data loader: batching, views, shuffling, prefetching, and reproducibility across
//! thread counts.

use std::sync::Arc;

use tessera_ssl::data::augment::{CenterCrop, RandomResizedCrop};
use tessera_ssl::data::*;

fn small_dataset(n: usize) -> Arc<Dataset> {
    Arc::new(synthetic_colour(SyntheticConfig { len: n, num_classes: 10, size: 32, seed: 1 }).unwrap())
}

fn simclr_views(n: usize) -> Vec<Arc<dyn Transform>> {
    let p: Arc<dyn Transform> = Arc::new(simclr(&SimclrConfig::cifar(32)).unwrap());
    vec![p; n]
}

fn cfg(batch_size: usize, drop_last: bool) -> LoaderConfig {
    LoaderConfig { batch_size, shuffle: true, drop_last, seed: 42, prefetch: 2, num_threads: None }
}

fn all_batches(loader: &DataLoader, epoch: u64) -> Vec<Batch> {
    loader.epoch(epoch).collect::<Result<Vec<_>>>().unwrap()
}

#[test]
fn batches_cover_the_epoch_with_consistent_views() {
    let ds = small_dataset(70);
    let loader = DataLoader::new(ds.clone(), simclr_views(2), cfg(16, false)).unwrap();
    assert_eq!(loader.num_batches(), 5);
    let batches = all_batches(&loader, 0);
    assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![16, 16, 16, 16, 6]);
    let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_ne!(seen, (0..70).collect::<Vec<_>>(), "shuffled");
    seen.sort();
    assert_eq!(seen, (0..70).collect::<Vec<_>>(), "each image once per epoch");
    for b in &batches {
        assert_eq!(b.views.len(), 2);
        for v in &b.views {
            assert_eq!(v.shape, [b.len(), 3, 32, 32]);
            assert_eq!(v.data.len(), b.len() * 3 * 1024);
            assert!(v.data.iter().all(|x| (0.0..=1.0).contains(x)));
        }
        assert_ne!(b.views[0].data, b.views[1].data, "two different views");
        assert!(b.indices.iter().zip(&b.labels).all(|(&i, &l)| ds.label(i) == l));
        let t = b.view_tensor(1).unwrap();
        assert_eq!(t.shape(), &[b.len(), 3, 32, 32]);
        assert_eq!(t.to_vec::<f32>().unwrap(), b.views[1].data);
        assert_eq!(b.labels_tensor().unwrap().to_vec::<i64>().unwrap(), b.labels);
    }
    assert!(batches[0].view_tensor(2).is_err());

    let dropping = DataLoader::new(ds.clone(), simclr_views(1), cfg(16, true)).unwrap();
    assert_eq!(all_batches(&dropping, 0).len(), 4);
    let epoch1 = all_batches(&dropping, 1);
    assert_ne!(epoch1[0].indices, all_batches(&dropping, 0)[0].indices, "a new order each epoch");
    assert_eq!(dropping.batch(1, 2).unwrap(), epoch1[2], "direct access equals the prefetched batch");
    assert!(dropping.batch(1, 4).is_err());
}

#[test]
fn multi_crop_views_have_their_own_pipelines() {
    let ds = small_dataset(20);
    let global: Arc<dyn Transform> = Arc::new(RandomResizedCrop::square(24, (0.4, 1.0)).unwrap());
    let local: Arc<dyn Transform> = Arc::new(RandomResizedCrop::square(12, (0.05, 0.4)).unwrap());
    let views = vec![global.clone(), global, local.clone(), local.clone(), local];
    let loader = DataLoader::new(ds, views, LoaderConfig { batch_size: 8, ..cfg(8, true) }).unwrap();
    let b = loader.batch(0, 0).unwrap();
    let shapes: Vec<[usize; 4]> = b.views.iter().map(|v| v.shape).collect();
    assert_eq!(shapes, vec![[8, 3, 24, 24], [8, 3, 24, 24], [8, 3, 12, 12], [8, 3, 12, 12], [8, 3, 12, 12]]);
    let tensors = b.into_view_tensors().unwrap();
    assert_eq!(tensors[4].shape(), &[8, 3, 12, 12]);
}

#[test]
fn same_seed_same_pixels_at_any_thread_count() {
    let ds = small_dataset(48);
    let run = |threads: usize| -> Vec<Batch> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let loader = DataLoader::new(ds.clone(), simclr_views(2), cfg(12, true)).unwrap();
            let mut out = all_batches(&loader, 3);
            out.push(loader.batch(4, 1).unwrap());
            out
        })
    };
    let one = run(1);
    let two = run(2);
    assert_eq!(one.len(), 5);
    assert_eq!(one, two, "1 and 2 threads give identical batches");
    // An explicit thread count for the loader's own pool changes nothing either.
    let three = DataLoader::new(ds.clone(), simclr_views(2), LoaderConfig { num_threads: Some(3), ..cfg(12, true) }).unwrap();
    assert_eq!(all_batches(&three, 3), one[..4].to_vec());
    // A different seed changes both the order and the pixels.
    let other = DataLoader::new(ds.clone(), simclr_views(2), LoaderConfig { seed: 43, ..cfg(12, true) }).unwrap();
    assert_ne!(all_batches(&other, 3)[0].indices, one[0].indices);
    // A sample's pixels depend on (seed, epoch, index, view), not on its batch or position.
    let unshuffled = DataLoader::new(ds, simclr_views(2), LoaderConfig { shuffle: false, ..cfg(12, true) }).unwrap();
    let i = one[0].indices[5];
    let plain = unshuffled.batch(3, i / 12).unwrap();
    let (a, b) = (&one[0].views[1].data[5 * 3072..6 * 3072], &plain.views[1].data[(i % 12) * 3072..(i % 12 + 1) * 3072]);
    assert_eq!(a, b);
}

#[test]
fn errors_surface_and_early_drop_stops_the_thread() {
    let ds = small_dataset(30);
    // A crop larger than the image fails inside the workers: the error comes out of the iterator.
    let bad: Arc<dyn Transform> = Arc::new(CenterCrop::new((40, 40)).unwrap());
    let loader = DataLoader::new(ds.clone(), vec![bad], cfg(10, true)).unwrap();
    let items: Vec<Result<Batch>> = loader.epoch(0).collect();
    assert_eq!(items.len(), 1, "the epoch ends at the first error");
    let msg = items[0].as_ref().unwrap_err().to_string();
    assert!(msg.contains("CenterCrop") && msg.contains("40x40"), "{msg}");
    // Dropping an iterator after one batch returns promptly.
    let loader = DataLoader::new(ds.clone(), simclr_views(2), cfg(5, true)).unwrap();
    let mut it = loader.epoch(0);
    assert!(it.next().unwrap().is_ok());
    assert_eq!(it.remaining(), 5);
    drop(it);
    assert!(DataLoader::new(ds.clone(), vec![], cfg(5, true)).is_err());
    assert!(DataLoader::new(ds, simclr_views(1), cfg(0, true)).is_err());
}

#[test]
fn embedded_dataset_through_the_simclr_loader() {
    let train = Arc::new(fashion_mnist_subset(Split::Train).unwrap().take(512));
    let p: Arc<dyn Transform> = Arc::new(simclr(&SimclrConfig::fashion_mnist()).unwrap());
    let loader = DataLoader::with_views(train, p, 2, cfg(128, true)).unwrap();
    let batches = all_batches(&loader, 0);
    assert_eq!(batches.len(), 4);
    assert_eq!(batches[0].views[0].shape, [128, 1, 28, 28]);
}
