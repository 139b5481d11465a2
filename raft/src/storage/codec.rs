//! Versioned value encodings: one format byte, then bincode. A future format bumps the byte and
//! keeps a decoder for the old one.
//!
//! Log entries (the partition data) use a checksummed format: `[FORMAT_CHECKED] ++ crc32(body)
//! ++ body`, so damaged record bytes are found on every read that decodes them (a fetch, a
//! replication read, the scrubber), also where RocksDB's own block and blob checksums do not
//! look (bytes damaged in memory or before they reached RocksDB). Entries written in the old
//! format still decode, without a check.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::StoreError;

const FORMAT_V1: u8 = 1;
/// bincode with a CRC-32 of the body in front (log entries written before conditional appends).
const FORMAT_CHECKED: u8 = 2;
/// The same, with the body in today's layout (log entries whose batches carry conditions and
/// keys).
const FORMAT_CHECKED_V3: u8 = 3;

/// Encodes `value` as `[FORMAT_V1] ++ bincode(value)`.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let size = bincode::serialized_size(value).map_err(|source| StoreError::Encode { what, source })?;
    let mut out = Vec::with_capacity(1 + size as usize);
    out.push(FORMAT_V1);
    bincode::serialize_into(&mut out, value).map_err(|source| StoreError::Encode { what, source })?;
    Ok(out)
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => bincode::deserialize(body).map_err(|source| StoreError::Decode { what, source }),
        Some((&version, _)) => Err(StoreError::Version { what, version }),
        None => Err(StoreError::Version { what, version: 0 }),
    }
}

/// Encodes `value` as `[FORMAT_CHECKED_V3] ++ crc32(body) (LE) ++ bincode(value)`.
pub fn encode_checked<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let size = bincode::serialized_size(value).map_err(|source| StoreError::Encode { what, source })?;
    let mut out = Vec::with_capacity(5 + size as usize);
    out.push(FORMAT_CHECKED_V3);
    out.extend_from_slice(&[0; 4]);
    bincode::serialize_into(&mut out, value).map_err(|source| StoreError::Encode { what, source })?;
    let crc = crc32fast::hash(&out[5..]);
    out[1..5].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes a value written by [`encode_checked`] in today's layout `T`, or one written in the
/// earlier layout `Old` (checked, or unchecked by [`encode`]) and converted. `verify` false
/// skips the checksum: only the fault-injection switch `skip-fetch-checksum` does that.
pub fn decode_checked<T, Old>(what: &'static str, bytes: &[u8], verify: bool) -> Result<T, StoreError>
where
    T: DeserializeOwned,
    Old: DeserializeOwned + Into<T>,
{
    fn de<V: DeserializeOwned>(what: &'static str, body: &[u8]) -> Result<V, StoreError> {
        bincode::deserialize(body).map_err(|source| StoreError::Decode { what, source })
    }
    match bytes.split_first() {
        Some((&FORMAT_CHECKED_V3, rest)) => de(what, checked_body(what, rest, verify)?),
        Some((&FORMAT_CHECKED, rest)) => de::<Old>(what, checked_body(what, rest, verify)?).map(Into::into),
        _ => decode::<Old>(what, bytes).map(Into::into),
    }
}

/// The body after a checksum, verified unless `verify` is false.
fn checked_body<'a>(what: &'static str, rest: &'a [u8], verify: bool) -> Result<&'a [u8], StoreError> {
    if rest.len() < 4 {
        return Err(StoreError::Checksum { what, stored: 0, computed: 0 });
    }
    let (crc, body) = rest.split_at(4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32fast::hash(body);
    if verify && stored != computed {
        return Err(StoreError::Checksum { what, stored, computed });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_values_round_trip_and_any_flipped_bit_is_caught() {
        let v = (7u64, String::from("a record"), vec![9u8; 64]);
        let bytes = encode_checked("t", &v).expect("encode");
        assert_eq!(bytes[0], FORMAT_CHECKED_V3);
        let back: (u64, String, Vec<u8>) =
            decode_checked::<_, (u64, String, Vec<u8>)>("t", &bytes, true).expect("decode");
        assert_eq!(back, v);
        for i in 1..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            let r = decode_checked::<(u64, String, Vec<u8>), (u64, String, Vec<u8>)>("t", &bad, true);
            assert!(matches!(r, Err(StoreError::Checksum { .. })), "flip at byte {i} went unnoticed: {r:?}");
            assert!(r.expect_err("checked").is_corruption());
        }
        // Unverified (the fault switch), a flipped value byte decodes into a different value.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        let altered: (u64, String, Vec<u8>) =
            decode_checked::<_, (u64, String, Vec<u8>)>("t", &bad, false).expect("decodes unchecked");
        assert_ne!(altered, v);
        // The old formats still read, in the old layout, converted.
        let old = encode("t", &v).expect("encode");
        assert_eq!(
            decode_checked::<(u64, String, Vec<u8>), (u64, String, Vec<u8>)>("t", &old, true).expect("old format"),
            v
        );
        let mut checked_v2 = bytes.clone();
        checked_v2[0] = FORMAT_CHECKED;
        assert_eq!(
            decode_checked::<(u64, String, Vec<u8>), (u64, String, Vec<u8>)>("t", &checked_v2, true).expect("format 2"),
            v
        );
    }

    #[test]
    fn round_trips_and_rejects_unknown_versions() {
        let v = (7u64, String::from("x"), vec![1u8, 2, 3]);
        let bytes = encode("t", &v).expect("encode");
        assert_eq!(bytes[0], FORMAT_V1);
        let back: (u64, String, Vec<u8>) = decode("t", &bytes).expect("decode");
        assert_eq!(back, v);

        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(matches!(decode::<(u64, String, Vec<u8>)>("t", &bad), Err(StoreError::Version { version: 9, .. })));
        assert!(decode::<u64>("t", &[]).is_err());
        assert!(decode::<(u64, String, Vec<u8>)>("t", &bytes[..bytes.len() - 1]).is_err());
    }
}
