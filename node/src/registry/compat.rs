//! Compatibility levels and the one check every format shares: which registered versions a new
//! schema is compared with, and in which direction.
//!
//! ```text
//!  BACKWARD            new reads data written with the latest version
//!  FORWARD             the latest version reads data written with the new one
//!  FULL                both
//!  *_TRANSITIVE        the same against every live version, not only the latest
//!  NONE                no check
//! ```

use serde::{Deserialize, Serialize};

use super::error::RegistryError;
use super::format::ParsedSchema;

/// A subject's (or the global) compatibility level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

/// The level of a registry without any configuration (Confluent's default).
pub const DEFAULT_LEVEL: Level = Level::Backward;

impl Level {
    /// Parses the REST API's spelling (case-insensitive, as Confluent accepts it).
    ///
    /// # Errors
    /// 42203 for anything else.
    pub fn parse(s: &str) -> Result<Level, RegistryError> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return Err(RegistryError::invalid_compatibility_level(s)),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(self, Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive)
    }

    fn backward(self) -> bool {
        matches!(self, Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive)
    }

    fn forward(self) -> bool {
        matches!(self, Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive)
    }
}

/// Why `new` may not follow `previous` (live versions, oldest first) at `level`: one message
/// per failed comparison, empty when compatible.
pub fn check(level: Level, new: &ParsedSchema, previous: &[(u32, &ParsedSchema)]) -> Vec<String> {
    let against: &[(u32, &ParsedSchema)] = match previous {
        [] => &[],
        _ if level.transitive() => previous,
        [.., last] => std::slice::from_ref(last),
    };
    let mut why = Vec::new();
    for (version, old) in against {
        if level.backward() {
            why.extend(
                new.can_read(old)
                    .into_iter()
                    .map(|w| format!("version {version}: the new schema cannot read data written with it: {w}")),
            );
        }
        if level.forward() {
            why.extend(
                old.can_read(new)
                    .into_iter()
                    .map(|w| format!("version {version}: it cannot read data written with the new schema: {w}")),
            );
        }
    }
    why
}

#[cfg(test)]
mod tests {
    use super::super::format::{Format, ParsedSchema};
    use super::*;

    fn avro(fields: &str) -> ParsedSchema {
        let s = format!(r#"{{"type":"record","name":"Order","fields":[{fields}]}}"#);
        ParsedSchema::parse(Format::Avro, &s, &[]).expect("valid avro")
    }

    const ID: &str = r#"{"name":"id","type":"string"}"#;
    const AMOUNT_DEFAULT: &str = r#"{"name":"amount","type":"long","default":0}"#;
    const AMOUNT: &str = r#"{"name":"amount","type":"long"}"#;

    #[test]
    fn levels_parse_in_any_case_and_refuse_the_rest() {
        assert_eq!(Level::parse("full_transitive"), Ok(Level::FullTransitive));
        assert_eq!(Level::parse("BACKWARD").map(Level::name), Ok("BACKWARD"));
        assert_eq!(Level::parse("SIDEWAYS").map_err(|e| e.code), Err(42203));
    }

    #[test]
    fn backward_compares_with_the_latest_only_and_transitive_with_all() {
        let v1 = avro(ID);
        let v2 = avro(&format!("{ID},{AMOUNT_DEFAULT}"));
        // v3 drops the default: it cannot read v1's data (no amount there), but reads v2's.
        let v3 = avro(&format!("{ID},{AMOUNT}"));
        assert!(check(Level::Backward, &v3, &[(1, &v1), (2, &v2)]).is_empty());
        let why = check(Level::BackwardTransitive, &v3, &[(1, &v1), (2, &v2)]);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(why[0].starts_with("version 1:"), "{why:?}");
    }

    #[test]
    fn forward_asks_the_old_schema_to_read_the_new_data() {
        let v1 = avro(&format!("{ID},{AMOUNT}"));
        // Removing a field the old schema requires without default: old readers fail.
        let v2 = avro(ID);
        assert!(check(Level::Backward, &v2, &[(1, &v1)]).is_empty());
        assert_eq!(check(Level::Forward, &v2, &[(1, &v1)]).len(), 1);
        assert_eq!(check(Level::Full, &v2, &[(1, &v1)]).len(), 1);
        assert!(check(Level::None, &v2, &[(1, &v1)]).is_empty());
    }

    #[test]
    fn full_needs_both_directions() {
        let v1 = avro(ID);
        let v2 = avro(&format!("{ID},{AMOUNT_DEFAULT}"));
        assert!(check(Level::Full, &v2, &[(1, &v1)]).is_empty());
        let v3 = avro(&format!("{ID},{AMOUNT}"));
        let why = check(Level::Full, &v3, &[(1, &v1)]);
        assert_eq!(why.len(), 1, "backward fails, forward holds: {why:?}");
        assert!(check(Level::ForwardTransitive, &v3, &[(1, &v1)]).is_empty());
        assert_eq!(check(Level::FullTransitive, &v3, &[(1, &v1), (2, &v2)]).len(), 1);
    }
}
