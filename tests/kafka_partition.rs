//! The partition function is the Java client's: murmur2 gives the values of Kafka's own
//! `UtilsTest.testMurmur2`, the partition is `(murmur2 & 0x7fffffff) % n`, and keyed
//! messages produced with librdkafka's `murmur2_random` partitioner to a real topic
//! land where `partition_for` says. A shard router maps keys to the shard of their
//! partition and refuses shards without partitions.

#![cfg(feature = "kafka")]

#[path = "support/kafka.rs"]
mod kafka;

use kafka::{Out, Res};
use viewstore::kafka::{KafkaError, ShardRouter, murmur2, partition_for};

/// The cases of `UtilsTest.testMurmur2` in Kafka's Java client
/// (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
const JAVA_CASES: [(&[u8], i32); 6] = [
    (b"21", -973_932_308),
    (b"foobar", -790_332_482),
    (b"a-little-bit-long-string", -985_981_536),
    (b"a-little-bit-longer-string", -1_486_304_829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
    (b"abc", 479_470_107),
];

#[test]
fn murmur2_gives_the_java_clients_values() -> Res<()> {
    for (key, expected) in JAVA_CASES {
        let text = std::str::from_utf8(key)?;
        assert_eq!(murmur2(key), expected, "murmur2({text:?})");
    }
    Ok(())
}

#[test]
fn partition_is_the_positive_hash_modulo_the_partitions() -> Res<()> {
    // Computed by hand from the Java values: toPositive clears the sign bit.
    // "21": -973932308 & 0x7fffffff = 1173551340; "abc": 479470107.
    assert_eq!(partition_for(b"21", 3), 1_173_551_340 % 3);
    assert_eq!(partition_for(b"21", 7), 1_173_551_340 % 7);
    assert_eq!(partition_for(b"abc", 12), 479_470_107 % 12);
    for (key, hash) in JAVA_CASES {
        for n in [1, 2, 3, 10, 64, 1000] {
            let positive = u32::try_from(hash & 0x7fff_ffff)?;
            assert_eq!(partition_for(key, n), positive % n);
        }
    }
    Ok(())
}

#[test]
fn shard_router_maps_keys_to_the_shard_of_their_partition() -> Res<()> {
    let router = ShardRouter::contiguous(12, 3)?;
    assert_eq!((router.partitions(), router.shards()), (12, 3));
    assert_eq!(router.partitions_of(0)?, [0, 1, 2, 3]);
    assert_eq!(router.partitions_of(2)?, [8, 9, 10, 11]);
    let uneven = ShardRouter::contiguous(5, 2)?;
    assert_eq!(uneven.partitions_of(0)?, [0, 1, 2]);
    assert_eq!(uneven.partitions_of(1)?, [3, 4]);
    let custom = ShardRouter::new(vec![1, 0, 1, 0])?;
    assert_eq!(custom.partitions_of(1)?, [0, 2]);
    for i in 0..500 {
        let key = format!("user-{i}");
        let partition = partition_for(key.as_bytes(), 12);
        assert_eq!(router.partition_for(key.as_bytes()), partition);
        assert_eq!(router.shard_for(key.as_bytes()), partition / 4);
        assert_eq!(custom.shard_for(key.as_bytes()), 1 - partition_for(key.as_bytes(), 4) % 2);
    }
    for bad in [
        ShardRouter::new(vec![]),
        ShardRouter::new(vec![0, 2, 0]),
        ShardRouter::contiguous(0, 1),
        ShardRouter::contiguous(1, 0),
        ShardRouter::contiguous(2, 3),
    ] {
        assert!(matches!(bad, Err(KafkaError::Config { .. })), "{bad:?}");
    }
    let Err(KafkaError::Config { reason }) = router.partitions_of(3) else {
        return Err("shard 3 of 3 was accepted".into());
    };
    assert!(reason.contains("shard 3"), "{reason}");
    Ok(())
}

#[test]
fn librdkafka_murmur2_partitioner_agrees_with_partition_for() -> Res<()> {
    let Some(brokers) = kafka::brokers()? else { return Ok(()) };
    let topic = kafka::unique_topic("partitioner");
    kafka::create_topic(&brokers, &topic, 6, &[])?;
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    let messages: Vec<Out<'_>> =
        keys.iter().map(|k| Out { key: k.as_bytes(), value: Some(b"v"), headers: &[] }).collect();
    let landed = kafka::produce(&brokers, &topic, &messages)?;
    let mut used = std::collections::BTreeSet::new();
    for (key, (partition, _)) in keys.iter().zip(&landed) {
        assert_eq!(
            u32::try_from(*partition)?,
            partition_for(key.as_bytes(), 6),
            "key {key} landed in partition {partition}"
        );
        used.insert(*partition);
    }
    assert_eq!(used.len(), 6, "300 keys should use every partition");
    Ok(())
}
