//! The scale-out hook: a stable function from a device to one of `n` service instances.
//!
//! A fleet that outgrows one machine runs `n` services, each embedding its own
//! [`Engine`](crate::Engine), and routes every event and every query of a device to
//! `shard_of(iot_id, n)`. Feed each service from its partition of the platform's event
//! stream (partitioned by the same function): upserts are idempotent and ordered by
//! `utcModified`, so replays and redeliveries are harmless.
//!
//! Queries that name a device by `ProductKey` + `DeviceName` carry no `iotId`: route them with
//! the platform's device registry (pair → iotId), or ask every service (only the owner
//! answers non-empty).

/// The service instance (`0..shards`) that owns device `iot_id`.
///
/// Defined, and frozen, as Lamping and Veach's jump consistent hash of the 64-bit FNV-1a hash
/// of the `iotId`'s bytes: the same answer on every platform, build and version of this
/// crate. Growing from `n` to `n + 1` shards moves only about `1 / (n + 1)` of the devices,
/// all of them to the new shard. `shards == 0` is treated as 1.
///
/// ```
/// use ota_index::shard_of;
/// assert_eq!(shard_of("OZs5tjTkzRRTZSCekmbRk1****", 1), 0);
/// let s = shard_of("OZs5tjTkzRRTZSCekmbRk1****", 16);
/// assert!(s < 16);
/// assert_eq!(s, shard_of("OZs5tjTkzRRTZSCekmbRk1****", 16)); // deterministic
/// ```
pub fn shard_of(iot_id: &str, shards: u32) -> u32 {
    jump_consistent_hash(fnv1a64(iot_id.as_bytes()), shards.max(1))
}

/// 64-bit FNV-1a.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm" (2014).
fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn jump_hash_is_deterministic_and_covers_every_bucket() {
        assert_eq!(jump_consistent_hash(0, 1), 0);
        assert_eq!(jump_consistent_hash(1, 2), 0);
        assert_eq!(
            jump_consistent_hash(0xdead_beef, 100),
            jump_consistent_hash(0xdead_beef, 100)
        );
        let spread: std::collections::BTreeSet<u32> =
            (0..1000u64).map(|k| jump_consistent_hash(k, 10)).collect();
        assert_eq!(spread.len(), 10);
    }

    #[test]
    fn frozen_values() {
        // Changing any of these breaks every fleet routing by this function.
        let got: Vec<u32> = [
            "OZs5tjTkzRRTZSCekmbRk1****",
            "TfmUAeJjQQhCPH84UVNn0010c6****",
            "a",
            "",
        ]
        .iter()
        .map(|id| shard_of(id, 64))
        .collect();
        assert_eq!(got, FROZEN_64);
    }
    const FROZEN_64: [u32; 4] = [15, 12, 31, 17];

    #[test]
    fn balanced_and_consistent() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("device-{i:06}")).collect();
        let mut counts = [0usize; 16];
        for id in &ids {
            counts[shard_of(id, 16) as usize] += 1;
        }
        for c in counts {
            assert!((1000..1500).contains(&c), "unbalanced: {counts:?}");
        }
        let moved = ids
            .iter()
            .filter(|id| shard_of(id, 16) != shard_of(id, 17))
            .inspect(|id| assert_eq!(shard_of(id, 17), 16, "moves only to the new shard"))
            .count();
        assert!(moved > 800 && moved < 1600, "moved {moved}");
        assert_eq!(shard_of("x", 0), 0);
    }
}
