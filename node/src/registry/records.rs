//! What the registry keeps in its internal topic `__schemas`: one keyed record per subject
//! version, per compatibility setting and for the id counter. The partition keeps the latest
//! value of every key (its keyed state) however long the log grows or is truncated, and an
//! empty value deletes a key.

use serde::{Deserialize, Serialize};

use super::compat::Level;
use super::format::Format;

/// A schema another one uses by name (an Avro named type, a Protobuf import, a JSON `$ref`):
/// `subject` at `version` defines it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: u32,
}

/// One version of a subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    #[serde(rename = "schemaType", default)]
    pub format: Format,
    /// The schema's canonical text (see [`super::format::ParsedSchema::canonical`]).
    pub schema: String,
    #[serde(default)]
    pub references: Vec<Reference>,
    /// Soft-deleted: kept (its id still resolves) but no longer a live version of the subject.
    #[serde(default)]
    pub deleted: bool,
}

/// A change to the registry, as written to `__schemas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Version(VersionRecord),
    /// A hard-deleted version: its key is removed.
    VersionGone {
        subject: String,
        version: u32,
    },
    /// A subject's level (`None` subject: the global one); `None` level removes the setting.
    Config {
        subject: Option<String>,
        level: Option<Level>,
    },
    /// The next id to hand out: ids are never reused, even after hard deletes.
    NextId(u32),
}

#[derive(Serialize, Deserialize)]
struct ConfigValue {
    #[serde(rename = "compatibilityLevel")]
    level: Level,
}

#[derive(Serialize, Deserialize)]
struct NextIdValue {
    next_id: u32,
}

const VERSION: u8 = b'v';
const CONFIG: u8 = b'c';
const GLOBAL: u8 = b'g';
const NEXT_ID: u8 = b'n';

fn version_key(subject: &str, version: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(subject.len() + 6);
    k.push(VERSION);
    k.extend_from_slice(subject.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

impl Record {
    /// The record's key and value (empty: delete the key).
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Record::Version(v) => (version_key(&v.subject, v.version), json(v)),
            Record::VersionGone { subject, version } => (version_key(subject, *version), Vec::new()),
            Record::Config { subject, level } => {
                let key = match subject {
                    Some(s) => [&[CONFIG][..], s.as_bytes()].concat(),
                    None => vec![GLOBAL],
                };
                (key, level.map(|level| json(&ConfigValue { level })).unwrap_or_default())
            }
            Record::NextId(next_id) => (vec![NEXT_ID], json(&NextIdValue { next_id: *next_id })),
        }
    }

    /// The record a key and value of the keyed state stand for.
    ///
    /// # Errors
    /// A key or value this version does not understand.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Record, String> {
        let bad = |e: serde_json::Error| format!("undecodable registry record: {e}");
        match key.split_first() {
            Some((&VERSION, rest)) if rest.len() > 5 && rest[rest.len() - 5] == 0 => {
                let (s, v) = rest.split_at(rest.len() - 5);
                let subject = String::from_utf8(s.to_vec()).map_err(|e| e.to_string())?;
                let version = u32::from_be_bytes([v[1], v[2], v[3], v[4]]);
                if value.is_empty() {
                    return Ok(Record::VersionGone { subject, version });
                }
                let r: VersionRecord = serde_json::from_slice(value).map_err(bad)?;
                if r.subject != subject || r.version != version {
                    return Err(format!("registry record under {subject}/{version} names {}/{}", r.subject, r.version));
                }
                Ok(Record::Version(r))
            }
            Some((&CONFIG, s)) => Ok(Record::Config {
                subject: Some(String::from_utf8(s.to_vec()).map_err(|e| e.to_string())?),
                level: config_level(value)?,
            }),
            Some((&GLOBAL, [])) => Ok(Record::Config { subject: None, level: config_level(value)? }),
            Some((&NEXT_ID, [])) => {
                Ok(Record::NextId(serde_json::from_slice::<NextIdValue>(value).map_err(bad)?.next_id))
            }
            _ => Err(format!("unknown registry record key {key:?}")),
        }
    }
}

fn config_level(value: &[u8]) -> Result<Option<Level>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice::<ConfigValue>(value).map(|c| Some(c.level)).map_err(|e| e.to_string())
}

/// Serializing these plain structs cannot fail; an empty value would delete, so a (never
/// seen) failure writes "{}", which decoding refuses loudly.
fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_round_trips_through_its_key_and_value() {
        let v = VersionRecord {
            subject: "orders-value".into(),
            version: 7,
            id: 42,
            format: Format::Avro,
            schema: "\"string\"".into(),
            references: vec![Reference { name: "A".into(), subject: "a".into(), version: 1 }],
            deleted: true,
        };
        for r in [
            Record::Version(v),
            Record::VersionGone { subject: "s".into(), version: 3 },
            Record::Config { subject: Some("s".into()), level: Some(Level::Full) },
            Record::Config { subject: None, level: Some(Level::None) },
            Record::Config { subject: Some("s".into()), level: None },
            Record::NextId(9),
        ] {
            let (k, val) = r.encode();
            assert_eq!(Record::decode(&k, &val), Ok(r));
        }
        assert!(Record::decode(b"x", b"{}").is_err());
        assert!(Record::decode(b"n", b"{}").is_err());
    }
}
