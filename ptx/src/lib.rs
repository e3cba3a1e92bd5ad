//! tessera's GPU kernels as PTX text (filled in by the CUDA backend work).
