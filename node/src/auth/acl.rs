//! ACLs: who (a principal, or `*` for everyone) may or may not do what (an operation) to which
//! resources (a topic, group or the cluster; named literally, or by a name prefix). Kept in
//! the controller state, so every node holds the same list and checks it locally.
//!
//! Deciding, as Kafka does: a matching `deny` wins; else a matching `allow` allows; else the
//! answer is no. An allow of `read`, `write`, `delete` or `alter` also allows `describe` of the
//! same resource (whoever may read a topic may see it). `all` stands for every operation.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Every principal, in an ACL's principal; every name, in a literal resource name.
pub const WILDCARD: &str = "*";
/// The cluster resource's only name.
pub const CLUSTER: &str = "cluster";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    /// The name itself (or `*`: every name).
    Literal,
    /// Every name starting with it.
    Prefix,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Allow,
    Deny,
}

/// One ACL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Acl {
    pub principal: String,
    pub resource: ResourceType,
    pub pattern: PatternType,
    pub name: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// A resource a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource<'a> {
    pub kind: ResourceType,
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    pub fn topic(name: &'a str) -> Resource<'a> {
        Resource { kind: ResourceType::Topic, name }
    }

    pub fn group(name: &'a str) -> Resource<'a> {
        Resource { kind: ResourceType::Group, name }
    }

    pub fn cluster() -> Resource<'static> {
        Resource { kind: ResourceType::Cluster, name: CLUSTER }
    }
}

impl std::fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ResourceType::Cluster => f.write_str("the cluster"),
            kind => write!(f, "{} {:?}", kind.as_str(), self.name),
        }
    }
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::Cluster => "cluster",
        }
    }

    pub fn parse(s: &str) -> Option<ResourceType> {
        [ResourceType::Topic, ResourceType::Group, ResourceType::Cluster].into_iter().find(|r| r.as_str() == s)
    }
}

impl PatternType {
    pub fn as_str(self) -> &'static str {
        match self {
            PatternType::Literal => "literal",
            PatternType::Prefix => "prefix",
        }
    }

    pub fn parse(s: &str) -> Option<PatternType> {
        [PatternType::Literal, PatternType::Prefix].into_iter().find(|p| p.as_str() == s)
    }
}

impl Operation {
    pub const EVERY: [Operation; 7] = [
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Alter => "alter",
            Operation::Describe => "describe",
            Operation::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        Operation::EVERY.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether an ACL for `self` covers a request for `wanted`.
    fn covers(self, wanted: Operation, permission: Permission) -> bool {
        self == wanted
            || self == Operation::All
            // Only an allow implies describe: denying read does not hide the topic.
            || (permission == Permission::Allow
                && wanted == Operation::Describe
                && matches!(self, Operation::Read | Operation::Write | Operation::Delete | Operation::Alter))
    }
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Allow => "allow",
            Permission::Deny => "deny",
        }
    }
}

impl Acl {
    /// Whether this ACL speaks about `principal` doing `operation` to `resource`.
    fn matches(&self, principal: &str, operation: Operation, resource: Resource<'_>) -> bool {
        (self.principal == WILDCARD || self.principal == principal)
            && self.resource == resource.kind
            && self.operation.covers(operation, self.permission)
            && match self.pattern {
                PatternType::Literal => self.name == WILDCARD || self.name == resource.name,
                PatternType::Prefix => resource.name.starts_with(&self.name),
            }
    }

    /// Checks the fields a user gave.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self) -> Result<(), String> {
        if self.principal != WILDCARD {
            super::check_principal_name(&self.principal)?;
        }
        if self.name.is_empty() || self.name.len() > 256 {
            return Err("a resource name is 1 to 256 characters".into());
        }
        if self.resource == ResourceType::Cluster && (self.name != CLUSTER || self.pattern != PatternType::Literal) {
            return Err(format!("the cluster resource is named {CLUSTER:?}, literally"));
        }
        if self.pattern == PatternType::Prefix && self.name == WILDCARD {
            return Err("a prefix of `*` matches only names starting with `*`; use a literal `*` for every name".into());
        }
        Ok(())
    }
}

/// The decision for `principal` doing `operation` to `resource` under `acls`.
pub fn allowed(acls: &BTreeSet<Acl>, principal: &str, operation: Operation, resource: Resource<'_>) -> bool {
    let mut allow = false;
    for acl in acls.iter().filter(|a| a.matches(principal, operation, resource)) {
        match acl.permission {
            Permission::Deny => return false,
            Permission::Allow => allow = true,
        }
    }
    allow
}

