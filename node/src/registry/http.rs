//! Confluent Schema Registry's REST API on the node's HTTP listener (docs/schemas.md lists the
//! endpoints). Requests become [`Op`]s; answers and errors keep Confluent's JSON shapes and
//! error codes, so existing clients and serializers work unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::compat::Level;
use super::error::RegistryError;
use super::format::Format;
use super::ops::Op;
use super::records::Reference;
use super::state::{SchemaInput, VersionSpec};
use super::Registry;

/// Confluent's media type: what its clients send and accept.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// Largest request body read (a schema is at most 1 MiB; JSON escaping can grow it).
const BODY_BYTES_MAX: usize = 4 << 20;

type Reg = State<Arc<Registry>>;
type Query = RawQuery;

/// The registry's routes (state included: merge into any router).
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version).delete(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(version_schema))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/schemas/types", get(types))
        .route("/compatibility/subjects/{subject}/versions", post(compatibility_all))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility))
        .route("/config", get(get_global).put(put_global).delete(delete_global))
        .route("/config/{subject}", get(get_config).put(put_config).delete(delete_config))
        .route("/mode", get(mode))
        .route("/mode/{subject}", get(mode))
        // Room for a 1 MiB schema escaped in JSON (axum's default is 2 MiB).
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(registry)
}

/// A registry answer: 200 with `value`, or the error's status with Confluent's error body.
fn answer(result: Result<Value, RegistryError>) -> Response {
    let (status, body) = match result {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => (
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json!({"error_code": e.code, "message": e.message}),
        ),
    };
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

/// The answer for a path or method the registry does not serve.
pub fn not_found(uri: &Uri) -> Response {
    answer(Err(RegistryError::not_found(uri.path())))
}

fn params(q: &Query) -> HashMap<String, String> {
    q.0.as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_ascii_lowercase())
        })
        .collect()
}

fn flag(q: &Query, name: &str) -> bool {
    params(q).get(name).is_some_and(|v| v == "true")
}

fn version_spec(v: &str) -> Result<VersionSpec, RegistryError> {
    VersionSpec::parse(v)
}

fn id(v: &str) -> Result<u32, RegistryError> {
    v.parse().map_err(|_| RegistryError::schema_not_found(format!("id {v:?}")))
}

/// A request body with a schema: `{"schema": "...", "schemaType": "AVRO", "references": [...]}`.
#[derive(Deserialize)]
struct SchemaBody {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Reference>>,
}

fn schema_input(body: &Bytes) -> Result<SchemaInput, RegistryError> {
    if body.len() > BODY_BYTES_MAX {
        return Err(RegistryError::invalid_schema(format!("the request body is larger than {BODY_BYTES_MAX} bytes")));
    }
    let b: SchemaBody = serde_json::from_slice(body)
        .map_err(|e| RegistryError::unprocessable(format!("Unrecognized request body: {e}")))?;
    let schema = b.schema.ok_or_else(|| RegistryError::invalid_schema("the request has no \"schema\""))?;
    let format = match b.schema_type.as_deref() {
        None | Some("") => Format::Avro,
        Some(t) => Format::parse(t)?,
    };
    Ok(SchemaInput { schema, format, references: b.references.unwrap_or_default() })
}

async fn run(reg: &Registry, op: Result<Op, RegistryError>) -> Response {
    match op {
        Ok(op) => answer(reg.rest_call(op).await),
        Err(e) => answer(Err(e)),
    }
}

async fn subjects(State(reg): Reg, q: Query) -> Response {
    run(&reg, Ok(Op::Subjects { deleted: flag(&q, "deleted") })).await
}

async fn versions(State(reg): Reg, Path(subject): Path<String>, q: Query) -> Response {
    run(&reg, Ok(Op::Versions { subject, deleted: flag(&q, "deleted") })).await
}

async fn register(State(reg): Reg, Path(subject): Path<String>, body: Bytes) -> Response {
    let op = schema_input(&body).map(|schema| Op::Register { subject, schema });
    match op {
        // Confluent answers a registration with the id alone.
        Ok(op) => answer(reg.rest_call(op).await.map(|v| json!({"id": v["id"]}))),
        Err(e) => answer(Err(e)),
    }
}

async fn lookup(State(reg): Reg, Path(subject): Path<String>, q: Query, body: Bytes) -> Response {
    let op = schema_input(&body).map(|schema| Op::Lookup { subject, schema, deleted: flag(&q, "deleted") });
    run(&reg, op).await
}

async fn version(State(reg): Reg, Path((subject, v)): Path<(String, String)>, q: Query) -> Response {
    let op = version_spec(&v).map(|version| Op::GetVersion { subject, version, deleted: flag(&q, "deleted") });
    run(&reg, op).await
}

