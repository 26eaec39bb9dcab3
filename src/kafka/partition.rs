//! Which partition, and which shard, holds a key: [`murmur2`] and [`partition_for`] as
//! Kafka's Java client computes them, and [`ShardRouter`].

use crate::kafka::error::KafkaError;

/// Source partition ids hold the topic's number above this many bits of partition.
pub(crate) const TOPIC_SHIFT: u32 = 20;
/// How many partitions of one topic a source can number: `2^20`.
pub(crate) const MAX_PARTITIONS: usize = 1 << TOPIC_SHIFT;

/// The 32-bit murmur2 hash of `data`, exactly as Kafka's Java client computes it
/// (`org.apache.kafka.common.utils.Utils.murmur2`: seed `0x9747b28c`, multiplier
/// `0x5bd1e995`, shift 24, the bytes read four at a time little-endian, the one to three
/// bytes left over mixed in by the tail switch). librdkafka's `murmur2` partitioners
/// and the other Kafka clients that follow Java compute the same.
///
/// # Examples
///
/// ```
/// use viewstore::kafka::murmur2;
///
/// // A case of the Java client's own tests.
/// assert_eq!(murmur2(b"21"), -973_932_308);
/// ```
#[must_use]
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java takes the length as an int; a key of 4 GiB or more is not a Kafka key.
    let length = data.len() as u32;
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // Java's switch falls through from the highest byte left to the lowest.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// The partition of `partitions` that Kafka's Java producer (its default partitioner,
/// for a record with a key) and librdkafka's `murmur2_random` partitioner choose for
/// `key`: `(murmur2(key) & 0x7fffffff) % partitions`. Producers in any language that
/// partition this way and the readers that use this function agree on where a key is.
/// Zero partitions give partition 0 (a topic has at least one).
///
/// # Examples
///
/// ```
/// use viewstore::kafka::partition_for;
///
/// assert_eq!(partition_for(b"21", 3), 0);
/// assert!(partition_for(b"user-42", 12) < 12);
/// ```
#[must_use]
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    // Java's `Utils.toPositive`: the sign bit cleared, not the absolute value.
    let positive = u32::from_ne_bytes(murmur2(key).to_ne_bytes()) & 0x7fff_ffff;
    positive.checked_rem(partitions).unwrap_or(0)
}

/// Maps keys to shards: each partition of a topic belongs to one shard, and a key
/// belongs to the shard of its partition ([`partition_for`]). Each shard runs its own
/// store and reads its own partitions ([`KafkaConfig::with_shard`]); a service routes a
/// read for a key to the shard this type names.
///
/// [`KafkaConfig::with_shard`]: crate::kafka::KafkaConfig::with_shard
///
/// # Examples
///
/// ```
/// use viewstore::kafka::ShardRouter;
///
/// // 12 partitions over 3 shards: partitions 0-3, 4-7 and 8-11.
/// let router = ShardRouter::contiguous(12, 3)?;
/// assert_eq!(router.partitions_of(1)?, [4, 5, 6, 7]);
/// let shard = router.shard_for(b"user-42");
/// assert!(router.partitions_of(shard)?.contains(&router.partition_for(b"user-42")));
/// # Ok::<(), viewstore::kafka::KafkaError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRouter {
    /// The shard of each partition, by partition. Invariants: not empty; every shard
    /// from 0 to `shards - 1` has at least one partition.
    shard_of_partition: Vec<u32>,
    shards: u32,
}

