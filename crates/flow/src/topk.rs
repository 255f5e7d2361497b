//! Bounded top-N counting: the Space-Saving summary (Metwally, Agrawal, El Abbadi, 2005).
//!
//! `k` counters. A key already counted is incremented; a new key takes a free counter, or
//! replaces the key with the smallest count `m`, starting at `m + 1` with error `m`.
//! Guarantees, for a stream of `N` insertions:
//! - every reported count over-estimates the true count by at most its `error`, and every
//!   `error` is at most `N / k`;
//! - every key whose true count exceeds `N / k` is in the summary;
//! - while no key has been replaced ([`SpaceSaving::is_exact`]), counts are exact.
//!
//! Memory is O(k) whatever `N`. A replacement scans the counters for the minimum (O(k));
//! increments and first insertions are O(1).

use std::hash::Hash;

use rustc_hash::FxHashMap;

#[derive(Debug, Clone)]
pub struct SpaceSaving<K> {
    k: usize,
    index: FxHashMap<K, usize>,
    slots: Vec<Slot<K>>,
    total: u64,
    replaced: bool,
}

#[derive(Debug, Clone)]
struct Slot<K> {
    key: K,
    count: u64,
    error: u64,
}

/// A reported key with its (over-)estimated count and the bound of the over-estimate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted<K> {
    pub key: K,
    pub count: u64,
    pub error: u64,
}

impl<K: Hash + Eq + Clone + Ord> SpaceSaving<K> {
    /// A summary with `k` counters (at least 1).
    pub fn new(k: usize) -> Self {
        SpaceSaving {
            k: k.max(1),
            index: FxHashMap::default(),
            slots: Vec::new(),
            total: 0,
            replaced: false,
        }
    }

    pub fn insert(&mut self, key: K) {
        self.total += 1;
        if let Some(&i) = self.index.get(&key) {
            self.slots[i].count += 1;
            return;
        }
        if self.slots.len() < self.k {
            self.index.insert(key.clone(), self.slots.len());
            self.slots.push(Slot {
                key,
                count: 1,
                error: 0,
            });
            return;
        }
        let (i, min) = self
            .slots
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.count)
            .map_or((0, 0), |(i, s)| (i, s.count));
        let old = std::mem::replace(
            &mut self.slots[i],
            Slot {
                key: key.clone(),
                count: min + 1,
                error: min,
            },
        );
        self.index.remove(&old.key);
        self.index.insert(key, i);
        self.replaced = true;
    }

    /// Insertions so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether every count is exact (no key was ever replaced).
    pub fn is_exact(&self) -> bool {
        !self.replaced
    }

    /// The `n` highest counts, highest first; ties by key, so output is deterministic.
    pub fn top(&self, n: usize) -> Vec<Counted<K>> {
        let mut all: Vec<&Slot<K>> = self.slots.iter().collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        all.into_iter()
            .take(n)
            .map(|s| Counted {
                key: s.key.clone(),
                count: s.count,
                error: s.error,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_while_keys_fit() {
        let mut s = SpaceSaving::new(4);
        for k in [1, 2, 1, 3, 1, 2] {
            s.insert(k);
        }
        assert!(s.is_exact());
        let top = s.top(2);
        assert_eq!((top[0].key, top[0].count, top[0].error), (1, 3, 0));
        assert_eq!((top[1].key, top[1].count), (2, 2));
    }

    proptest! {
        #[test]
        fn bounds_hold(stream in proptest::collection::vec(0u8..40, 0..400), k in 1usize..12) {
            let mut s = SpaceSaving::new(k);
            let mut truth = std::collections::HashMap::new();
            for &x in &stream {
                s.insert(x);
                *truth.entry(x).or_insert(0u64) += 1;
            }
            let n = stream.len() as u64;
            let reported = s.top(usize::MAX);
            for c in &reported {
                let t = truth[&c.key];
                prop_assert!(c.count >= t && c.count - c.error <= t);
                prop_assert!(c.error * k as u64 <= n);
            }
            for (key, &t) in &truth {
                if t * k as u64 > n {
                    prop_assert!(reported.iter().any(|c| c.key == *key));
                }
            }
        }
    }
}
