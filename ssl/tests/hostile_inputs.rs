//! Hostile and broken input files: the cases issue 21 found, each ending in one clear line
//! naming the file, fast and within a memory bound; the regression inputs kept in
//! `tests/fuzz/regressions/<target>/`; and a seeded mutation fuzzer over every parser a
//! user's files reach, a few hundred cases per target here and as long as asked by
//! `scripts/fuzz.sh` (the `fuzz_long` test, ignored by default).
//!
//! Every case is checked for: no panic, an error (if any) on one line naming a file of the
//! case, under [`CASE_SECONDS`], and under [`CASE_BYTES`] of peak heap above the baseline
//! (a counting allocator wraps the system one in this test binary). Tests here run one at
//! a time ([`serial`]) so that each sees only its own allocations.

mod fuzz;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fuzz::mutate::{mutate, Rng};
use fuzz::targets::{self, gzip, idx_images, Target, TARGETS};

/// The longest one case may take.
const CASE_SECONDS: f64 = 1.0;
/// The most heap one case may hold at once above what was live before it.
const CASE_BYTES: usize = 64 << 20;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            PEAK.fetch_max(LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            PEAK.fetch_max(LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = System.realloc(p, layout, new_size);
        if !q.is_null() {
            // Counted as old + new while both may exist, then settled to the new size.
            PEAK.fetch_max(LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One test at a time in this binary, so the peak a case sees is its own.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn case_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tessera-hostile-{}-{name}", std::process::id()))
}

/// What one case cost.
struct Cost {
    time: Duration,
    bytes: usize,
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Runs `input` through `target` in a fresh folder; `Err` says which check failed.
fn run_case(target: &Target, dir: &Path, input: &[u8]) -> Result<(Cost, Option<String>), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| (target.run)(dir, input)));
    let cost = Cost { time: start.elapsed(), bytes: PEAK.load(Ordering::Relaxed).saturating_sub(base) };
    let error = match result {
        Err(p) => return Err(format!("panicked: {}", panic_text(p.as_ref()))),
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            if !e.contains(&*dir.to_string_lossy()) {
                return Err(format!("the error names no file of the case: {e}"));
            }
            if e.contains('\n') {
                return Err(format!("the error is not one line: {e}"));
            }
            Some(e)
        }
    };
    if cost.time.as_secs_f64() > CASE_SECONDS {
        return Err(format!("took {:.2} s ({error:?})", cost.time.as_secs_f64()));
    }
    if cost.bytes > CASE_BYTES {
        return Err(format!("held {} MiB at once ({error:?})", cost.bytes >> 20));
    }
    // A case that passed leaves nothing behind; a failing one keeps its folder to be read.
    let _ = std::fs::remove_dir_all(dir);
    Ok((cost, error))
}

/// What a fuzzing run saw.
#[derive(Default)]
struct Figures {
    cases: usize,
    errors: usize,
    slowest: Duration,
    peak: usize,
}

