//! An op-level GPU profiler for finding where a training step's time goes: when enabled,
//! every kernel launch waits for the work queued before it, then for itself, and its wall
//! time is added to its engine op's total. That serializes the stream, so totals are for
//! attribution, not for absolute speed.
//!
//! ```no_run
//! tessera_engine::cuda::profile::enable(true);
//! // ... run some steps on a GPU ...
//! for (op, calls, secs) in tessera_engine::cuda::profile::report() {
//!     println!("{op}: {calls} launches, {:.2} ms", secs * 1e3);
//! }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<Option<HashMap<&'static str, (usize, f64)>>> = Mutex::new(None);

/// Turns profiling on or off; turning it on clears the totals.
pub fn enable(on: bool) {
    if on {
        *TOTALS.lock().unwrap() = Some(HashMap::new());
    }
    ENABLED.store(on, Relaxed);
}

pub(crate) fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Adds one launch of `op` that took from `start` until now.
pub(crate) fn record(op: &'static str, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    if let Some(t) = TOTALS.lock().unwrap().as_mut() {
        let e = t.entry(op).or_default();
        e.0 += 1;
        e.1 += secs;
    }
}

/// `(op, kernel launches, seconds)` since profiling was enabled, the most expensive first.
pub fn report() -> Vec<(&'static str, usize, f64)> {
    let mut v: Vec<_> = TOTALS.lock().unwrap().iter().flatten().map(|(&op, &(n, s))| (op, n, s)).collect();
    v.sort_by(|a, b| b.2.total_cmp(&a.2));
    v
}
