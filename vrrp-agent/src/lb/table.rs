//! The scheduling tables the kernel picks from: which real server each of a service's
//! [`TABLE_SLOTS`](vrrp_common::lb::TABLE_SLOTS) slots holds.

/// A weighted round-robin sequence (rr is wrr with equal weights): each server appears in
/// proportion to its weight, spread out rather than in runs ("smooth" weighted round robin),
/// at most `slots` long. Weights are reduced by their greatest common divisor first, then
/// scaled down if their sum still exceeds `slots`.
pub fn weighted_sequence(weights: &[u32], slots: usize) -> Vec<usize> {
    let weights = fit(weights, slots);
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = None;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if w > 0 && best.is_none_or(|b: usize| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let Some(b) = best else { break };
        current[b] -= total;
        out.push(b);
    }
    out
}

/// Weights with the same proportions whose sum fits in `slots` (every non-zero weight keeps
/// at least 1).
fn fit(weights: &[u32], slots: usize) -> Vec<u32> {
    let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
    if g == 0 {
        return vec![0; weights.len()];
    }
    let reduced: Vec<u32> = weights.iter().map(|&w| w / g).collect();
    let sum: u64 = reduced.iter().map(|&w| u64::from(w)).sum();
    if sum <= slots as u64 {
        return reduced;
    }
    reduced
        .iter()
        .map(|&w| {
            if w == 0 {
                0
            } else {
                ((u64::from(w) * slots as u64 / sum) as u32).max(1)
            }
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A Maglev lookup table of `slots` entries (`slots` prime) for servers named by `names`
/// with `weights`: each server fills slots following its own permutation, taking turns in
/// proportion to its weight. When a server leaves, only its slots change hands (nearly), so
/// only its flows move; and two directors with the same servers build the same table, so a
/// flow hashes to the same server on either.
pub fn maglev(names: &[String], weights: &[u32], slots: usize) -> Vec<usize> {
    let live: Vec<usize> = (0..names.len()).filter(|&i| weights[i] > 0).collect();
    if live.is_empty() || slots == 0 {
        return Vec::new();
    }
    let m = slots as u64;
    let permutation: Vec<(u64, u64)> = live
        .iter()
        .map(|&i| {
            let offset = fnv1a(names[i].as_bytes(), 0) % m;
            let skip = fnv1a(names[i].as_bytes(), 1) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let max = live.iter().map(|&i| weights[i]).max().unwrap_or(1);
    let mut next = vec![0u64; live.len()];
    let mut credit = vec![0u64; live.len()];
    let mut table: Vec<Option<usize>> = vec![None; slots];
    let mut filled = 0;
    while filled < slots {
        for (k, &i) in live.iter().enumerate() {
            credit[k] += u64::from(weights[i]);
            if credit[k] < u64::from(max) {
                continue;
            }
            credit[k] -= u64::from(max);
            let (offset, skip) = permutation[k];
            loop {
                let c = ((offset + next[k] * skip) % m) as usize;
                next[k] += 1;
                if table[c].is_none() {
                    table[c] = Some(i);
                    filled += 1;
                    break;
                }
            }
            if filled == slots {
                break;
            }
        }
    }
    table.into_iter().flatten().collect()
}

/// A Maglev table over every configured server (`weights`), in which the slots of servers
/// not `present` go to present ones, each slot to the present server that ranks highest for
/// it by weighted rendezvous hashing. Plain Maglev rebuilt without a failed server moves a
/// few slots between the servers that stayed (and with them their clients' new flows); here
/// the base table does not change when a server fails, so only the failed server's slots
/// change hands, and they come back to it when it recovers. Deterministic in its inputs, so
/// two directors that agree on who is up build the same table.
pub fn maglev_stable(
    names: &[String],
    weights: &[u32],
    present: &[bool],
    slots: usize,
) -> Vec<usize> {
    let standing: Vec<usize> = (0..names.len())
        .filter(|&i| present.get(i) == Some(&true) && weights[i] > 0)
        .collect();
    if standing.is_empty() {
        return Vec::new();
    }
    maglev(names, weights, slots)
        .into_iter()
        .enumerate()
        .map(|(slot, owner)| {
            if standing.contains(&owner) {
                return owner;
            }
            let score = |&i: &usize| {
                let key = format!("{slot}/{}", names[i]);
                // A uniform draw in (0, 1), then -w / ln(u): the classic weighted rendezvous.
                let u = ((fnv1a(key.as_bytes(), 2) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                -f64::from(weights[i]) / u.ln()
            };
            standing
                .iter()
                .copied()
                .max_by(|a, b| score(a).total_cmp(&score(b)))
                .unwrap_or(owner)
        })
        .collect()
}

/// FNV-1a, seeded: stable across runs, builds and hosts (both directors must agree).
fn fnv1a(bytes: &[u8], seed: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in std::iter::once(&seed).chain(bytes) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(table: &[usize], i: usize) -> usize {
        table.iter().filter(|&&s| s == i).count()
    }

    #[test]
    fn wrr_follows_weights_and_interleaves() {
        let seq = weighted_sequence(&[3, 1, 2], 251);
        assert_eq!(seq.len(), 6);
        assert_eq!((share(&seq, 0), share(&seq, 1), share(&seq, 2)), (3, 1, 2));
        // Smooth: the heaviest never takes every turn of a window of two.
        assert!(!seq.windows(2).any(|w| w == [0, 0]));
        assert_eq!(weighted_sequence(&[1, 1, 1], 251), vec![0, 1, 2]);
        assert_eq!(weighted_sequence(&[100, 0, 100], 251), vec![0, 2]);
        assert!(weighted_sequence(&[0, 0], 251).is_empty());
        // Too heavy for the table: scaled, proportions kept.
        let big = weighted_sequence(&[1000, 3000], 251);
        assert!(big.len() <= 251);
        assert_eq!(share(&big, 1), 3 * share(&big, 0));
    }

    #[test]
    fn maglev_is_balanced_and_moves_only_the_leavers_slots() {
        let names: Vec<String> = (1..=3).map(|i| format!("10.0.0.{i}:80")).collect();
        let all = maglev(&names, &[1, 1, 1], 251);
        assert_eq!(all.len(), 251);
        for i in 0..3 {
            let n = share(&all, i);
            assert!((80..=88).contains(&n), "server {i} has {n} slots");
        }
        // Server 1 leaves: the others keep (nearly) every slot they had.
        let without = maglev(&names, &[1, 0, 1], 251);
        let moved = all
            .iter()
            .zip(&without)
            .filter(|(a, b)| **a != 1 && a != b)
            .count();
        assert!(moved <= 251 / 20, "{moved} slots of staying servers moved");
        assert_eq!(share(&without, 1), 0);
        // Weights: twice the weight, about twice the slots.
        let weighted = maglev(&names, &[2, 1, 1], 251);
        assert!(share(&weighted, 0) > share(&weighted, 1) * 3 / 2);
        // The same input gives the same table (both directors agree).
        assert_eq!(maglev(&names, &[1, 1, 1], 251), all);
    }

    #[test]
    fn stable_maglev_moves_exactly_the_failed_servers_slots() {
        let names: Vec<String> = (1..=4).map(|i| format!("[fd00::{i}]:80")).collect();
        let weights = [1, 1, 2, 1];
        let all = maglev_stable(&names, &weights, &[true; 4], 251);
        assert_eq!(all, maglev(&names, &weights, 251));
        let down = maglev_stable(&names, &weights, &[true, false, true, true], 251);
        for (slot, (was, now)) in all.iter().zip(&down).enumerate() {
            if *was == 1 {
                assert_ne!(*now, 1, "slot {slot} still on the failed server");
            } else {
                assert_eq!(was, now, "slot {slot} moved though its server stayed");
            }
        }
        // The failed server's slots are spread over the others, not handed to one.
        let heirs: std::collections::BTreeSet<usize> = all
            .iter()
            .zip(&down)
            .filter(|(w, _)| **w == 1)
            .map(|(_, n)| *n)
            .collect();
        assert!(heirs.len() >= 2, "{heirs:?}");
        // Two failed: still only theirs move; none up: an empty table.
        let two = maglev_stable(&names, &weights, &[true, false, true, false], 251);
        assert!(
            all.iter()
                .zip(&two)
                .all(|(w, n)| *w == 1 || *w == 3 || w == n)
        );
        assert!(two.iter().all(|&n| n == 0 || n == 2));
        assert!(maglev_stable(&names, &weights, &[false; 4], 251).is_empty());
    }
}
