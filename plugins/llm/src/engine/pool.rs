//! One budget of key/value positions for every sequence, and the prefixes of finished
//! sequences kept for reuse within it.

use crate::model::SequenceCache;

/// Prefixes are reused in runs of this many tokens.
pub const PREFIX_BLOCK: usize = 16;

/// The positions all sequences may hold at once: running sequences reserve what they may grow
/// to (prompt plus `max_tokens`); what is left keeps finished sequences' caches, oldest-used
/// evicted first, so that a later prompt starting with the same tokens skips computing them.
pub struct KvPool {
    budget: usize,
    reserved: usize,
    prefixes: Vec<CachedPrefix>,
    clock: u64,
    keep_prefixes: bool,
}

/// A finished sequence's tokens and the cache holding them.
struct CachedPrefix {
    tokens: Vec<u32>,
    cache: SequenceCache,
    last_used: u64,
}

impl KvPool {
    /// A pool of `budget` positions; `keep_prefixes` is false where caches cannot be copied.
    pub fn new(budget: usize, keep_prefixes: bool) -> Self {
        Self {
            budget,
            reserved: 0,
            prefixes: Vec::new(),
            clock: 0,
            keep_prefixes,
        }
    }

    /// Positions held by kept prefixes.
    fn kept(&self) -> usize {
        self.prefixes.iter().map(|p| p.tokens.len()).sum()
    }

    /// Reserves `positions` for a new sequence, evicting kept prefixes as needed; false when
    /// running sequences leave no room.
    pub fn reserve(&mut self, positions: usize) -> bool {
        if self.reserved + positions > self.budget {
            return false;
        }
        self.reserved += positions;
        self.evict_to_fit();
        true
    }

    /// Gives back a finished sequence's reservation, keeping its cache (holding `tokens`).
    pub fn release(&mut self, positions: usize, tokens: Vec<u32>, cache: SequenceCache) {
        self.reserved -= positions;
        if !self.keep_prefixes || tokens.len() < PREFIX_BLOCK {
            return;
        }
        self.prefixes
            .retain(|kept| !tokens.starts_with(&kept.tokens));
        self.clock += 1;
        self.prefixes.push(CachedPrefix {
            tokens,
            cache,
            last_used: self.clock,
        });
        self.evict_to_fit();
    }

    /// The longest kept prefix of `prompt`, in whole blocks and leaving at least its last
    /// token to feed: how many positions it covers and a copy of their cache.
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<(usize, SequenceCache)> {
        let usable = prompt.len().saturating_sub(1);
        let (best, length) = self
            .prefixes
            .iter_mut()
            .map(|kept| {
                let common = kept
                    .tokens
                    .iter()
                    .zip(prompt)
                    .take_while(|(a, b)| a == b)
                    .count();
                let length = common.min(usable) / PREFIX_BLOCK * PREFIX_BLOCK;
                (kept, length)
            })
            .max_by_key(|(_, length)| *length)?;
        if length == 0 {
            return None;
        }
        self.clock += 1;
        best.last_used = self.clock;
        Some((length, best.cache.prefix(length)?))
    }

    /// Evicts the least recently used prefixes until reservations and kept prefixes fit.
    fn evict_to_fit(&mut self) {
        while self.reserved + self.kept() > self.budget {
            let Some(oldest) = (0..self.prefixes.len()).min_by_key(|&i| self.prefixes[i].last_used)
            else {
                return;
            };
            self.prefixes.swap_remove(oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(tokens: usize) -> SequenceCache {
        SequenceCache::Candle(tokens)
    }

    #[test]
    fn reservations_beyond_the_budget_wait() {
        let mut pool = KvPool::new(100, true);
        assert!(pool.reserve(60));
        assert!(!pool.reserve(41));
        assert!(pool.reserve(40));
        pool.release(60, Vec::new(), kept(0));
        assert!(pool.reserve(60));
    }

    #[test]
    fn kept_prefixes_give_way_to_reservations_oldest_first() {
        let mut pool = KvPool::new(100, true);
        let tokens = |first: u32| (first..first + 40).collect::<Vec<u32>>();
        for first in [0, 1000] {
            assert!(pool.reserve(40));
            pool.release(40, tokens(first), kept(40));
        }
        assert_eq!(pool.kept(), 80);
        assert!(pool.reserve(30));
        assert_eq!(pool.kept(), 40);
        assert!(pool.prefixes[0].tokens.starts_with(&[1000]));
    }

    #[test]
    fn a_longer_sequence_replaces_its_own_prefix() {
        let mut pool = KvPool::new(1000, true);
        pool.release(0, (0..32).collect(), kept(32));
        pool.release(0, (0..64).collect(), kept(64));
        assert_eq!(pool.kept(), 64);
    }
}
