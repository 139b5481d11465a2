//! Versioned value encodings: one format byte, then bincode. A future format bumps the byte and
//! keeps a decoder for the old one.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::StoreError;

const FORMAT_V1: u8 = 1;

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

#[cfg(test)]
mod tests {
    use super::*;

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