async fn version_schema(State(reg): Reg, Path((subject, v)): Path<(String, String)>, q: Query) -> Response {
    let op = version_spec(&v).map(|version| Op::GetVersion { subject, version, deleted: flag(&q, "deleted") });
    match op {
        Ok(op) => raw_schema(reg.rest_call(op).await),
        Err(e) => answer(Err(e)),
    }
}

/// The schema text itself as the body (what `/schema` endpoints answer).
fn raw_schema(result: Result<Value, RegistryError>) -> Response {
    match result {
        Ok(v) => {
            let text = v["schema"].as_str().unwrap_or_default().to_string();
            (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
        }
        Err(e) => answer(Err(e)),
    }
}

async fn delete_subject(State(reg): Reg, Path(subject): Path<String>, q: Query) -> Response {
    run(&reg, Ok(Op::DeleteSubject { subject, permanent: flag(&q, "permanent") })).await
}

async fn delete_version(State(reg): Reg, Path((subject, v)): Path<(String, String)>, q: Query) -> Response {
    let op = version_spec(&v).map(|version| Op::DeleteVersion { subject, version, permanent: flag(&q, "permanent") });
    run(&reg, op).await
}

async fn schema_by_id(State(reg): Reg, Path(i): Path<String>) -> Response {
    run(&reg, id(&i).map(|id| Op::SchemaById { id })).await
}

async fn schema_text_by_id(State(reg): Reg, Path(i): Path<String>) -> Response {
    match id(&i) {
        Ok(id) => raw_schema(reg.rest_call(Op::SchemaById { id }).await),
        Err(e) => answer(Err(e)),
    }
}

async fn subjects_by_id(State(reg): Reg, Path(i): Path<String>, q: Query) -> Response {
    run(&reg, id(&i).map(|id| Op::SubjectsById { id, deleted: flag(&q, "deleted") })).await
}

async fn versions_by_id(State(reg): Reg, Path(i): Path<String>, q: Query) -> Response {
    run(&reg, id(&i).map(|id| Op::VersionsById { id, deleted: flag(&q, "deleted") })).await
}

async fn types() -> Response {
    answer(Ok(json!(Format::SUPPORTED.iter().map(|f| f.name()).collect::<Vec<_>>())))
}

async fn compatibility_all(State(reg): Reg, Path(subject): Path<String>, q: Query, body: Bytes) -> Response {
    let verbose = flag(&q, "verbose");
    let op = schema_input(&body).map(|schema| Op::TestCompatibility { subject, version: None, schema, verbose });
    run(&reg, op).await
}

async fn compatibility(State(reg): Reg, Path((subject, v)): Path<(String, String)>, q: Query, body: Bytes) -> Response {
    let verbose = flag(&q, "verbose");
    let op = version_spec(&v).and_then(|version| {
        schema_input(&body).map(|schema| Op::TestCompatibility { subject, version: Some(version), schema, verbose })
    });
    run(&reg, op).await
}

/// `{"compatibility": "FULL"}` (Confluent also reads `compatibilityLevel`).
fn level_body(body: &Bytes) -> Result<Level, RegistryError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| RegistryError::unprocessable(format!("Unrecognized request body: {e}")))?;
    let level = v
        .get("compatibility")
        .or_else(|| v.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .ok_or_else(|| RegistryError::invalid_compatibility_level("(missing)"))?;
    Level::parse(level)
}

async fn get_global(State(reg): Reg) -> Response {
    run(&reg, Ok(Op::GetConfig { subject: None, default_to_global: true })).await
}

async fn put_global(State(reg): Reg, body: Bytes) -> Response {
    run(&reg, level_body(&body).map(|level| Op::SetConfig { subject: None, level })).await
}

async fn delete_global(State(reg): Reg) -> Response {
    run(&reg, Ok(Op::DeleteConfig { subject: None })).await
}

async fn get_config(State(reg): Reg, Path(subject): Path<String>, q: Query) -> Response {
    let default_to_global = flag(&q, "defaultToGlobal");
    run(&reg, Ok(Op::GetConfig { subject: Some(subject), default_to_global })).await
}

async fn put_config(State(reg): Reg, Path(subject): Path<String>, body: Bytes) -> Response {
    run(&reg, level_body(&body).map(|level| Op::SetConfig { subject: Some(subject), level })).await
}

async fn delete_config(State(reg): Reg, Path(subject): Path<String>) -> Response {
    run(&reg, Ok(Op::DeleteConfig { subject: Some(subject) })).await
}

/// Cairn's registry is always writable (no IMPORT or READONLY modes).
async fn mode() -> Response {
    answer(Ok(json!({"mode": "READWRITE"})))
}