/// Mutates the target's seeds for `cases` cases or `seconds`, whichever ends first. A
/// failing input is saved under `target/fuzz-failures/<target>/` (move it into
/// `tests/fuzz/regressions/<target>/` to keep it) and fails the test.
fn fuzz(target: &Target, seed: u64, cases: usize, seconds: f64) -> Figures {
    let seeds = target.all_seeds();
    let dir = case_dir(target.name);
    let start = Instant::now();
    let mut fig = Figures::default();
    while fig.cases < cases && start.elapsed().as_secs_f64() < seconds {
        let mut rng = Rng::new(seed ^ (fig.cases as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let input = mutate(&seeds[rng.below(seeds.len())], &mut rng);
        match run_case(target, &dir, &input) {
            Ok((cost, error)) => {
                fig.errors += error.is_some() as usize;
                fig.slowest = fig.slowest.max(cost.time);
                fig.peak = fig.peak.max(cost.bytes);
            }
            Err(why) => {
                let keep = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/fuzz-failures")
                    .join(target.name)
                    .join(format!("seed{seed}-case{}", fig.cases));
                std::fs::create_dir_all(keep.parent().unwrap()).unwrap();
                std::fs::write(&keep, &input).unwrap();
                panic!("{}: case {} (seed {seed}) {why}; input saved to {}", target.name, fig.cases, keep.display());
            }
        }
        fig.cases += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    fig
}

fn report(name: &str, f: &Figures) -> String {
    format!(
        "{name:<13} {:>7} cases, {:>7} errors, slowest {:>6.1} ms, peak {:>6.1} MiB",
        f.cases,
        f.errors,
        f.slowest.as_secs_f64() * 1e3,
        f.peak as f64 / (1 << 20) as f64
    )
}

/// The short run `cargo test` does: a fixed seed, a few hundred cases per target.
fn fuzz_short(name: &str) {
    let _guard = serial();
    let f = fuzz(targets::target(name), 21, 300, 20.0);
    println!("{}", report(name, &f));
    assert!(f.cases >= 50, "{name}: only {} cases ran", f.cases);
}

#[test]
fn fuzz_idx() {
    fuzz_short("idx");
}

#[test]
fn fuzz_idx_gz() {
    fuzz_short("idx_gz");
}

#[test]
fn fuzz_cifar() {
    fuzz_short("cifar");
}

#[test]
fn fuzz_image_folder() {
    fuzz_short("image_folder");
}

#[test]
fn fuzz_checkpoint() {
    fuzz_short("checkpoint");
}

#[test]
fn fuzz_run_config() {
    fuzz_short("run_config");
}

/// `scripts/fuzz.sh`: every target (or `FUZZ_TARGET`) for `FUZZ_SECONDS` each (default
/// 60), from `FUZZ_SEED` (default: the clock).
#[test]
#[ignore = "long: run by scripts/fuzz.sh"]
fn fuzz_long() {
    let _guard = serial();
    let env = |k: &str| std::env::var(k).ok();
    let seconds: f64 = env("FUZZ_SECONDS").and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let seed: u64 = env("FUZZ_SEED")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    let only = env("FUZZ_TARGET");
    println!("seed {seed}, {seconds} s per target; bounds: {CASE_SECONDS} s and {} MiB per case", CASE_BYTES >> 20);
    for t in TARGETS.iter().filter(|t| only.as_deref().is_none_or(|o| o == t.name)) {
        let f = fuzz(t, seed, usize::MAX, seconds);
        println!("{}", report(t.name, &f));
    }
}

/// Every committed seed is a valid input of its target: it loads without error (a file
/// format changed under it otherwise; rewrite them with `write_seeds`).
#[test]
fn committed_seeds_load() {
    let _guard = serial();
    for t in TARGETS {
        let seeds = t.committed_seeds();
        assert!(!seeds.is_empty(), "{}: no seeds under {}", t.name, t.seed_dir().display());
        for (path, input) in seeds {
            let (_, error) =
                run_case(t, &case_dir(&format!("seed-{}", t.name)), &input).unwrap_or_else(|why| panic!("{}: {why}", path.display()));
            assert!(
                error.is_none(),
                "{}: no longer loads ({}); rewrite the seeds: cargo test -p tessera-ssl --test hostile_inputs write_seeds -- --ignored",
                path.display(),
                error.unwrap()
            );
        }
    }
}

/// Rewrites `tests/fuzz/seeds/<target>/` from the generators in `fuzz/targets.rs`.
#[test]
#[ignore = "rewrites the committed seeds: run after a file format changes"]
fn write_seeds() {
    let _guard = serial();
    for t in TARGETS {
        let dir = t.seed_dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in (t.seeds)() {
            std::fs::write(dir.join(&name), &bytes).unwrap();
            println!("{}/{name}: {} bytes", t.name, bytes.len());
        }
    }
}

/// Every input kept in `tests/fuzz/regressions/<target>/` passes the case checks.
#[test]
fn fuzz_regressions() {
    let _guard = serial();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions");
    let mut ran = 0;
    for t in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(t.name)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            if let Err(why) = run_case(t, &case_dir(&format!("regression-{}", t.name)), &input) {
                panic!("{}: {why}", path.display());
            }
            ran += 1;
        }
    }
    assert!(ran > 0, "no regression inputs under {}", root.display());
}

// The cases issue 21 found, under the default limits.

/// The input as the only image of a folder, loaded with the default limits.
const DEFAULT_FOLDER: Target = Target {
    name: "image_folder_default",
    seeds: Vec::new,
    run: |dir, input| {
        let ext = if input.starts_with(b"\x89PNG") { "png" } else { "jpg" };
        for name in ["a", "b"] {
            let p = dir.join(format!("root/class/{name}.{ext}"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, input).unwrap();
        }
        tessera_ssl::data::load_image_folder(dir.join("root"), Default::default()).map(|_| ()).map_err(|e| e.to_string())
    },
};

fn seed_image(ext: &str) -> Vec<u8> {
    let dir = case_dir(&format!("seed-{ext}"));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("seed.{ext}"));
    let img = tessera_ssl::data::Image::new(3, 8, 8, vec![0.5; 192]).unwrap();
    tessera_ssl::data::save_image(&p, &img).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// Runs one crafted case; it must fail with `needles` in its error.
fn expect_refused(target: &Target, name: &str, input: &[u8], needles: &[&str]) {
    let _guard = serial();
    let (cost, error) = run_case(target, &case_dir(name), input).unwrap_or_else(|why| panic!("{name}: {why}"));
    let error = error.unwrap_or_else(|| panic!("{name}: was accepted"));
    for n in needles {
        assert!(error.contains(n), "{name}: expected '{n}' in: {error}");
    }
    println!("{name}: {:.1} ms, {:.1} MiB: {error}", cost.time.as_secs_f64() * 1e3, cost.bytes as f64 / (1 << 20) as f64);
}

#[test]
fn a_jpeg_header_declaring_4096x65535_is_refused_before_decoding() {
    let mut jpeg = seed_image("jpg");
    // Baseline start-of-frame: FF C0, length, precision, then height and width.
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG");
    jpeg[sof + 5..sof + 7].copy_from_slice(&65535u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&4096u16.to_be_bytes());
    expect_refused(&DEFAULT_FOLDER, "jpeg-4096x65535", &jpeg, &["a.jpg", "declares 4096x65535", "over the budget"]);
}

#[test]
fn a_png_header_declaring_20000x20000_is_refused_before_decoding() {
    let mut png = seed_image("png");
    // IHDR's data follows the signature (8), its length (4) and type (4); the CRC covers
    // type and data, so it is recomputed for the decoder to reach the size check.
    png[16..20].copy_from_slice(&20000u32.to_be_bytes());
    png[20..24].copy_from_slice(&20000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&png[12..29]);
    png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    expect_refused(&DEFAULT_FOLDER, "png-20000x20000", &png, &["a.png", "declares 20000x20000", "400000000 pixels"]);
}

#[test]
fn concatenated_gzip_members_stop_at_the_declared_size() {
    // A valid 10-image file, then 1000 more members of 1 MiB of zeros each: 1 GiB
    // unpacked from about 1 MB.
    let mut gz = gzip(&idx_images(10));
    let zeros = gzip(&vec![0u8; 1 << 20]);
    for _ in 0..1000 {
        gz.extend_from_slice(&zeros);
    }
    expect_refused(
        targets::target("idx_gz"),
        "idx-gz-members",
        &gz,
        &["train-images-idx3-ubyte", "declares 10 images of 28x28", "decompressed stream is larger", "stopped"],
    );
}

/// An IDX header declaring `n` images of 28×28, then `members` gzip members of 1 MiB of
/// zeros each (about 1 KB compressed apiece).
fn header_then_zero_members(n: u32, members: usize) -> Vec<u8> {
    let mut raw = idx_images(0);
    raw[4..8].copy_from_slice(&n.to_be_bytes());
    let mut gz = gzip(&raw);
    let zeros = gzip(&vec![0u8; 1 << 20]);
    for _ in 0..members {
        gz.extend_from_slice(&zeros);
    }
    gz
}

#[test]
fn a_huge_declared_count_over_concatenated_members_is_bounded_before_decompressing() {
    let target = targets::target("idx_gz");
    let file = "train-images-idx3-ubyte";
    // 2^31 images (1.6 TB) over a gigabyte of members in about 1 MB: refused from the
    // header by the absolute cap, before the body is decompressed or allocated.
    let cap = format!("over the cap of {} bytes", tessera_ssl::data::MAX_IDX_BYTES);
    let needles = [file, "declares 2147483648 images of 28x28 (1683627180032 bytes)", cap.as_str()];
    expect_refused(target, "idx-gz-2pow31", &header_then_zero_members(1 << 31, 1000), &needles);
    // 2^20 images (822 MB) is under the cap, but more than a 100 KB gzip file can hold.
    let needles = [file, "truncated", "1048576 images of 28x28", "gzip file decompresses to at most"];
    expect_refused(target, "idx-gz-2pow20", &header_then_zero_members(1 << 20, 100), &needles);
    // 2^14 images (12.8 MB), which the file could hold, over 100 MiB of members: read up to
    // the declared size and one byte, no further.
    let needles = [file, "declares 16384 images of 28x28", "decompressed stream is larger", "stopped"];
    expect_refused(target, "idx-gz-2pow14", &header_then_zero_members(1 << 14, 100), &needles);
}

#[test]
fn a_checkpoint_position_past_the_schedule_is_refused() {
    use tessera_ssl::train::TrainState;
    for (state, needle) in [
        (TrainState { epoch: 1, batch: 4, step: u64::MAX }, "step 18446744073709551615"),
        (TrainState { epoch: (1 << 63) - 1, batch: 0, step: 0 }, "epoch 9223372036854775807"),
        (TrainState { epoch: usize::MAX, batch: usize::MAX, step: u64::MAX }, "3 epochs of 10 steps"),
        (TrainState { epoch: 1, batch: 4, step: 13 }, "is step 14, not 13"),
        (TrainState { epoch: 3, batch: 1, step: 31 }, "3 epochs of 10 steps"),
    ] {
        let err = state.check_schedule(3, 10).unwrap_err();
        assert!(err.message().contains(needle), "{state:?}: {err}");
    }
    assert!(TrainState { epoch: 3, batch: 0, step: 30 }.check_schedule(3, 10).is_ok());
    assert!(TrainState { epoch: 2, batch: 9, step: 29 }.check_schedule(3, 10).is_ok());
}
