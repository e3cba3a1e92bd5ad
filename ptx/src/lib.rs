//! tessera's GPU kernels as PTX text, which the CUDA driver JIT-compiles at run time.
//!
//! The sources are CUDA C in `ptx/kernels/*.cu`; `scripts/gen-ptx.py` compiles them with
//! NVRTC (pinned PyPI wheel) for `compute_80`, so one PTX module runs on Ampere and Hopper.
//! The PTX is committed: building tessera never needs a CUDA toolkit. CI regenerates it and
//! fails if it differs from the sources (`scripts/check-ptx.sh`), and assembles every module
//! with `ptxas` for sm_80 and sm_90.

/// One PTX module: a name the engine caches it under, and its text.
#[derive(Debug, Clone, Copy)]
pub struct Module {
    pub name: &'static str,
    pub ptx: &'static str,
}

macro_rules! modules {
    ($($(#[$doc:meta])* $konst:ident = $file:literal),* $(,)?) => {
        $( $(#[$doc])* pub const $konst: Module = Module { name: $file, ptx: include_str!(concat!("ptx/", $file, ".ptx")) }; )*
        /// Every module, for tools that check or preload them all.
        pub const ALL: &[Module] = &[$($konst),*];
    };
}

modules! {
    /// Strided copy, unary ops and their backward, broadcasting binary ops, comparisons,
    /// where, casts, fill.
    ELEMENTWISE = "elementwise",
    /// Batched strided matrix products: exact f32 / f64, TF32 and bf16 tensor cores.
    MATMUL = "matmul",
    /// Tensor-core GEMM shapes that are tuning candidates (loaded only when asked for).
    MATMUL_TUNE = "matmul_tune",
    /// im2col / col2im for unfold, fold and the matmul-based convolutions; bias store.
    CONV = "conv",
    /// Max (with indices), average and adaptive average 2-D pooling and their backward.
    POOL = "pool",
    /// Row and column reductions (sum, mean, max, min, var, logsumexp), argmax/argmin, extreme masks.
    REDUCE = "reduce",
    /// softmax and log_softmax along the last dim, and their backward.
    SOFTMAX = "softmax",
    /// Batch norm and layer norm, forward and backward.
    NORM = "norm",
    /// Per-row bitonic sort for argsort and topk.
    SORT = "sort",
    /// Index checks, gather / index_select, index_add, scatter_add, masked_fill, one_hot,
    /// strided-into-strided copies (cat), pad and its reflect backward, tile (repeat).
    INDEX = "index",
    /// The counter-based random fills of engine/src/cpu/random.rs, bit for bit.
    RANDOM = "random",
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_module_is_sm80_ptx_of_an_isa_the_h100_driver_takes() {
        for m in super::ALL {
            let version = m.ptx.lines().find_map(|l| l.strip_prefix(".version ")).expect("a .version line");
            let major: u32 = version.split('.').next().unwrap().trim().parse().unwrap();
            assert!(major <= 8, "{}: PTX ISA {version} is newer than 8.x", m.name);
            assert!(m.ptx.contains(".target sm_80"), "{}: not built for sm_80", m.name);
        }
    }
}
