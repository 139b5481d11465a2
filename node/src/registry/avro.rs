//! Avro schemas: parsed and checked with the `apache-avro` crate's resolution rules (the Avro
//! specification's "Schema Resolution", as Confluent's checker applies them through Avro's
//! Java `SchemaCompatibility`).

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;

use super::error::RegistryError;

#[derive(Debug)]
pub struct AvroSchema {
    schema: Schema,
    canonical: String,
}

impl AvroSchema {
    /// # Errors
    /// 42201: not JSON, or not a valid Avro schema (with its references).
    pub fn parse(text: &str, references: &[String]) -> Result<AvroSchema, RegistryError> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| RegistryError::invalid_schema(format!("not JSON: {e}")))?;
        let schema = if references.is_empty() {
            Schema::parse(&json).map_err(|e| RegistryError::invalid_schema(e.to_string()))?
        } else {
            Schema::parse_str_with_list(text, references).map_err(|e| RegistryError::invalid_schema(e.to_string()))?.0
        };
        // The JSON as written, without insignificant whitespace: doc strings, defaults and
        // aliases stay (they matter to readers), so a changed default is a new schema.
        let canonical = json.to_string();
        Ok(AvroSchema { schema, canonical })
    }

    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Why `self` cannot read data written with `writer`. A partial match (a union or enum that
    /// resolves only for some values) counts as incompatible, as it does in Avro's Java
    /// checker: some records written would fail to decode.
    pub fn can_read(&self, writer: &AvroSchema) -> Vec<String> {
        match SchemaCompatibility::can_read(&writer.schema, &self.schema) {
            Ok(Compatibility::Full) => Vec::new(),
            Ok(Compatibility::Partial) => {
                vec!["only some of the values the writer's unions or enums can hold resolve to the reader".into()]
            }
            Err(e) => vec![e.to_string()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> AvroSchema {
        AvroSchema::parse(s, &[]).expect("valid")
    }

    fn record(fields: &str) -> AvroSchema {
        parse(&format!(r#"{{"type":"record","name":"E","fields":[{fields}]}}"#))
    }

    #[test]
    fn invalid_schemas_are_refused_with_42201() {
        for bad in ["{", r#"{"type":"record"}"#, r#"{"type":"nope"}"#, r#""unknown.Name""#] {
            assert_eq!(AvroSchema::parse(bad, &[]).map(|_| ()).map_err(|e| e.code), Err(42201), "{bad}");
        }
    }

    #[test]
    fn whitespace_does_not_change_the_canonical_form_but_a_default_does() {
        let a = parse(r#"{"type": "record", "name": "E", "fields": [{"name": "a", "type": "int"}]}"#);
        let b = parse(r#"{"type":"record","name":"E","fields":[{"name":"a","type":"int"}]}"#);
        let c = parse(r#"{"type":"record","name":"E","fields":[{"name":"a","type":"int","default":1}]}"#);
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(a.canonical(), c.canonical());
    }

    // One rule per test: a pair that must pass (reader reads writer) and one that must fail.

    #[test]
    fn an_added_field_needs_a_default_for_the_reader() {
        let old = record(r#"{"name":"a","type":"int"}"#);
        let with_default = record(r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":""}"#);
        let without = record(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
        assert!(with_default.can_read(&old).is_empty());
        assert!(!without.can_read(&old).is_empty());
    }

    #[test]
    fn a_removed_field_is_ignored_by_the_reader() {
        let old = record(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
        let new = record(r#"{"name":"a","type":"int"}"#);
        assert!(new.can_read(&old).is_empty());
        assert!(!old.can_read(&new).is_empty(), "the old reader misses b, which has no default");
    }

    #[test]
    fn numbers_widen_but_do_not_narrow() {
        let int = record(r#"{"name":"a","type":"int"}"#);
        let long = record(r#"{"name":"a","type":"long"}"#);
        assert!(long.can_read(&int).is_empty());
        assert!(!int.can_read(&long).is_empty());
    }

    #[test]
    fn a_changed_type_is_incompatible() {
        let s = record(r#"{"name":"a","type":"string"}"#);
        let b = record(r#"{"name":"a","type":"boolean"}"#);
        let s2 = record(r#"{"name":"a","type":"string"}"#);
        assert!(s.can_read(&s2).is_empty());
        assert!(!b.can_read(&s).is_empty());
    }

    #[test]
    fn an_enum_symbol_the_reader_lacks_is_incompatible() {
        let e = |symbols: &str| {
            record(&format!(r#"{{"name":"s","type":{{"type":"enum","name":"S","symbols":[{symbols}]}}}}"#))
        };
        let two = e(r#""A","B""#);
        let three = e(r#""A","B","C""#);
        assert!(three.can_read(&two).is_empty());
        assert!(!two.can_read(&three).is_empty());
    }

    #[test]
    fn a_union_branch_the_reader_lacks_is_incompatible() {
        let narrow = record(r#"{"name":"a","type":["null","string"]}"#);
        let wide = record(r#"{"name":"a","type":["null","string","int"]}"#);
        assert!(wide.can_read(&narrow).is_empty());
        assert!(!narrow.can_read(&wide).is_empty());
    }

    #[test]
    fn references_resolve_named_types_from_other_schemas() {
        let address = r#"{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}"#.to_string();
        let order = r#"{"type":"record","name":"Order","fields":[{"name":"to","type":"Address"}]}"#;
        assert!(AvroSchema::parse(order, std::slice::from_ref(&address)).is_ok());
        assert_eq!(AvroSchema::parse(order, &[]).map(|_| ()).map_err(|e| e.code), Err(42201));
    }
}
