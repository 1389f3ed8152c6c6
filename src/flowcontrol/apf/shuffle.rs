//! Shuffle sharding (kube's `shufflesharding.Dealer`): a flow is dealt a hand of distinct
//! queues from its hash, so two flows rarely share every queue and a heavy flow cannot fill
//! all the queues a light one might use. The same hash deals the same hand as kube's.

/// Deals `hand` distinct queue indexes out of `deck` from `hash`, calling `pick` with each,
/// in kube's order.
pub fn deal(mut hash: u64, deck: u32, hand: u32, mut pick: impl FnMut(usize)) {
    let hand = hand.min(deck) as usize;
    let mut remainders = Vec::with_capacity(hand);
    for i in 0..hand {
        let size = deck as u64 - i as u64;
        remainders.push((hash % size) as usize);
        hash /= size;
    }
    for i in 0..hand {
        let mut card = remainders[i];
        for j in (1..=i).rev() {
            if card >= remainders[j - 1] {
                card += 1;
            }
        }
        pick(card);
    }
}

/// The hand as a vector (tests and the dump).
pub fn hand(hash: u64, deck: u32, hand: u32) -> Vec<usize> {
    let mut out = Vec::new();
    deal(hash, deck, hand, |c| out.push(c));
    out
}

/// kube's `hashFlowID`: the first 8 bytes (little-endian) of SHA-256 over the schema name, a
/// zero byte and the distinguisher.
pub fn flow_hash(schema: &str, distinguisher: &str) -> u64 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(schema.as_bytes());
    h.update([0u8]);
    h.update(distinguisher.as_bytes());
    let sum = h.finalize();
    u64::from_le_bytes(sum[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_are_distinct_and_in_range() {
        for seed in 0..500u64 {
            let h = flow_hash("fs", &seed.to_string());
            let cards = hand(h, 16, 6);
            assert_eq!(cards.len(), 6);
            let mut s = cards.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 6, "{cards:?}");
            assert!(cards.iter().all(|&c| c < 16));
        }
        assert_eq!(hand(7, 1, 1), vec![0]);
    }

    #[test]
    fn deals_as_kube() {
        // kube's dealer: remainders 11 % 4 = 3, then (11 / 4) % 3 = 2 -> cards 3, then 2
        assert_eq!(hand(11, 4, 2), vec![3, 2]);
        // remainders 0, 0, 0: each later card skips the ones before it
        assert_eq!(hand(0, 8, 3), vec![0, 1, 2]);
        // 9 = 1 + 4*2: remainders 1, 2 -> cards 1, 3 (2 >= 1 shifts up)
        assert_eq!(hand(9, 4, 2), vec![1, 3]);
    }
}
