//! ACLs between their API form (text fields, `cairn.v1.AclEntry`) and the controller's.

use cairn_proto::v1::AclEntry;

use super::error::ServiceError;
use crate::auth::acl::{Acl, Operation, PatternType, Permission, ResourceType};

/// Most ACLs one call may add or remove.
const PER_CALL_MAX: usize = 1_000;

fn invalid(message: String) -> ServiceError {
    ServiceError::InvalidArgument(message)
}

pub fn resource_type(text: &str) -> Result<ResourceType, ServiceError> {
    ResourceType::parse(text)
        .ok_or_else(|| invalid(format!("resource type {text:?}: expected topic, group or cluster")))
}

/// The controller form of `entries`, each checked.
///
/// # Errors
/// The first entry with a wrong word or name, named.
pub fn parse_all(entries: &[AclEntry]) -> Result<Vec<Acl>, ServiceError> {
    if entries.is_empty() {
        return Err(invalid("no ACL given".into()));
    }
    if entries.len() > PER_CALL_MAX {
        return Err(invalid(format!("{} ACLs in one call; at most {PER_CALL_MAX}", entries.len())));
    }
    entries.iter().map(parse).collect()
}

fn parse(e: &AclEntry) -> Result<Acl, ServiceError> {
    let resource = resource_type(&e.resource_type)?;
    let pattern = match e.pattern_type.as_str() {
        "" => PatternType::Literal,
        text => PatternType::parse(text)
            .ok_or_else(|| invalid(format!("pattern type {text:?}: expected literal or prefix")))?,
    };
    let operation = Operation::parse(&e.operation).ok_or_else(|| {
        invalid(format!(
            "operation {:?}: expected one of {}",
            e.operation,
            Operation::EVERY.map(Operation::as_str).join(", ")
        ))
    })?;
    let permission = match e.permission.as_str() {
        "allow" => Permission::Allow,
        "deny" => Permission::Deny,
        other => return Err(invalid(format!("permission {other:?}: expected allow or deny"))),
    };
    let name = match (resource, e.resource_name.as_str()) {
        (ResourceType::Cluster, "") => crate::auth::acl::CLUSTER.to_string(),
        (_, n) => n.to_string(),
    };
    let acl = Acl { principal: e.principal.clone(), resource, pattern, name, operation, permission };
    acl.check().map_err(|why| invalid(format!("ACL for {:?}: {why}", e.principal)))?;
    Ok(acl)
}

/// The API form of `acl`.
pub fn entry(acl: &Acl) -> AclEntry {
    AclEntry {
        principal: acl.principal.clone(),
        resource_type: acl.resource.as_str().to_string(),
        pattern_type: acl.pattern.as_str().to_string(),
        resource_name: acl.name.clone(),
        operation: acl.operation.as_str().to_string(),
        permission: acl.permission.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(resource: &str, pattern: &str, name: &str, op: &str, perm: &str) -> AclEntry {
        AclEntry {
            principal: "alice".into(),
            resource_type: resource.into(),
            pattern_type: pattern.into(),
            resource_name: name.into(),
            operation: op.into(),
            permission: perm.into(),
        }
    }

    #[test]
    fn entries_round_trip_and_wrong_words_are_named() {
        let good = e("topic", "prefix", "orders-", "write", "allow");
        let parsed = parse_all(std::slice::from_ref(&good)).expect("valid");
        assert_eq!(entry(&parsed[0]), good);
        let cluster = parse_all(&[e("cluster", "", "", "alter", "deny")]).expect("valid");
        assert_eq!(cluster[0].name, "cluster");
        for (bad, word) in [
            (e("queue", "", "x", "read", "allow"), "queue"),
            (e("topic", "glob", "x", "read", "allow"), "glob"),
            (e("topic", "", "x", "publish", "allow"), "publish"),
            (e("topic", "", "x", "read", "maybe"), "maybe"),
            (e("topic", "", "", "read", "allow"), "1 to 256"),
        ] {
            let err = parse_all(&[bad]).expect_err("invalid").to_string();
            assert!(err.contains(word), "{err}");
        }
        assert!(parse_all(&[]).is_err());
    }
}