impl ShardRouter {
    /// A router where partition `p` belongs to shard `shard_of_partition[p]`; shards are
    /// numbered from 0 and each must have a partition.
    ///
    /// # Errors
    ///
    /// [`KafkaError::Config`] for no partitions, more than 2^20 of them (more than the
    /// source can number), or a shard number with no partition below the highest one.
    pub fn new(shard_of_partition: Vec<u32>) -> Result<Self, KafkaError> {
        let bad = |reason: String| Err(KafkaError::Config { reason });
        if shard_of_partition.is_empty() {
            return bad("a shard router needs at least one partition".into());
        }
        if shard_of_partition.len() > MAX_PARTITIONS {
            return bad(format!(
                "a shard router of {} partitions: at most {} are supported",
                shard_of_partition.len(),
                MAX_PARTITIONS
            ));
        }
        let shards = shard_of_partition.iter().max().map_or(0, |&m| m + 1);
        if let Some(empty) = (0..shards).find(|s| !shard_of_partition.contains(s)) {
            return bad(format!(
                "shard {empty} of a shard router has no partition (shards are numbered from 0 \
                 to {}, and each needs a partition)",
                shards - 1
            ));
        }
        Ok(ShardRouter { shard_of_partition, shards })
    }

    /// `partitions` partitions over `shards` shards in contiguous runs: shard `s` holds
    /// partitions `s * partitions / shards` up to `(s + 1) * partitions / shards`.
    ///
    /// # Errors
    ///
    /// [`KafkaError::Config`] for zero partitions or shards, or more shards than
    /// partitions (a shard would have no partition).
    pub fn contiguous(partitions: u32, shards: u32) -> Result<Self, KafkaError> {
        if partitions == 0 || shards == 0 || shards > partitions {
            return Err(KafkaError::Config {
                reason: format!(
                    "a shard router of {partitions} partitions over {shards} shards: both must \
                     be at least 1, and there cannot be more shards than partitions"
                ),
            });
        }
        let shard_of = (0..partitions).map(|p| {
            let shard = u64::from(p) * u64::from(shards) / u64::from(partitions);
            u32::try_from(shard).unwrap_or(shards - 1)
        });
        ShardRouter::new(shard_of.collect())
    }

    /// How many partitions the topic has.
    #[must_use]
    pub fn partitions(&self) -> u32 {
        u32::try_from(self.shard_of_partition.len()).unwrap_or(u32::MAX)
    }

    /// How many shards there are.
    #[must_use]
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The partition that holds `key` ([`partition_for`] over this router's partitions).
    #[must_use]
    pub fn partition_for(&self, key: &[u8]) -> u32 {
        partition_for(key, self.partitions())
    }

    /// The shard that holds `key`.
    #[must_use]
    pub fn shard_for(&self, key: &[u8]) -> u32 {
        let partition = self.partition_for(key) as usize;
        self.shard_of_partition.get(partition).copied().unwrap_or(0)
    }

    /// The shard `partition` belongs to; `None` for a partition the topic does not have.
    #[must_use]
    pub fn shard_of(&self, partition: u32) -> Option<u32> {
        self.shard_of_partition.get(partition as usize).copied()
    }

    /// The partitions of `shard`, in increasing order.
    ///
    /// # Errors
    ///
    /// [`KafkaError::Config`] for a shard the router does not have.
    pub fn partitions_of(&self, shard: u32) -> Result<Vec<u32>, KafkaError> {
        if shard >= self.shards {
            return Err(KafkaError::Config {
                reason: format!(
                    "shard {shard} does not exist: the router has shards 0 to {}",
                    self.shards - 1
                ),
            });
        }
        Ok((0..self.partitions()).filter(|&p| self.shard_of(p) == Some(shard)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lengths_and_empty_key() {
        // The empty key goes through no chunk and no tail: a fixed value.
        assert_eq!(murmur2(b""), murmur2(&[]));
        // Every tail length gives a different hash of the same leading bytes.
        let hashes: Vec<i32> = (0..8).map(|n| murmur2(&b"abcdefgh"[..n])).collect();
        let mut unique = hashes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), hashes.len());
    }

    #[test]
    fn routers_refuse_empty_shards() {
        assert!(ShardRouter::new(vec![]).is_err());
        assert!(ShardRouter::new(vec![0, 2]).is_err());
        assert!(ShardRouter::contiguous(0, 1).is_err());
        assert!(ShardRouter::contiguous(2, 3).is_err());
        assert!(ShardRouter::contiguous(4, 0).is_err());
        assert!(ShardRouter::contiguous(4, 4).is_ok());
    }
}
