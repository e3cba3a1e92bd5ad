//! Keeping freed tensor memory in the process instead of handing it back to the kernel.
//!
//! glibc's malloc serves large blocks with a fresh `mmap` and unmaps them on `free` (or trims
//! the heap top past 128 KiB): every activation of a training step then comes back as new
//! pages, which the kernel zeroes on first touch — `clear_page` and page faults were ~10% of
//! a ViT-Tiny MAE step's profile, the cost candle pays for a fresh buffer per op. A step
//! allocates the same sizes every time, so holding on to freed memory lets the next step
//! reuse it: `perf` and the models bench showed MAE's step 13–30% faster (a shared machine,
//! alternating runs). The price is a resident size that stays at the step's peak, as
//! PyTorch's caching allocators do.

/// Asks glibc to serve every block from its heap — never from a fresh `mmap` — to never
/// trim the heap and to grow it in 256 MiB steps. Call once at start, before worker threads
/// allocate. Returns whether every setting was accepted; elsewhere than glibc it does
/// nothing and returns false.
///
/// glibc's `mmap` threshold stops at 32 MiB, and a ViT-Tiny's MLP activations at batch 256
/// (12,800 tokens × 768 features, 39 MB) are larger: with the threshold at its maximum they
/// still came back as fresh pages every step (39,000 page faults a SimMIM step). Turning
/// `mmap` off (`M_MMAP_MAX = 0`) serves them from the heap too: 3,300 faults a step, and the
/// step 10–16% faster with the same peak resident size (BENCHMARKS, eighteenth session).
/// glibc still falls back to `mmap` where the heap cannot grow.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes malloc's tuning parameters under glibc's own lock;
        // out-of-range values are refused (it returns 0), never undefined.
        unsafe {
            let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            let pad = libc::mallopt(libc::M_TOP_PAD, 256 << 20);
            let mmap = libc::mallopt(libc::M_MMAP_MAX, 0);
            trim == 1 && pad == 1 && mmap == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_every_setting() {
        assert_eq!(super::retain_freed_memory(), cfg!(all(target_os = "linux", target_env = "gnu")));
    }
}
