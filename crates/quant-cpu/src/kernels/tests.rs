//! The kernels against the scalar reference, and the products against f32 arithmetic on the
//! dequantized weights.

use super::{Kernels, scalar};
use crate::{
    ActivationScales, BLOCK, BlockFormat, QuantMatrix, QuantizedRows, format::SUPER_BLOCK,
    interleave::GROUP,
};
use half::f16;
use rand::{Rng, SeedableRng, rngs::StdRng};

const FORMATS: [BlockFormat; 8] = [
    BlockFormat::Q4_0,
    BlockFormat::Q4_1,
    BlockFormat::Q5_0,
    BlockFormat::Q5_1,
    BlockFormat::Q8_0,
    BlockFormat::Q4_K,
    BlockFormat::Q5_K,
    BlockFormat::Q6_K,
];

/// GGUF block bytes with random scales, minimums and values (8-bit values include -128, which
/// a file may hold even though ggml's quantizer never writes it; K-quant scales take every
/// value their bits can hold).
fn random_ggml(format: BlockFormat, rows: usize, cols: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = Vec::new();
    let half = |rng: &mut StdRng, range: std::ops::Range<f32>| {
        f16::from_f32(rng.random_range(range)).to_le_bytes()
    };
    for _ in 0..rows * cols / format.ggml_block_values() {
        let start = bytes.len();
        bytes.extend((0..format.ggml_block_bytes()).map(|_| rng.random::<u8>()));
        let block = &mut bytes[start..];
        match format {
            BlockFormat::Q4_K | BlockFormat::Q5_K => {
                block[..2].copy_from_slice(&half(rng, 0.0001..0.002));
                block[2..4].copy_from_slice(&half(rng, 0.0001..0.01));
            }
            BlockFormat::Q6_K => block[208..].copy_from_slice(&half(rng, 0.00001..0.001)),
            _ => {
                block[..2].copy_from_slice(&half(rng, 0.001..0.1));
                if matches!(format, BlockFormat::Q4_1 | BlockFormat::Q5_1) {
                    block[2..4].copy_from_slice(&half(rng, -0.5..0.5));
                }
            }
        }
    }
    bytes
}

fn random_activations(len: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-4.0..4.0)).collect()
}

#[test]
fn a_known_block_dequantizes_as_ggml_lays_it_out() {
    // Q4_1: d = 0.5, m = -1; byte j holds value j in its low nibble and value j + 16 in its high.
    let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
    block.extend(f16::from_f32(-1.0).to_le_bytes());
    block.extend((0..16u8).map(|j| j | (15 - j) << 4));
    let matrix = QuantMatrix::from_ggml(BlockFormat::Q4_1, 1, BLOCK, &block).unwrap();
    let mut row = [0f32; BLOCK];
    matrix.dequantize_row(0, &mut row);
    for j in 0..16 {
        assert_eq!(row[j], 0.5 * j as f32 - 1.0);
        assert_eq!(row[j + 16], 0.5 * (15 - j) as f32 - 1.0);
    }

    // Q4_0: d = 2, values centred on 8.
    let mut block = f16::from_f32(2.0).to_le_bytes().to_vec();
    block.extend([0x8F; 16]);
    let matrix = QuantMatrix::from_ggml(BlockFormat::Q4_0, 1, BLOCK, &block).unwrap();
    matrix.dequantize_row(0, &mut row);
    assert!(row[..16].iter().all(|&v| v == 14.0));
    assert!(row[16..].iter().all(|&v| v == 0.0));

    // Q5_1: d = 0.5, m = 1; fifth bits set for values 3 and 20 only.
    let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
    block.extend(f16::from_f32(1.0).to_le_bytes());
    block.extend((1u32 << 3 | 1 << 20).to_le_bytes());
    block.extend((0..16u8).map(|j| j | (15 - j) << 4));
    let matrix = QuantMatrix::from_ggml(BlockFormat::Q5_1, 1, BLOCK, &block).unwrap();
    matrix.dequantize_row(0, &mut row);
    for j in 0..16 {
        let high = |i: usize| if i == 3 || i == 20 { 16.0 } else { 0.0 };
        assert_eq!(row[j], 0.5 * (j as f32 + high(j)) + 1.0);
        assert_eq!(row[j + 16], 0.5 * ((15 - j) as f32 + high(j + 16)) + 1.0);
    }

    // Q8_0: d = 0.25, signed bytes.
    let mut block = f16::from_f32(0.25).to_le_bytes().to_vec();
    block.extend((0..32).map(|j: i8| (j - 16) as u8));
    let matrix = QuantMatrix::from_ggml(BlockFormat::Q8_0, 1, BLOCK, &block).unwrap();
    matrix.dequantize_row(0, &mut row);
    for (j, v) in row.iter().enumerate() {
        assert_eq!(*v, 0.25 * (j as f32 - 16.0));
    }
}