/// Whether some ACL lets `principal` write to some topic (what an idempotent producer's id
/// needs, as in Kafka: the id is useless without a topic to write to).
pub fn may_write_somewhere(acls: &BTreeSet<Acl>, principal: &str) -> bool {
    acls.iter().any(|a| {
        a.permission == Permission::Allow
            && a.resource == ResourceType::Topic
            && matches!(a.operation, Operation::Write | Operation::All)
            && (a.principal == WILDCARD || a.principal == principal)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(principal: &str, pattern: PatternType, name: &str, operation: Operation, permission: Permission) -> Acl {
        Acl {
            principal: principal.into(),
            resource: ResourceType::Topic,
            pattern,
            name: name.into(),
            operation,
            permission,
        }
    }

    #[test]
    fn nothing_is_allowed_without_an_acl() {
        assert!(!allowed(&BTreeSet::new(), "alice", Operation::Read, Resource::topic("orders")));
    }

    #[test]
    fn literal_prefix_and_wildcards_match_what_they_say() {
        let acls: BTreeSet<Acl> = [
            acl("alice", PatternType::Literal, "orders", Operation::Write, Permission::Allow),
            acl("bob", PatternType::Prefix, "pay-", Operation::Read, Permission::Allow),
            acl("*", PatternType::Literal, "public", Operation::Read, Permission::Allow),
            acl("carol", PatternType::Literal, "*", Operation::All, Permission::Allow),
        ]
        .into();
        assert!(allowed(&acls, "alice", Operation::Write, Resource::topic("orders")));
        assert!(!allowed(&acls, "alice", Operation::Write, Resource::topic("orders2")));
        assert!(!allowed(&acls, "alice", Operation::Read, Resource::topic("orders")));
        assert!(allowed(&acls, "bob", Operation::Read, Resource::topic("pay-eu")));
        assert!(!allowed(&acls, "bob", Operation::Read, Resource::topic("payments")));
        assert!(allowed(&acls, "anyone", Operation::Read, Resource::topic("public")));
        assert!(allowed(&acls, "carol", Operation::Delete, Resource::topic("x")));
        assert!(!allowed(&acls, "carol", Operation::Delete, Resource::group("x")));
    }

    #[test]
    fn deny_wins_and_allows_imply_describe() {
        let mut acls: BTreeSet<Acl> = [
            acl("*", PatternType::Literal, "*", Operation::Read, Permission::Allow),
            acl("mallory", PatternType::Prefix, "secret", Operation::Read, Permission::Deny),
        ]
        .into();
        assert!(allowed(&acls, "alice", Operation::Describe, Resource::topic("secret-plans")));
        assert!(!allowed(&acls, "mallory", Operation::Read, Resource::topic("secret-plans")));
        // A denied read does not hide the topic; a denied describe does.
        assert!(allowed(&acls, "mallory", Operation::Describe, Resource::topic("secret-plans")));
        acls.insert(acl("mallory", PatternType::Literal, "*", Operation::Describe, Permission::Deny));
        assert!(!allowed(&acls, "mallory", Operation::Describe, Resource::topic("secret-plans")));
        assert!(allowed(&acls, "mallory", Operation::Read, Resource::topic("open")));
    }

    #[test]
    fn bad_acls_are_refused() {
        let good = acl("alice", PatternType::Literal, "orders", Operation::Read, Permission::Allow);
        assert!(good.check().is_ok());
        assert!(Acl { name: String::new(), ..good.clone() }.check().is_err());
        assert!(Acl { principal: "a b".into(), ..good.clone() }.check().is_err());
        assert!(Acl { pattern: PatternType::Prefix, name: "*".into(), ..good.clone() }.check().is_err());
        assert!(Acl { resource: ResourceType::Cluster, name: "orders".into(), ..good.clone() }.check().is_err());
        let cluster = Acl { resource: ResourceType::Cluster, name: CLUSTER.into(), ..good };
        assert!(cluster.check().is_ok());
    }

    #[test]
    fn producer_ids_need_a_write_somewhere() {
        let acls: BTreeSet<Acl> = [acl("alice", PatternType::Prefix, "o", Operation::Write, Permission::Allow)].into();
        assert!(may_write_somewhere(&acls, "alice"));
        assert!(!may_write_somewhere(&acls, "bob"));
    }
}
