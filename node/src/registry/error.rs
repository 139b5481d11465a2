//! The registry's one error type, carrying the Confluent Schema Registry error code and HTTP
//! status its REST API answers with (the serializers users already have read these).

use serde::{Deserialize, Serialize};

/// A refused or failed registry operation. `code` is Confluent's `error_code`; the HTTP status
/// is derived from it (its first three digits, as Confluent does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (error {code})")]
pub struct RegistryError {
    pub code: u32,
    pub message: String,
}

/// Confluent's "unknown leader" code: here, an operation no leader ran.
pub const NOT_RUN: u32 = 50004;

impl RegistryError {
    fn new(code: u32, message: impl Into<String>) -> RegistryError {
        RegistryError { code, message: message.into() }
    }

    /// The HTTP status of the answer.
    pub fn http_status(&self) -> u16 {
        let mut c = self.code;
        while c >= 1000 {
            c /= 10;
        }
        u16::try_from(c).unwrap_or(500)
    }

    pub fn subject_not_found(subject: &str) -> RegistryError {
        RegistryError::new(40401, format!("Subject '{subject}' not found."))
    }
    pub fn version_not_found(subject: &str, version: &str) -> RegistryError {
        RegistryError::new(40402, format!("Version {version} not found for subject '{subject}'."))
    }
    pub fn schema_not_found(what: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(40403, format!("Schema {what} not found."))
    }
    pub fn subject_soft_deleted(subject: &str) -> RegistryError {
        RegistryError::new(
            40404,
            format!("Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"),
        )
    }
    pub fn subject_not_soft_deleted(subject: &str) -> RegistryError {
        RegistryError::new(40405, format!("Subject '{subject}' was not deleted first before being permanently deleted"))
    }
    pub fn version_soft_deleted(subject: &str, version: u32) -> RegistryError {
        RegistryError::new(
            40406,
            format!("Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently"),
        )
    }
    pub fn version_not_soft_deleted(subject: &str, version: u32) -> RegistryError {
        RegistryError::new(
            40407,
            format!("Subject '{subject}' Version {version} was not deleted first before being permanently deleted"),
        )
    }
    pub fn subject_level_config_not_found(subject: &str) -> RegistryError {
        RegistryError::new(40408, format!("Subject '{subject}' does not have subject-level compatibility configured"))
    }
    pub fn denied(why: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(40301, format!("Forbidden: {why}"))
    }
    pub fn not_found(path: &str) -> RegistryError {
        RegistryError::new(404, format!("HTTP 404 Not Found: no registry endpoint {path}"))
    }
    pub fn method_not_allowed(path: &str) -> RegistryError {
        RegistryError::new(405, format!("HTTP 405 Method Not Allowed on {path}"))
    }
    /// The schema is not compatible with the versions the subject's level compares it to.
    pub fn incompatible(subject: &str, why: &[String]) -> RegistryError {
        RegistryError::new(
            409,
            format!("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", why.join(", ")),
        )
    }
    pub fn invalid_schema(why: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(42201, format!("Invalid schema: {why}"))
    }
    pub fn referenced(subject: &str, version: u32, by: &str) -> RegistryError {
        RegistryError::new(
            42206,
            format!("One or more references exist to the schema {{subject={subject}, version={version}}} (from {by})"),
        )
    }
    pub fn invalid_version(version: &str) -> RegistryError {
        RegistryError::new(
            42202,
            format!("The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
        )
    }
    pub fn invalid_compatibility_level(level: &str) -> RegistryError {
        RegistryError::new(
            42203,
            format!("Invalid compatibility level {level:?}. Valid values are NONE, BACKWARD, FORWARD, FULL, BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE, and FULL_TRANSITIVE"),
        )
    }
    /// A request the registry understands but refuses (a malformed body, a bound exceeded).
    pub fn unprocessable(why: impl Into<String>) -> RegistryError {
        RegistryError::new(422, why)
    }
    pub fn store(why: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(50001, format!("Error in the backend data store: {why}"))
    }
    pub fn timeout(why: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(50002, format!("Operation timed out: {why}"))
    }
    /// The operation was not run (no current leader took it up): safe to retry as is.
    pub fn not_run(why: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(NOT_RUN, format!("Unknown leader: {why}; the operation was not run, retry"))
    }
    pub fn forwarding(why: impl std::fmt::Display) -> RegistryError {
        RegistryError::new(50003, format!("Error while forwarding the request to the registry leader: {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_status_is_the_codes_first_three_digits() {
        assert_eq!(RegistryError::subject_not_found("s").http_status(), 404);
        assert_eq!(RegistryError::incompatible("s", &[]).http_status(), 409);
        assert_eq!(RegistryError::invalid_schema("x").http_status(), 422);
        assert_eq!(RegistryError::store("x").http_status(), 500);
        assert_eq!(RegistryError::not_found("/x").http_status(), 404);
    }
}