/// Every product equals f32 arithmetic on the dequantized weights, within the error that
/// quantizing the activations to 8 bits allows: per group of activations sharing a scale (a
/// block, or a super-block for the K-quants), half a quantization step times the sum of the
/// weights' magnitudes (plus float rounding).
#[test]
fn products_match_f32_arithmetic_on_dequantized_weights() {
    let mut rng = StdRng::seed_from_u64(7);
    let (n, k) = (37, 8 * BLOCK);
    for format in FORMATS {
        let k = k.next_multiple_of(format.ggml_block_values());
        let matrix =
            QuantMatrix::from_ggml(format, n, k, &random_ggml(format, n, k, &mut rng)).unwrap();
        for m in [1, 3, 4, 9] {
            let x = random_activations(m * k, &mut rng);
            let mut quantized = QuantizedRows::new();
            let per = matrix.activation_scales();
            quantized.quantize(&x, m, k, per);
            let shared = match per {
                ActivationScales::PerBlock => BLOCK,
                ActivationScales::PerSuperBlock => SUPER_BLOCK,
            };
            let mut out = vec![0f32; m * n];
            matrix.matmul(&quantized, &mut out);

            let mut w = vec![0f32; k];
            for r in 0..n {
                matrix.dequantize_row(r, &mut w);
                for i in 0..m {
                    let x = &x[i * k..(i + 1) * k];
                    let exact: f32 = w.iter().zip(x).map(|(w, x)| w * x).sum();
                    let bound: f32 = w
                        .chunks(shared)
                        .zip(x.chunks(shared))
                        .map(|(w, x)| {
                            let step = x.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                            step / 2.0 * w.iter().map(|v| v.abs()).sum::<f32>()
                        })
                        .sum::<f32>()
                        * 1.001
                        + 1e-3;
                    let got = out[i * n + r];
                    assert!(
                        (got - exact).abs() <= bound,
                        "{format:?} m={m} row {r} input {i}: {got} vs {exact} (bound {bound})"
                    );
                }
            }
        }
    }
}

/// Every kernel set this CPU runs gives the scalar reference's sums: the integer sums are
/// exact, so only the order of float additions differs.
#[test]
fn every_available_kernel_set_agrees_with_the_scalar_reference() {
    for chosen in super::available() {
        agrees_with_the_scalar_reference(&chosen);
    }
}

fn agrees_with_the_scalar_reference(chosen: &Kernels) {
    let reference = scalar::kernels();
    let mut rng = StdRng::seed_from_u64(11);
    // A padded last group, and an odd block count (of 32 values; of 256 in the K-quants).
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
    for format in FORMATS {
        let k = if format.ggml_block_values() == BLOCK {
            47 * BLOCK
        } else {
            3 * format.ggml_block_values()
        };
        let n = 37;
        let matrix =
            QuantMatrix::from_ggml(format, n, k, &random_ggml(format, n, k, &mut rng)).unwrap();
        let mut rows = QuantizedRows::new();
        let per = matrix.activation_scales();
        rows.quantize(&random_activations(4 * k, &mut rng), 4, k, per);
        let x = [rows.row(0), rows.row(1), rows.row(2), rows.row(3)];
        for (first, _, w) in matrix.groups() {
            let one = [(chosen.x1)(w, x[0])];
            let expected_one = [(reference.x1)(w, x[0])];
            let four = (chosen.x4)(w, x);
            let expected_four = (reference.x4)(w, x);
            for (got, expected) in [(&one[..], &expected_one[..]), (&four, &expected_four)] {
                for (i, (got, expected)) in got.iter().zip(expected).enumerate() {
                    for lane in 0..GROUP {
                        assert!(
                            close(got[lane], expected[lane]),
                            "{format:?} ({}) row {} input {i}: {} vs {}",
                            chosen.name,
                            first + lane,
                            got[lane],
                            expected[lane]
                        );
                    }
                }
            }
        }
    }
}

/// Weights at their largest stored value against activations at ±127 everywhere: the kernels'
/// narrow intermediate sums (16-bit pair sums added up over several steps) must not overflow.
#[test]
fn extreme_values_agree_with_the_scalar_reference() {
    let reference = scalar::kernels();
    let mut rng = StdRng::seed_from_u64(5);
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
    for format in FORMATS {
        let k = 2 * format.ggml_block_values();
        let mut bytes = random_ggml(format, GROUP, k, &mut rng);
        // Each block's value bytes (and higher-bit bytes), all ones: 15, 31 or 63 everywhere;
        // Q8_0's are -128.
        let (values, byte) = match format {
            BlockFormat::Q4_0 => (2..18, 0xFF),
            BlockFormat::Q4_1 => (4..20, 0xFF),
            BlockFormat::Q5_0 => (2..22, 0xFF),
            BlockFormat::Q5_1 => (4..24, 0xFF),
            BlockFormat::Q8_0 => (2..34, 0x80),
            BlockFormat::Q4_K => (16..144, 0xFF),
            BlockFormat::Q5_K => (16..176, 0xFF),
            BlockFormat::Q6_K => (0..192, 0xFF),
        };
        for block in bytes.chunks_exact_mut(format.ggml_block_bytes()) {
            block[values.clone()].fill(byte);
        }
        let matrix = QuantMatrix::from_ggml(format, GROUP, k, &bytes).unwrap();
        let (_, _, w) = matrix.groups()[0];
        for sign in [1.0, -1.0] {
            let mut rows = QuantizedRows::new();
            rows.quantize(&vec![sign; 4 * k], 4, k, matrix.activation_scales());
            let x = [rows.row(0), rows.row(1), rows.row(2), rows.row(3)];
            let expected = (reference.x1)(w, x[0]);
            for chosen in super::available() {
                let four = (chosen.x4)(w, x);
                for got in [(chosen.x1)(w, x[0]), four[0], four[3]] {
                    for lane in 0..GROUP {
                        assert!(
                            close(got[lane], expected[lane]),
                            "{format:?} ({}) x {sign} row {lane}: {} vs {}",
                            chosen.name,
                            got[lane],
                            expected[lane]
                        );
                    }
                }
            }
        }
    }
}

