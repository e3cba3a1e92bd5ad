//! Augmentation throughput of the data loader: the SimCLR pipeline, two views per image,
//! on the embedded Fashion-MNIST subset (1×28×28), and on synthetic colour data (3×32×32,
//! SimCLR's CIFAR recipe), with 1 and 2 worker threads. Throughput is in augmented images
//! (views) per second: one batch of 256 images gives 512.
//!
//! Run: `cargo bench --bench data_pipeline -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tessera_ssl::data::{
    fashion_mnist_subset, simclr, synthetic_colour, DataLoader, Dataset, LoaderConfig, SimclrConfig, Split, SyntheticConfig, Transform,
};

const BATCH: usize = 256;

fn bench_pipeline(c: &mut Criterion, group_name: &str, dataset: Arc<Dataset>, cfg: &SimclrConfig) {
    let pipeline: Arc<dyn Transform> = Arc::new(simclr(cfg).expect("valid SimCLR config"));
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements((2 * BATCH) as u64));
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        let loader_cfg = LoaderConfig { batch_size: BATCH, num_threads: Some(threads), ..LoaderConfig::default() };
        let loader = DataLoader::with_views(dataset.clone(), pipeline.clone(), 2, loader_cfg).expect("loader");
        let batches = loader.num_batches();
        group.bench_with_input(BenchmarkId::new("two_views", format!("{threads}_threads")), &threads, |b, _| {
            let mut k = 0usize;
            b.iter(|| {
                // Walk through epochs so every iteration augments fresh samples.
                let batch = pool.install(|| loader.batch((k / batches) as u64, k % batches)).expect("batch");
                k += 1;
                batch
            })
        });
    }
    group.finish();
}

fn simclr_fashion_mnist(c: &mut Criterion) {
    let train = Arc::new(fashion_mnist_subset(Split::Train).expect("embedded dataset"));
    bench_pipeline(c, "simclr_fashion_mnist_28x28", train, &SimclrConfig::fashion_mnist());
}

fn simclr_synthetic_colour(c: &mut Criterion) {
    let data = Arc::new(synthetic_colour(SyntheticConfig { len: 2048, ..SyntheticConfig::default() }).expect("synthetic dataset"));
    bench_pipeline(c, "simclr_synthetic_colour_32x32", data, &SimclrConfig::cifar(32));
}

criterion_group!(benches, simclr_fashion_mnist, simclr_synthetic_colour);
criterion_main!(benches);
