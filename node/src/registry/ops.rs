//! The registry's operations as values: the REST layer builds one per request, and it runs on
//! the node leading `__schemas` (sent there over the peer connection when another node got the
//! request).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::compat::Level;
use super::error::RegistryError;
use super::state::{Plan, SchemaInput, State, VersionSpec};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Register { subject: String, schema: SchemaInput },
    Lookup { subject: String, schema: SchemaInput, deleted: bool },
    Subjects { deleted: bool },
    Versions { subject: String, deleted: bool },
    GetVersion { subject: String, version: VersionSpec, deleted: bool },
    SchemaById { id: u32 },
    SubjectsById { id: u32, deleted: bool },
    VersionsById { id: u32, deleted: bool },
    DeleteSubject { subject: String, permanent: bool },
    DeleteVersion { subject: String, version: VersionSpec, permanent: bool },
    TestCompatibility { subject: String, version: Option<VersionSpec>, schema: SchemaInput, verbose: bool },
    GetConfig { subject: Option<String>, default_to_global: bool },
    SetConfig { subject: Option<String>, level: Level },
    DeleteConfig { subject: Option<String> },
}

/// What a node answers another that forwarded an operation to it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerReply {
    Done(Result<Value, RegistryError>),
    /// This node does not lead `__schemas` (now); the leader it knows of, if any.
    NotLeader {
        hint: Option<u64>,
    },
}

impl Op {
    /// Whether the operation may write (and so must run where the state is written).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Op::Register { .. }
                | Op::DeleteSubject { .. }
                | Op::DeleteVersion { .. }
                | Op::SetConfig { .. }
                | Op::DeleteConfig { .. }
        )
    }

    /// Reads `state` and answers, or plans the records to write.
    ///
    /// # Errors
    /// The registry's refusals.
    pub fn plan(&self, s: &State) -> Result<Plan, RegistryError> {
        let read = |answer: Result<Value, RegistryError>| answer.map(|answer| Plan { records: Vec::new(), answer });
        match self {
            Op::Register { subject, schema } => s.register(subject, schema),
            Op::Lookup { subject, schema, deleted } => read(s.lookup(subject, schema, *deleted)),
            Op::Subjects { deleted } => read(Ok(s.subjects(*deleted))),
            Op::Versions { subject, deleted } => read(s.versions(subject, *deleted)),
            Op::GetVersion { subject, version, deleted } => read(s.get_version(subject, *version, *deleted)),
            Op::SchemaById { id } => read(s.schema_by_id(*id)),
            Op::SubjectsById { id, deleted } => read(s.versions_by_id(*id, *deleted).map(|list| {
                let mut subjects: Vec<String> = list.into_iter().map(|(s, _)| s).collect();
                subjects.dedup();
                json!(subjects)
            })),
            Op::VersionsById { id, deleted } => read(s.versions_by_id(*id, *deleted).map(|list| {
                json!(list.into_iter().map(|(s, v)| json!({"subject": s, "version": v})).collect::<Vec<_>>())
            })),
            Op::DeleteSubject { subject, permanent } => s.delete_subject(subject, *permanent),
            Op::DeleteVersion { subject, version, permanent } => s.delete_version(subject, *version, *permanent),
            Op::TestCompatibility { subject, version, schema, verbose } => {
                read(s.test_compatibility(subject, *version, schema, *verbose))
            }
            Op::GetConfig { subject, default_to_global } => read(s.get_config(subject.as_deref(), *default_to_global)),
            Op::SetConfig { subject, level } => s.set_config(subject.as_deref(), *level),
            Op::DeleteConfig { subject } => s.delete_config(subject.as_deref()),
        }
    }
}
