//! `cairn acl add|list|remove`: who may do what (checked by the nodes when `[auth] acls` is on).

use cairn_client::{AclEntry, Client};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::output::Output;

#[derive(Subcommand, Debug)]
pub enum AclCommand {
    /// Add ACLs: one per operation given, for one principal and one resource.
    Add(AclSpec),
    /// The ACLs, all or those of one principal / resource type.
    List {
        /// Only this principal's ACLs (`*`: the ACLs for everyone).
        #[arg(long)]
        principal: Option<String>,
        /// Only ACLs on topics, groups or the cluster.
        #[arg(long, value_parser = ["topic", "group", "cluster"])]
        resource_type: Option<String>,
    },
    /// Remove exactly the ACLs these flags describe (as given to `add`).
    Remove(AclSpec),
}

/// One principal, allowed or denied, some operations, one resource.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["allow", "deny"])))]
#[command(group(clap::ArgGroup::new("what").required(true).args(["topic", "topic_prefix", "group", "group_prefix", "cluster"])))]
pub struct AclSpec {
    /// The principal allowed (a certificate's common name, a token's principal; `*`: everyone).
    #[arg(long)]
    allow: Option<String>,
    /// The principal denied (a deny wins over any allow).
    #[arg(long)]
    deny: Option<String>,
    /// read, write, create, delete, alter, describe or all (repeatable, or comma-separated).
    #[arg(long = "operation", required = true, value_delimiter = ',',
          value_parser = ["read", "write", "create", "delete", "alter", "describe", "all"])]
    operations: Vec<String>,
    /// One topic (`*`: every topic).
    #[arg(long)]
    topic: Option<String>,
    /// Every topic whose name starts with this.
    #[arg(long)]
    topic_prefix: Option<String>,
    /// One consumer group (`*`: every group).
    #[arg(long)]
    group: Option<String>,
    /// Every group whose name starts with this.
    #[arg(long)]
    group_prefix: Option<String>,
    /// The cluster itself (topic creation, ACLs, node and replica administration).
    #[arg(long)]
    cluster: bool,
}

impl AclSpec {
    fn entries(&self) -> Vec<AclEntry> {
        let (principal, permission) = match (&self.allow, &self.deny) {
            (Some(p), _) => (p.clone(), "allow"),
            (None, Some(p)) => (p.clone(), "deny"),
            (None, None) => (String::new(), "allow"), // clap requires one
        };
        let (resource_type, pattern_type, resource_name) = if let Some(t) = &self.topic {
            ("topic", "literal", t.clone())
        } else if let Some(t) = &self.topic_prefix {
            ("topic", "prefix", t.clone())
        } else if let Some(g) = &self.group {
            ("group", "literal", g.clone())
        } else if let Some(g) = &self.group_prefix {
            ("group", "prefix", g.clone())
        } else {
            ("cluster", "literal", "cluster".to_string())
        };
        self.operations
            .iter()
            .map(|op| AclEntry {
                principal: principal.clone(),
                resource_type: resource_type.into(),
                pattern_type: pattern_type.into(),
                resource_name: resource_name.clone(),
                operation: op.clone(),
                permission: permission.into(),
            })
            .collect()
    }
}

fn entry_json(a: &AclEntry) -> serde_json::Value {
    json!({
        "principal": a.principal, "permission": a.permission, "operation": a.operation,
        "resource_type": a.resource_type, "pattern_type": a.pattern_type, "resource_name": a.resource_name,
    })
}

pub async fn run(client: &Client, cmd: AclCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        AclCommand::Add(spec) => {
            let entries = spec.entries();
            let asked = entries.len();
            let added = client.create_acls(entries).await?;
            if out.json {
                out.value(&json!({"added": added, "asked": asked}));
            } else {
                out.line(&format!("added {added} ACL(s) ({} already present)", asked as u32 - added.min(asked as u32)));
            }
        }
        AclCommand::Remove(spec) => {
            let entries = spec.entries();
            let asked = entries.len();
            let removed = client.delete_acls(entries).await?;
            if out.json {
                out.value(&json!({"removed": removed, "asked": asked}));
            } else {
                out.line(&format!(
                    "removed {removed} ACL(s) ({} did not exist)",
                    asked as u32 - removed.min(asked as u32)
                ));
            }
        }
        AclCommand::List { principal, resource_type } => {
            let acls =
                client.list_acls(principal.as_deref().unwrap_or(""), resource_type.as_deref().unwrap_or("")).await?;
            if out.json {
                for a in &acls {
                    out.value(&entry_json(a));
                }
            } else {
                out.line(&format!(
                    "{:<24} {:<10} {:<9} {:<8} {:<8} NAME",
                    "PRINCIPAL", "PERMISSION", "OPERATION", "TYPE", "PATTERN"
                ));
                for a in &acls {
                    out.line(&format!(
                        "{:<24} {:<10} {:<9} {:<8} {:<8} {}",
                        a.principal, a.permission, a.operation, a.resource_type, a.pattern_type, a.resource_name
                    ));
                }
            }
        }
    }
    Ok(())
}
