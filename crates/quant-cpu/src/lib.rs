//! Quantized matrix products for CPU inference on GGUF's block formats (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0 and the K-quants Q4_K, Q5_K, Q6_K).
//!
//! Weights are repacked once at load ([`QuantMatrix`]); activations are quantized to 8 bits per
//! product ([`QuantizedRows`]), so every dot product is an integer dot per block of 32 plus one
//! float multiply-add (per super-block of 256 in the K-quants), as in ggml. Weight rows are interleaved sixteen at a time so that one
//! SIMD lane accumulates one output row. The SIMD kernels (AVX-512 VNNI or AVX2/FMA on x86-64,
//! NEON with or without `sdot` on aarch64) are chosen at run time, so a plugin built for the
//! baseline architecture runs them on any CPU that has them; elsewhere a scalar kernel computes
//! the same sums.

mod activations;
mod format;
mod ggml;
mod interleave;
mod kernels;
mod matrix;

pub use activations::{ActivationScales, QuantizedRows};
pub use format::{BLOCK, BlockFormat};
pub use kernels::{KERNELS_VARIABLE, kernel_name};
pub use matrix::{QuantMatrix, ShapeError};
