//! `cairn schema`: the schema registry every node serves (docs/schemas.md), through its REST
//! API. `check` is the contract test: a service pins the schema it expects in its repository
//! and fails its CI (exit 1) when the registry holds a producer schema it cannot follow.

use cairn_client::schema::{SchemaError, SchemaRegistryClient};
use clap::Subcommand;
use serde_json::json;

use crate::output::Output;

#[derive(Subcommand, Debug)]
pub enum SchemaCommand {
    /// Register the schema in FILE under SUBJECT (a new version, or the id it already has).
    Register {
        subject: String,
        file: std::path::PathBuf,
        /// AVRO, JSON or PROTOBUF.
        #[arg(long = "type", default_value = "AVRO")]
        schema_type: String,
    },
    /// Subjects with at least one live version.
    List,
    /// A version of SUBJECT (default: the latest): id, version, schema.
    Get {
        subject: String,
        #[arg(long, default_value = "latest")]
        version: String,
    },
    /// Whether the schema in FILE may follow SUBJECT's registered versions at its compatibility
    /// level; exit 1 (with the reasons) when it may not, 2 when the check could not be made.
    Check {
        subject: String,
        file: std::path::PathBuf,
        #[arg(long = "type", default_value = "AVRO")]
        schema_type: String,
    },
}

/// Exit code of `check` for an incompatible schema.
pub const INCOMPATIBLE: u8 = 1;
/// Exit code of `check` when it could not be made (registry unreachable, file unreadable), so
/// a CI job can tell "incompatible" from "not checked".
pub const UNCHECKED: u8 = 2;

fn read(file: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))
}

/// Runs a command; `Ok(code)` is the process's exit code.
pub async fn run(registry: &str, cmd: SchemaCommand, out: &Output) -> anyhow::Result<u8> {
    let client = SchemaRegistryClient::new(registry)?;
    match cmd {
        SchemaCommand::Register { subject, file, schema_type } => {
            let id = client.register(&subject, &schema_type.to_ascii_uppercase(), &read(&file)?).await?;
            if out.json {
                out.value(&json!({"subject": subject, "id": id}));
            } else {
                out.line(&format!("{subject}: schema id {id}"));
            }
        }
        SchemaCommand::List => {
            for s in client.subjects().await? {
                if out.json {
                    out.value(&json!({"subject": s}));
                } else {
                    out.line(&s);
                }
            }
        }
        SchemaCommand::Get { subject, version } => {
            let v = client.version(&subject, &version).await?;
            if out.json {
                out.value(&v);
            } else {
                out.line(&format!(
                    "{subject} version {} id {}: {}",
                    v["version"],
                    v["id"],
                    v["schema"].as_str().unwrap_or("")
                ));
            }
        }
        SchemaCommand::Check { subject, file, schema_type } => {
            let schema = match read(&file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("cairn: {e:#}");
                    return Ok(UNCHECKED);
                }
            };
            return Ok(match client.check(&subject, &schema_type.to_ascii_uppercase(), &schema).await {
                Ok(why) if why.is_empty() => {
                    out.line(&format!("{}: compatible with {subject}", file.display()));
                    0
                }
                Ok(why) => {
                    out.line(&format!("{}: NOT compatible with {subject}:", file.display()));
                    for w in why {
                        out.line(&format!("  {w}"));
                    }
                    INCOMPATIBLE
                }
                Err(SchemaError::Registry { code: 40401, .. }) => {
                    out.line(&format!("{}: {subject} has no registered version yet: nothing to break", file.display()));
                    0
                }
                Err(e) => {
                    eprintln!("cairn: the check could not be made: {e}");
                    UNCHECKED
                }
            });
        }
    }
    out.flush();
    Ok(0)
}
