//! Schemas from a schema registry speaking Confluent's REST API (Cairn's nodes serve one on
//! their HTTP listener: docs/schemas.md), and Avro serialization in Confluent's wire format
//! (magic byte 0, a 4-byte big-endian schema id, the Avro binary encoding).
//!
//! ```no_run
//! # async fn f() -> Result<(), cairn_client::schema::SchemaError> {
//! use cairn_client::schema::{AvroSerde, SchemaRegistryClient};
//! let registry = SchemaRegistryClient::new("http://127.0.0.1:9701")?;
//! let schema = r#"{"type":"record","name":"OrderPlaced","fields":[{"name":"id","type":"string"}]}"#;
//! let serde = AvroSerde::new(registry);
//! let bytes = serde.serialize("orders-value", schema, &serde_json::json!({"id": "o-1"}), true).await?;
//! assert_eq!(serde.deserialize(&bytes).await?, serde_json::json!({"id": "o-1"}));
//! # Ok(()) }
//! ```

mod avro;
mod http;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use avro::{AvroSerde, AvroWriter};
use serde_json::{json, Value};

/// What went wrong between the client and the registry, or with the data.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The registry refused (Confluent's `error_code` and message): 409 incompatible, 40401
    /// subject not found, 42201 invalid schema...
    #[error("schema registry error {code}: {message}")]
    Registry { code: u32, message: String },
    /// No answer (connection refused, timeout, not HTTP).
    #[error("schema registry unreachable: {0}")]
    Unreachable(String),
    /// Bytes that are not Confluent's wire format, or a value that does not fit the schema.
    #[error("{0}")]
    Data(String),
}

/// A schema as the registry holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredSchema {
    pub id: u32,
    /// `AVRO`, `JSON` or `PROTOBUF`.
    pub schema_type: String,
    pub schema: String,
}

/// A client of one registry, caching schemas by id (ids never change what they name).
#[derive(Clone)]
pub struct SchemaRegistryClient {
    base: http::Base,
    by_id: Arc<Mutex<HashMap<u32, Arc<RegisteredSchema>>>>,
}

impl SchemaRegistryClient {
    /// `url`: `http://host:port` (plain HTTP; the listener has no TLS).
    ///
    /// # Errors
    /// A URL that is not `http://host:port`.
    pub fn new(url: &str) -> Result<SchemaRegistryClient, SchemaError> {
        Ok(SchemaRegistryClient { base: http::Base::parse(url)?, by_id: Arc::default() })
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, SchemaError> {
        self.base.call(method, path, body).await
    }

    /// Registers `schema` (of `schema_type`) under `subject`, or finds it registered; its id.
    ///
    /// # Errors
    /// 409 (incompatible), 42201 (invalid), unreachable.
    pub async fn register(&self, subject: &str, schema_type: &str, schema: &str) -> Result<u32, SchemaError> {
        let body = json!({"schema": schema, "schemaType": schema_type});
        let v = self.call("POST", &format!("/subjects/{}/versions", http::encode(subject)), Some(body)).await?;
        id_of(&v)
    }

    /// The id of `schema` as a version of `subject` (without registering it).
    ///
    /// # Errors
    /// 40401, 40403, unreachable.
    pub async fn lookup(&self, subject: &str, schema_type: &str, schema: &str) -> Result<u32, SchemaError> {
        let body = json!({"schema": schema, "schemaType": schema_type});
        let v = self.call("POST", &format!("/subjects/{}", http::encode(subject)), Some(body)).await?;
        id_of(&v)
    }

    /// Schema `id` (cached after the first fetch).
    ///
    /// # Errors
    /// 40403, unreachable.
    pub async fn schema(&self, id: u32) -> Result<Arc<RegisteredSchema>, SchemaError> {
        if let Some(s) = self.by_id.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(s.clone());
        }
        let v = self.call("GET", &format!("/schemas/ids/{id}"), None).await?;
        let s = Arc::new(RegisteredSchema {
            id,
            schema_type: v["schemaType"].as_str().unwrap_or("AVRO").to_string(),
            schema: v["schema"].as_str().ok_or_else(|| SchemaError::Data(format!("schema {id}: no text")))?.into(),
        });
        self.by_id.lock().unwrap_or_else(|p| p.into_inner()).insert(id, s.clone());
        Ok(s)
    }

    /// The latest live version of `subject`: its id and text.
    ///
    /// # Errors
    /// 40401, unreachable.
    pub async fn latest(&self, subject: &str) -> Result<RegisteredSchema, SchemaError> {
        let v = self.call("GET", &format!("/subjects/{}/versions/latest", http::encode(subject)), None).await?;
        Ok(RegisteredSchema {
            id: id_of(&v)?,
            schema_type: v["schemaType"].as_str().unwrap_or("AVRO").to_string(),
            schema: v["schema"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Every subject with a live version.
    ///
    /// # Errors
    /// Unreachable.
    pub async fn subjects(&self) -> Result<Vec<String>, SchemaError> {
        let v = self.call("GET", "/subjects", None).await?;
        Ok(v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect())
    }

    /// Version `version` (a number or `latest`) of `subject`, as the registry answers it
    /// (`subject`, `version`, `id`, `schema`, ...).
    ///
    /// # Errors
    /// 40401, 40402, 42202, unreachable.
    pub async fn version(&self, subject: &str, version: &str) -> Result<Value, SchemaError> {
        self.call("GET", &format!("/subjects/{}/versions/{}", http::encode(subject), http::encode(version)), None).await
    }

    /// Whether `schema` may be registered under `subject` (against what a registration would
    /// be checked with); the registry's reasons when not.
    ///
    /// # Errors
    /// 40401 (no such subject), 42201, unreachable.
    pub async fn check(&self, subject: &str, schema_type: &str, schema: &str) -> Result<Vec<String>, SchemaError> {
        let body = json!({"schema": schema, "schemaType": schema_type});
        let path = format!("/compatibility/subjects/{}/versions?verbose=true", http::encode(subject));
        let v = self.call("POST", &path, Some(body)).await?;
        if v["is_compatible"].as_bool() == Some(true) {
            return Ok(Vec::new());
        }
        let why: Vec<String> =
            v["messages"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
        Ok(if why.is_empty() { vec!["not compatible".to_string()] } else { why })
    }
}

fn id_of(v: &Value) -> Result<u32, SchemaError> {
    v["id"]
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| SchemaError::Data(format!("the registry answered without an id: {v}")))
}

/// The schema id at the head of a framed key or value, and the encoded data after it.
///
/// # Errors
/// Bytes that are not Confluent's wire format.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), SchemaError> {
    match bytes {
        [0, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [m, ..] if *m != 0 => Err(SchemaError::Data(format!("not Confluent's wire format: magic byte {m:#04x}"))),
        _ => Err(SchemaError::Data(format!("not Confluent's wire format: {} bytes", bytes.len()))),
    }
}

/// `data` framed with schema `id`.
pub fn frame(id: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + data.len());
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_foreign_bytes_are_refused() {
        let framed = frame(258, b"abc");
        assert_eq!(framed[..5], [0, 0, 0, 1, 2]);
        assert_eq!(unframe(&framed).expect("framed"), (258, &b"abc"[..]));
        assert!(unframe(b"{}").is_err());
        assert!(unframe(&[0, 1]).is_err());
    }
}
