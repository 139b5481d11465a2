//! Schema formats: parsing a registered text, its canonical form (what makes two
//! registrations the same schema) and the reader/writer check the compatibility levels build on.

use serde::{Deserialize, Serialize};

use super::avro;
use super::error::RegistryError;

/// A schema's format, as the REST API names it (`schemaType`; absent means AVRO).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Format {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl Format {
    /// # Errors
    /// 42201 for a type the registry does not know.
    pub fn parse(s: &str) -> Result<Format, RegistryError> {
        match s.to_ascii_uppercase().as_str() {
            "AVRO" => Ok(Format::Avro),
            "JSON" => Ok(Format::Json),
            "PROTOBUF" => Ok(Format::Protobuf),
            _ => Err(RegistryError::invalid_schema(format!("unknown schemaType {s:?} (AVRO, JSON or PROTOBUF)"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Avro => "AVRO",
            Format::Json => "JSON",
            Format::Protobuf => "PROTOBUF",
        }
    }

    /// The formats this registry checks and stores.
    pub const SUPPORTED: &'static [Format] = &[Format::Avro];
}

/// A schema parsed for checks (never stored: the registry keeps the text).
#[derive(Debug)]
pub enum ParsedSchema {
    Avro(avro::AvroSchema),
}

impl ParsedSchema {
    /// Parses `text` of `format`; `references` are the texts of the schemas it references
    /// (already resolved, in dependency order).
    ///
    /// # Errors
    /// 42201 with the parser's reason.
    pub fn parse(format: Format, text: &str, references: &[String]) -> Result<ParsedSchema, RegistryError> {
        match format {
            Format::Avro => avro::AvroSchema::parse(text, references).map(ParsedSchema::Avro),
            Format::Json | Format::Protobuf => Err(RegistryError::invalid_schema(format!(
                "schemaType {} is not supported by this version of Cairn (AVRO is)",
                format.name()
            ))),
        }
    }

    /// The text that identifies the schema: two registrations with the same canonical text
    /// (and references) are the same schema, with one id.
    pub fn canonical(&self) -> &str {
        match self {
            ParsedSchema::Avro(a) => a.canonical(),
        }
    }

    /// Why data written with `writer` cannot be read with `self` (empty when it can).
    pub fn can_read(&self, writer: &ParsedSchema) -> Vec<String> {
        match (self, writer) {
            (ParsedSchema::Avro(r), ParsedSchema::Avro(w)) => r.can_read(w),
        }
    }
}
