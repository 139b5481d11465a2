//! Avro values in Confluent's wire format, as JSON on the Rust side: a serializer that
//! registers (or looks up) its schema under a subject, and a deserializer that fetches the
//! writer's schema by the id in the bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use serde_json::Value;

use super::{frame, unframe, SchemaError, SchemaRegistryClient};

/// Avro (de)serialization with a schema cache.
#[derive(Clone)]
pub struct AvroSerde {
    registry: SchemaRegistryClient,
    parsed: Arc<Mutex<HashMap<u32, Arc<Schema>>>>,
}

impl AvroSerde {
    pub fn new(registry: SchemaRegistryClient) -> AvroSerde {
        AvroSerde { registry, parsed: Arc::default() }
    }

    /// The registry this uses.
    pub fn registry(&self) -> &SchemaRegistryClient {
        &self.registry
    }

    async fn writer_schema(&self, id: u32) -> Result<Arc<Schema>, SchemaError> {
        if let Some(s) = self.parsed.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(s.clone());
        }
        let registered = self.registry.schema(id).await?;
        if registered.schema_type != "AVRO" {
            return Err(SchemaError::Data(format!("schema {id} is {}, not AVRO", registered.schema_type)));
        }
        let schema = Arc::new(
            Schema::parse_str(&registered.schema).map_err(|e| SchemaError::Data(format!("schema {id}: {e}")))?,
        );
        self.parsed.lock().unwrap_or_else(|p| p.into_inner()).insert(id, schema.clone());
        Ok(schema)
    }

    /// `value` (JSON shaped like the schema: objects for records) encoded with `schema`, framed
    /// with its id under `subject`: registered when `auto_register`, else looked up (it must be
    /// registered already).
    ///
    /// # Errors
    /// The registry's refusal (409 for an incompatible schema), a value that does not fit.
    pub async fn serialize(
        &self,
        subject: &str,
        schema: &str,
        value: &Value,
        auto_register: bool,
    ) -> Result<Vec<u8>, SchemaError> {
        self.writer(subject, schema, auto_register).await?.write(value)
    }

    /// A writer of `schema` under `subject` (registered when `auto_register`, else looked up):
    /// the registry is asked once, then every value is encoded locally.
    ///
    /// # Errors
    /// The registry's refusal (409 for an incompatible schema, 40403 when not registered).
    pub async fn writer(&self, subject: &str, schema: &str, auto_register: bool) -> Result<AvroWriter, SchemaError> {
        let id = if auto_register {
            self.registry.register(subject, "AVRO", schema).await?
        } else {
            self.registry.lookup(subject, "AVRO", schema).await?
        };
        Ok(AvroWriter { id, schema: self.writer_schema(id).await? })
    }

    /// The JSON form of framed Avro bytes, decoded with the writer's schema.
    ///
    /// # Errors
    /// Bytes not in the wire format, an unknown id, data that does not decode.
    pub async fn deserialize(&self, bytes: &[u8]) -> Result<Value, SchemaError> {
        let (id, data) = unframe(bytes)?;
        let schema = self.writer_schema(id).await?;
        decode(&schema, data).map_err(|e| SchemaError::Data(format!("schema {id}: {e}")))
    }
}

/// Encodes values with one registered schema (see [`AvroSerde::writer`]).
#[derive(Clone, Debug)]
pub struct AvroWriter {
    id: u32,
    schema: Arc<Schema>,
}

impl AvroWriter {
    /// The schema's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// `value` framed with the schema's id.
    ///
    /// # Errors
    /// A value that does not fit the schema.
    pub fn write(&self, value: &Value) -> Result<Vec<u8>, SchemaError> {
        Ok(frame(self.id, &encode(&self.schema, value)?))
    }
}

/// Avro binary of a JSON value (objects resolve to the schema's records, in field order).
///
/// # Errors
/// A value that does not fit the schema.
pub fn encode(schema: &Schema, value: &Value) -> Result<Vec<u8>, SchemaError> {
    let avro = Avro::try_from(value.clone())
        .and_then(|v| v.resolve(schema))
        .map_err(|e| SchemaError::Data(format!("the value does not fit the schema: {e}")))?;
    GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(avro))
        .map_err(|e| SchemaError::Data(e.to_string()))
}

/// The JSON form of Avro binary `data` written with `schema`.
///
/// # Errors
/// Data that does not decode.
pub fn decode(schema: &Schema, mut data: &[u8]) -> Result<Value, String> {
    let avro =
        GenericDatumReader::builder(schema).build().and_then(|r| r.read_value(&mut data)).map_err(|e| e.to_string())?;
    Value::try_from(avro).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_round_trip_through_avro() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"E","fields":[{"name":"id","type":"string"},{"name":"n","type":"long","default":0}]}"#,
        )
        .expect("schema");
        let v = serde_json::json!({"id": "a", "n": 5});
        let bytes = encode(&schema, &v).expect("encodes");
        assert_eq!(decode(&schema, &bytes).expect("decodes"), v);
        assert!(encode(&schema, &serde_json::json!({"id": 3})).is_err(), "a value that does not fit");
    }
}
