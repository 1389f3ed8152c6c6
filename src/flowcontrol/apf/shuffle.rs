//! Shuffle sharding (kube's `shufflesharding.Dealer`): a flow is dealt a hand of distinct
//! queues from its hash, so two flows rarely share every queue and a heavy flow cannot fill
//! all the queues a light one might use.

/// Deals `hand` distinct queue indexes out of `deck` from `hash`.
pub fn deal(mut hash: u64, deck: u32, hand: u32) -> Vec<usize> {
    let hand = hand.min(deck) as usize;
    let mut cards: Vec<usize> = Vec::with_capacity(hand);
    for i in 0..hand {
        let remaining = deck as u64 - i as u64;
        let mut pick = (hash % remaining) as usize;
        hash /= remaining;
        // the pick-th card among those not yet dealt
        let mut sorted = cards.clone();
        sorted.sort_unstable();
        for c in sorted {
            if pick >= c {
                pick += 1;
            }
        }
        cards.push(pick);
    }
    cards
}

/// The flow's hash: schema name and distinguisher (kube hashes the same pair).
pub fn flow_hash(schema: &str, distinguisher: &str) -> u64 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(schema.as_bytes());
    h.update([0]);
    h.update(distinguisher.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_are_distinct_and_in_range() {
        for seed in 0..500u64 {
            let h = flow_hash("fs", &seed.to_string());
            let hand = deal(h, 16, 6);
            assert_eq!(hand.len(), 6);
            let mut s = hand.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 6, "{hand:?}");
            assert!(hand.iter().all(|&c| c < 16));
        }
        assert_eq!(deal(7, 1, 1), vec![0]);
        assert_eq!(deal(flow_hash("a", "b"), 64, 8), deal(flow_hash("a", "b"), 64, 8), "deterministic");
    }
}
