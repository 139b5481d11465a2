//! Broker-side schema validation: a record's key or value must start with the Confluent wire
//! format's header (magic byte 0, then a 4-byte big-endian schema id) naming a schema that is a
//! live version of the topic's subject (`<topic>-key` / `<topic>-value`, TopicNameStrategy).
//!
//! The produce path asks the registry once per (subject, id) and keeps the positive answers for
//! [`CACHE_TTL`]: a version deleted meanwhile keeps validating for at most that long.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ops::Op;
use super::Registry;

/// How long a positive answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Positive answers kept at most (the cache starts over when full).
const CACHE_MAX: usize = 10_000;

/// Why a record is refused, or why it could not be checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The record does not validate (definite).
    Invalid(String),
    /// The registry did not answer (retriable).
    Unavailable(String),
}

/// The (subject, id) pairs found valid lately.
#[derive(Default)]
pub struct ValidCache {
    seen: Mutex<HashMap<(String, u32), Instant>>,
}

impl ValidCache {
    fn hit(&self, subject: &str, id: u32) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&(subject.to_string(), id)).is_some_and(|t| t.elapsed() < CACHE_TTL)
    }

    fn insert(&self, subject: &str, id: u32) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= CACHE_MAX {
            seen.clear();
        }
        seen.insert((subject.to_string(), id), Instant::now());
    }
}

/// The schema id a framed key or value carries.
///
/// # Errors
/// What is wrong with the header.
pub fn schema_id(bytes: &[u8]) -> Result<u32, String> {
    match bytes {
        [] => Err("it is empty (no Confluent wire format header)".into()),
        [m, ..] if *m != 0 => {
            Err(format!("it starts with byte {m:#04x}, not the magic byte 0 of the Confluent wire format"))
        }
        [0, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(format!("it is {} bytes, shorter than the 5-byte wire format header", bytes.len())),
    }
}

impl Registry {
    /// Whether `bytes` (a key or value) carries the id of a live version of `subject`.
    ///
    /// # Errors
    /// [`Refusal::Invalid`] naming the problem, [`Refusal::Unavailable`] when the registry
    /// did not answer.
    pub async fn check_framed(&self, subject: &str, bytes: &[u8]) -> Result<(), Refusal> {
        let id = schema_id(bytes).map_err(Refusal::Invalid)?;
        if self.valid.hit(subject, id) {
            return Ok(());
        }
        match self.call(Op::SubjectsById { id, deleted: false }).await {
            Ok(subjects) if subjects.as_array().is_some_and(|a| a.iter().any(|s| s.as_str() == Some(subject))) => {
                self.valid.insert(subject, id);
                Ok(())
            }
            Ok(Value::Array(list)) if list.is_empty() => {
                Err(Refusal::Invalid(format!("schema id {id} is not a live version of any subject")))
            }
            Ok(_) => Err(Refusal::Invalid(format!("schema id {id} is not registered under subject {subject:?}"))),
            Err(e) if e.code == 40403 => Err(Refusal::Invalid(format!("schema id {id} is not registered"))),
            Err(e) => Err(Refusal::Unavailable(e.message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_read_or_its_problem_named() {
        assert_eq!(schema_id(&[0, 0, 0, 1, 2, 9, 9]), Ok(258));
        assert_eq!(schema_id(&[0, 0, 0, 0, 7]), Ok(7));
        assert!(schema_id(b"").expect_err("refused").contains("empty"));
        assert!(schema_id(b"{\"a\":1}").expect_err("refused").contains("0x7b"));
        assert!(schema_id(&[0, 1]).expect_err("refused").contains("shorter"));
    }

    #[test]
    fn answers_are_cached_for_a_while() {
        let c = ValidCache::default();
        assert!(!c.hit("t-value", 1));
        c.insert("t-value", 1);
        assert!(c.hit("t-value", 1));
        assert!(!c.hit("t-key", 1));
    }
}
