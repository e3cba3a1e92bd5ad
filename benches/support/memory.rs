//! Process memory figures shared by the benchmark programs (benches/models.rs,
//! examples/bench_ops.rs); scripts/torch/memory.py measures PyTorch the same way.

/// Peak resident set (VmHWM) in bytes, after resetting it when `reset` (Linux; 0 elsewhere).
pub fn peak_rss(reset: bool) -> usize {
    if reset {
        // Writing 5 to clear_refs restarts the peak from the current resident set.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok());
    kib.unwrap_or(0) * 1024
}
