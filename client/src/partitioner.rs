//! The key → partition mapping: Kafka's default partitioner, so a key lands on the same
//! partition number as it would in Kafka with the same partition count:
//! `(murmur2(key) & 0x7fffffff) % partitions`. Stable across versions (changing it would move
//! keys and break per-key order).

pub use cairn_proto::hash::{murmur2, partition_for_key};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafkas_murmur2_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input), expected, "murmur2({:?})", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn same_key_same_partition_and_in_range() {
        for n in [1u32, 3, 7, 100] {
            for k in ["order-1", "order-2", "customer-42", ""] {
                let p = partition_for_key(k.as_bytes(), n);
                assert!(p < n);
                assert_eq!(p, partition_for_key(k.as_bytes(), n));
            }
        }
    }
}
