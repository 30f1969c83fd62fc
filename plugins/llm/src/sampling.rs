//! Choosing the next token from the logits: repeat penalty, top-k, top-p, min-p, temperature.

use crate::params::SamplingParams;
use rand::{SeedableRng, distr::Distribution, distr::weighted::WeightedIndex, rngs::StdRng};
use std::collections::HashSet;

/// Picks tokens one at a time, reproducibly for a given seed.
///
/// The order follows llama.cpp's default chain: repeat penalty, top-k, top-p, min-p (the last
/// three on the untempered distribution), then temperature and a weighted draw.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    /// A sampler for `params`, drawing from a generator seeded with `seed`.
    pub fn new(params: &SamplingParams, seed: u64) -> Self {
        Self {
            params: params.clone(),
            rng: StdRng::seed_from_u64(seed),
            candidates: Vec::new(),
        }
    }

    /// Picks the next token. `logits` (one per vocabulary entry) are modified in place;
    /// `history` is every token so far, prompt included, for the repeat penalty.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        self.apply_repeat_penalty(logits, history);
        if self.params.temperature == 0.0 {
            return argmax(logits);
        }
        self.candidates.clear();
        self.candidates.extend(
            logits
                .iter()
                .enumerate()
                .map(|(id, &logit)| (id as u32, logit)),
        );
        self.keep_top_k();
        let probabilities = softmax(self.candidates.iter().map(|&(_, logit)| logit));
        let kept = self.nucleus_len(&probabilities);
        self.candidates.truncate(kept);

        let temperature = self.params.temperature;
        let weights = softmax(
            self.candidates
                .iter()
                .map(|&(_, logit)| logit / temperature),
        );
        match WeightedIndex::new(&weights) {
            Ok(distribution) => self.candidates[distribution.sample(&mut self.rng)].0,
            Err(_) => self.candidates[0].0,
        }
    }

    fn apply_repeat_penalty(&self, logits: &mut [f32], history: &[u32]) {
        let penalty = self.params.repeat_penalty;
        let window = self.params.repeat_last_n as usize;
        if penalty == 1.0 || window == 0 {
            return;
        }
        let recent = &history[history.len().saturating_sub(window)..];
        for &token in recent.iter().collect::<HashSet<_>>() {
            if let Some(logit) = logits.get_mut(token as usize) {
                *logit = if *logit >= 0.0 {
                    *logit / penalty
                } else {
                    *logit * penalty
                };
            }
        }
    }

    /// Keeps the `top_k` best candidates (all if 0), sorted best first.
    fn keep_top_k(&mut self) {
        let by_logit_desc = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        let k = self.params.top_k as usize;
        if k > 0 && k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(k - 1, by_logit_desc);
            self.candidates.truncate(k);
        }
        self.candidates.sort_unstable_by(by_logit_desc);
    }

    /// How many of the sorted candidates survive top-p and then min-p (at least one).
    fn nucleus_len(&self, probabilities: &[f32]) -> usize {
        let mut cumulative = 0.0;
        let top_p_len = probabilities
            .iter()
            .position(|&p| {
                cumulative += p;
                cumulative >= self.params.top_p
            })
            .map_or(probabilities.len(), |last| last + 1);
        let floor = self.params.min_p * probabilities[0];
        let min_p_len = probabilities.iter().take_while(|&&p| p >= floor).count();
        top_p_len.min(min_p_len).max(1)
    }
}

/// The index of the largest logit (the first one on ties).
fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (id, &logit)| {
            if logit > best.1 { (id, logit) } else { best }
        })
        .0 as u32
}

fn softmax(logits: impl Iterator<Item = f32> + Clone) -> Vec<f32> {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.map(|logit| (logit - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: u32, top_p: f32, min_p: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: None,
        }
    }

    fn draws(sampler: &mut Sampler, logits: &[f32], n: usize) -> HashSet<u32> {
        (0..n)
            .map(|_| sampler.sample(&mut logits.to_vec(), &[]))
            .collect()
    }

    #[test]
    fn masked_tokens_are_never_drawn_by_any_sampler() {
        let masked = f32::NEG_INFINITY;
        let logits = [masked, -9.0, masked, -9.5, masked];
        for (temperature, top_k, top_p, min_p, penalty) in [
            (0.0, 0, 1.0, 0.0, 1.0),
            (1.0, 0, 1.0, 0.0, 1.0),
            (2.0, 2, 0.5, 0.9, 1.0),
            (0.7, 1, 0.1, 0.05, 2.0),
        ] {
            let mut sampling = params(temperature, top_k, top_p, min_p);
            sampling.repeat_penalty = penalty;
            let mut sampler = Sampler::new(&sampling, 3);
            let drawn = (0..200)
                .map(|_| sampler.sample(&mut logits.to_vec(), &[0, 1, 2]))
                .collect::<HashSet<_>>();
            assert!(drawn.is_subset(&HashSet::from([1, 3])), "{drawn:?}");
        }
    }

    #[test]
    fn zero_temperature_is_greedy() {
        let mut sampler = Sampler::new(&params(0.0, 0, 1.0, 0.0), 1);
        assert_eq!(sampler.sample(&mut [0.1, 3.0, 2.9, -1.0], &[]), 1);
    }

    #[test]
    fn top_k_limits_the_choice() {
        let logits = [1.0, 1.1, 1.2, 1.3, 1.4];
        let mut sampler = Sampler::new(&params(1.0, 2, 1.0, 0.0), 7);
        assert_eq!(draws(&mut sampler, &logits, 200), HashSet::from([3, 4]));
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // Probabilities about 0.64, 0.24, 0.09, 0.03.
        let logits = [3.0, 2.0, 1.0, 0.0];
        let mut sampler = Sampler::new(&params(1.0, 0, 0.8, 0.0), 3);
        assert_eq!(draws(&mut sampler, &logits, 300), HashSet::from([0, 1]));
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let logits = [3.0, 2.0, 1.0, 0.0];
        // 0.24 / 0.64 = 0.37 survives a floor of 0.3; 0.09 / 0.64 does not.
        let mut sampler = Sampler::new(&params(1.0, 0, 1.0, 0.3), 3);
        assert_eq!(draws(&mut sampler, &logits, 300), HashSet::from([0, 1]));
    }

    #[test]
    fn same_seed_same_draws_and_other_seeds_differ() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.1).collect();
        let run = |seed| {
            let mut sampler = Sampler::new(&params(1.0, 0, 1.0, 0.0), seed);
            (0..40)
                .map(|_| sampler.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn repeat_penalty_only_looks_at_the_window() {
        let mut p = params(0.0, 0, 1.0, 0.0);
        p.repeat_penalty = 2.0;
        p.repeat_last_n = 2;
        let mut sampler = Sampler::new(&p, 0);
        // Token 0 is best but was seen in the window: halved to 1.5, below token 1.
        assert_eq!(sampler.sample(&mut [3.0, 2.0, 0.0], &[2, 0]), 1);
        // Seen only before the window: not penalised.
        assert_eq!(sampler.sample(&mut [3.0, 2.0, 0.0], &[0, 2, 2]), 0);
        // A negative logit is made more negative.
        assert_eq!(sampler.sample(&mut [-1.0, -1.5, -3.0], &[0]), 1);
    }
}
