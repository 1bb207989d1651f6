//! The x86-64 instruction-set paths. This whole module is compiled on x86-64
//! only (`#[cfg(target_arch = "x86_64")] mod x86;` in the crate root), so no
//! item below needs a cfg of its own; on other targets the portable paths run.

pub(crate) mod conv1d;
pub(crate) mod gemm256;
pub(crate) mod gemm512;
pub(crate) mod pool256;
pub(crate) mod pool512;
