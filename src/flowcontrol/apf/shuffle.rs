//! Shuffle sharding (kube's `shufflesharding.Dealer`): a flow is dealt a hand of distinct
//! queues from its hash, so two flows rarely share every queue and a heavy flow cannot fill
//! all the queues a light one might use.

/// Deals `hand` distinct queue indexes out of `deck` from `hash`.
pub fn deal(mut hash: u64, deck: u32, hand: u32) -> Vec<usize> {
    let hand = hand.min(deck) as usize;
    let mut cards: Vec<usize> = Vec::with_capacity(hand);
    let mut used: Vec<usize> = Vec::with_capacity(hand);
    for i in 0..hand {
        let remaining = deck as u64 - i as u64;
        let mut pick = (hash % remaining) as usize;
        hash /= remaining;
        // the pick-th card among those not yet dealt; `used` stays sorted
        for &c in &used {
            if pick >= c {
                pick += 1;
            }
        }
        cards.push(pick);
        let at = used.partition_point(|&c| c < pick);
        used.insert(at, pick);
    }
    cards
}

/// The flow's hash: schema name and distinguisher (kube hashes the same pair). SipHash with
/// fixed keys: the same flow lands on the same queues across restarts and replicas.
pub fn flow_hash(schema: &str, distinguisher: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6672_6f6e_7464_6f6f, 0x6170_662d_666c_6f77);
    h.write(schema.as_bytes());
    h.write_u8(0);
    h.write(distinguisher.as_bytes());
    h.finish()
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
