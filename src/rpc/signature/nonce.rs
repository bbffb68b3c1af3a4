//! The nonce replay cache: the nonces of accepted requests until their window ends.

use std::collections::{BTreeSet, HashSet};

use sha2::{Digest, Sha256};

/// A SHA-256 digest of (access key id, nonce), truncated to 16 bytes.
pub(super) type NonceDigest = [u8; 16];

/// The nonces of accepted requests with the instant (ms since the epoch) until which each is
/// kept.
pub(super) struct NonceCache {
    /// Every digest held; exactly the digests of `by_expiry`.
    pub(super) seen: HashSet<NonceDigest>,
    /// (keep until, digest), so that purging takes the earliest expiry first.
    pub(super) by_expiry: BTreeSet<(i64, NonceDigest)>,
    /// The latest `now` seen; entries expiring before it are gone, so a request expiring
    /// before it is refused as stale even when its caller's `now` is a little older.
    pub(super) high_water_ms: i64,
}

/// What the nonce cache made of a request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NonceOutcome {
    Recorded,
    Used,
    /// The request's window ended before the latest `now` the cache has seen.
    Stale,
    Full,
}

impl Default for NonceCache {
    /// Empty, having seen no time yet: even a clock before 1970 (negative milliseconds) is
    /// later than the high-water mark.
    fn default() -> NonceCache {
        NonceCache {
            seen: HashSet::new(),
            by_expiry: BTreeSet::new(),
            high_water_ms: i64::MIN,
        }
    }
}

impl NonceCache {
    pub(super) fn check_and_record(
        &mut self,
        digest: NonceDigest,
        keep_until_ms: i64,
        now_ms: i64,
        capacity: usize,
    ) -> NonceOutcome {
        self.high_water_ms = self.high_water_ms.max(now_ms);
        while let Some(&(until, oldest)) = self.by_expiry.first() {
            if until >= self.high_water_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&oldest);
        }
        if keep_until_ms < self.high_water_ms {
            NonceOutcome::Stale
        } else if self.seen.contains(&digest) {
            NonceOutcome::Used
        } else if self.seen.len() >= capacity {
            NonceOutcome::Full
        } else {
            self.seen.insert(digest);
            self.by_expiry.insert((keep_until_ms, digest));
            NonceOutcome::Recorded
        }
    }
}

pub(super) fn nonce_digest(access_key_id: &str, nonce: &str) -> NonceDigest {
    let mut hasher = Sha256::new();
    // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
    hasher.update((access_key_id.len() as u64).to_le_bytes());
    hasher.update(access_key_id.as_bytes());
    hasher.update(nonce.as_bytes());
    let full = hasher.finalize();
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&full[..16]);
    digest
}
