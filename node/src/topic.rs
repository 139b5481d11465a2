//! Topic naming rules, shared by configuration and the controller.

/// Topic names: 1–249 characters of `[A-Za-z0-9._-]`, not `.` or `..` (Kafka's rules).
///
/// # Errors
/// A message naming the problem.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!("topic name {name:?} must be 1 to 249 characters"));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name {name:?} is reserved"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("topic name {name:?} contains {c:?}; allowed: letters, digits, '.', '_', '-'"));
    }
    Ok(())
}

/// The internal topic holding consumer groups' state (created by the controller at bootstrap).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The internal topic holding the schema registry (one partition, created by the controller).
pub const SCHEMAS_TOPIC: &str = "__schemas";

/// Internal topics (names starting with `__`): created and written only by Cairn itself.
pub fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}