/// Stacking keeps each matrix's format: neighbours of one format are interleaved together, a
/// change of format starts a new part, and the product is the concatenation either way.
#[test]
fn stacked_matrices_give_the_concatenated_products() {
    let mut rng = StdRng::seed_from_u64(3);
    let k = 256;
    let shapes = [
        (BlockFormat::Q4_1, 5),
        (BlockFormat::Q4_1, 2),
        (BlockFormat::Q6_K, 9),
        (BlockFormat::Q5_0, 3),
    ];
    let parts: Vec<_> = shapes
        .into_iter()
        .map(|(format, rows)| {
            QuantMatrix::from_ggml(format, rows, k, &random_ggml(format, rows, k, &mut rng))
                .unwrap()
        })
        .collect();
    let mut x = QuantizedRows::new();
    // The Q6_K part asks for one scale per super-block; the others take that too.
    let per = ActivationScales::PerSuperBlock;
    x.quantize(&random_activations(2 * k, &mut rng), 2, k, per);
    let separate: Vec<Vec<f32>> = parts
        .iter()
        .map(|p| {
            let mut out = vec![0f32; 2 * p.rows()];
            p.matmul(&x, &mut out);
            out
        })
        .collect();
    let stacked = QuantMatrix::stack(parts).unwrap();
    assert_eq!((stacked.format(), stacked.parts()), (None, 3));
    let mut out = vec![0f32; 2 * 19];
    stacked.matmul(&x, &mut out);
    for i in 0..2 {
        let expected: Vec<f32> = shapes
            .iter()
            .enumerate()
            .flat_map(|(p, &(_, n))| separate[p][i * n..(i + 1) * n].to_vec())
            .collect();
        assert_eq!(out[i * 19..(i + 1) * 19], expected[..]);
    }
}

/// The K-quant kernels add a super-block's integer sums before scaling them, so activations
/// with a scale per block would give wrong sums: they are refused instead.
#[test]
#[should_panic(
    expected = "Q4_K weights need activations quantized with ActivationScales::PerSuperBlock"
)]
fn k_quants_refuse_activations_scaled_per_block() {
    let mut rng = StdRng::seed_from_u64(13);
    let (format, k) = (BlockFormat::Q4_K, SUPER_BLOCK);
    let matrix =
        QuantMatrix::from_ggml(format, 3, k, &random_ggml(format, 3, k, &mut rng)).unwrap();
    assert_eq!(matrix.activation_scales(), ActivationScales::PerSuperBlock);
    let mut x = QuantizedRows::new();
    x.quantize(
        &random_activations(k, &mut rng),
        1,
        k,
        ActivationScales::PerBlock,
    );
    matrix.matmul(&x, &mut [0.0; 3]);
}

#[test]
fn wrong_shapes_are_refused() {
    assert!(QuantMatrix::from_ggml(BlockFormat::Q4_1, 2, 40, &[0; 40]).is_err());
    let err = QuantMatrix::from_ggml(BlockFormat::Q8_0, 2, BLOCK, &[0; 34]).unwrap_err();
    assert_eq!(err.to_string(), "Q8_0 data for 2x32 takes 68 bytes, got 34");
    let a = QuantMatrix::from_ggml(BlockFormat::Q8_0, 1, BLOCK, &[0; 34]).unwrap();
    let b = QuantMatrix::from_ggml(BlockFormat::Q4_0, 1, 2 * BLOCK, &[0; 36]).unwrap();
    assert!(QuantMatrix::stack(vec![a, b]).is_err());
    let err = QuantMatrix::from_ggml(BlockFormat::Q4_K, 1, 576, &[0; 324]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a row of 576 values is not a whole number of 256-value blocks"
    );
}

/// On aarch64 the NEON kernels are among those tested above: always the base set, and the
/// `sdot` one where the CPU (or qemu) has the dot-product extension.
#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_offers_the_neon_kernels() {
    let names: Vec<&str> = super::available().iter().map(|k| k.name).collect();
    assert_eq!(names.last(), Some(&"scalar"));
    assert!(names.contains(&"neon"), "{names:?}");
    let dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
    assert_eq!(names.contains(&"neon-dotprod"), dotprod, "{names:?}");
    eprintln!("kernel sets: {names:?}");
}
