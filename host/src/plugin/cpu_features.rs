//! Which CPU features this machine has, by the names plugins declare.

/// The features in `required` that this CPU lacks (unknown names count as lacking).
pub fn missing(required: &[&str]) -> Vec<String> {
    required
        .iter()
        .filter(|name| !has(name))
        .map(|name| name.to_string())
        .collect()
}

#[cfg(target_arch = "x86_64")]
fn has(name: &str) -> bool {
    use std::arch::is_x86_feature_detected as detected;
    match name {
        "sse3" => detected!("sse3"),
        "ssse3" => detected!("ssse3"),
        "sse4.1" => detected!("sse4.1"),
        "sse4.2" => detected!("sse4.2"),
        "popcnt" => detected!("popcnt"),
        "avx" => detected!("avx"),
        "avx2" => detected!("avx2"),
        "fma" => detected!("fma"),
        "f16c" => detected!("f16c"),
        "bmi1" => detected!("bmi1"),
        "bmi2" => detected!("bmi2"),
        "lzcnt" => detected!("lzcnt"),
        "movbe" => detected!("movbe"),
        "avx512f" => detected!("avx512f"),
        "avx512bw" => detected!("avx512bw"),
        "avx512vl" => detected!("avx512vl"),
        "avx512dq" => detected!("avx512dq"),
        "avx512vnni" => detected!("avx512vnni"),
        _ => false,
    }
}

#[cfg(target_arch = "aarch64")]
fn has(name: &str) -> bool {
    use std::arch::is_aarch64_feature_detected as detected;
    match name {
        "neon" => detected!("neon"),
        "fp16" => detected!("fp16"),
        "dotprod" => detected!("dotprod"),
        "i8mm" => detected!("i8mm"),
        "sve" => detected!("sve"),
        _ => false,
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn has(_name: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_features_are_missing() {
        assert_eq!(
            super::missing(&["quantum-entanglement"]),
            ["quantum-entanglement"]
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn baseline_x86_64_features_are_present() {
        assert!(super::missing(&["sse3"]).is_empty());
    }
}
