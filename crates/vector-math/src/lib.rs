//! Branch-free f32 functions for the plugins' CPU loops. libm's `expf` is a call per value,
//! which keeps a loop over a row scalar; these are `#[inline(always)]`, so a loop that calls
//! them compiles to SIMD code, with whatever target features the caller enables.

/// `eˣ` within about one ulp (Cephes' `expf` polynomial): large inputs clamped to where the
/// result is finite, and 0 below where it would be subnormal.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // ln 2 in two parts, the first exact in few bits, so that n·ln 2 subtracts without error.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer held in the sum's low bits.
    const ROUNDING: f32 = 12_582_912.0;
    let underflows = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDING;
    let n = shifted - ROUNDING;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // Wrapping: n is within ±128, and a checked add in a build with overflow checks would stop
    // the caller's loop vectorising.
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUNDING.to_bits() as i32);
    let e_x = e_r * f32::from_bits((n.wrapping_add(127) << 23) as u32);
    // Zero rather than the smallest normal float, so that attention weights of far-off
    // positions are exact zeros: products with a tiny normal weight would be subnormal, which
    // costs the CPU dearly.
    if underflows { 0.0 } else { e_x }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm_where_results_are_normal() {
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (got, expected) = (exp(x), x.exp());
            assert!(
                (got - expected).abs() <= 2.0 * f32::EPSILON * expected,
                "exp({x}) = {got}, libm {expected}"
            );
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-87.5), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert!(exp(1000.0).is_finite());
    }
}
