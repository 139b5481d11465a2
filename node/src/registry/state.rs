//! The registry's state and every operation on it, as pure functions: an operation reads the
//! state and answers, or plans the records to write and the answer to give once they are
//! committed. The leader applies the records to its state only after the write succeeded, and a
//! loading leader applies the same records read back, so both reach the same state.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::compat::{self, Level, DEFAULT_LEVEL};
use super::error::RegistryError;
use super::format::{Format, ParsedSchema};
use super::records::{Record, Reference, VersionRecord};

/// Longest schema text accepted (bytes).
pub const SCHEMA_BYTES_MAX: usize = 1 << 20;
/// Most versions (live or soft-deleted) the registry holds: each is kept in every registry
/// leader's memory.
pub const VERSIONS_MAX: usize = 100_000;
/// Longest subject name (bytes).
pub const SUBJECT_BYTES_MAX: usize = 255;
/// Deepest chain of references followed.
const REFERENCE_DEPTH_MAX: usize = 32;

/// A schema as a request carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchemaInput {
    pub schema: String,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub references: Vec<Reference>,
}

/// A version asked for: a number, or the latest live one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VersionSpec {
    Latest,
    Number(u32),
}

impl VersionSpec {
    /// `latest`, `-1` or 1..=2^31-1.
    ///
    /// # Errors
    /// 42202.
    pub fn parse(s: &str) -> Result<VersionSpec, RegistryError> {
        match s {
            "latest" | "-1" => Ok(VersionSpec::Latest),
            _ => match s.parse::<u32>() {
                Ok(n) if n >= 1 && n <= i32::MAX as u32 => Ok(VersionSpec::Number(n)),
                _ => Err(RegistryError::invalid_version(s)),
            },
        }
    }
}

/// The identity of a schema: same format, canonical text and references, same id.
type Identity = (Format, String, Vec<Reference>);

#[derive(Debug, Default)]
pub struct State {
    subjects: BTreeMap<String, BTreeMap<u32, VersionRecord>>,
    ids: BTreeMap<u32, Identity>,
    by_identity: HashMap<Identity, u32>,
    config: BTreeMap<String, Level>,
    global: Option<Level>,
    next_id: u32,
    versions: usize,
}

/// What an operation wants written, and the answer once it is.
#[derive(Debug, Default)]
pub struct Plan {
    pub records: Vec<Record>,
    pub answer: Value,
}

impl Plan {
    fn read(answer: Value) -> Plan {
        Plan { records: Vec::new(), answer }
    }
}

/// Whether `subject` is a name the registry accepts.
///
/// # Errors
/// 422 naming the problem.
pub fn check_subject(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty() || subject.len() > SUBJECT_BYTES_MAX || subject.chars().any(char::is_control) {
        return Err(RegistryError::unprocessable(format!(
            "invalid subject {subject:?}: 1 to {SUBJECT_BYTES_MAX} bytes without control characters"
        )));
    }
    Ok(())
}

fn version_json(v: &VersionRecord) -> Value {
    let mut out = json!({"subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema});
    if v.format != Format::Avro {
        out["schemaType"] = json!(v.format.name());
    }
    if !v.references.is_empty() {
        out["references"] = json!(v.references);
    }
    out
}

impl State {
    /// Applies one record (a committed write, or one read back while loading).
    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Version(v) => {
                let identity = (v.format, v.schema.clone(), v.references.clone());
                self.ids.entry(v.id).or_insert_with(|| identity.clone());
                self.by_identity.entry(identity).or_insert(v.id);
                self.next_id = self.next_id.max(v.id + 1);
                let versions = self.subjects.entry(v.subject.clone()).or_default();
                if versions.insert(v.version, v).is_none() {
                    self.versions += 1;
                }
            }
            Record::VersionGone { subject, version } => {
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    if versions.remove(&version).is_some() {
                        self.versions -= 1;
                    }
                    if versions.is_empty() {
                        self.subjects.remove(&subject);
                    }
                }
                // The id stays resolvable while another version uses it (ids are global).
                let used: std::collections::BTreeSet<u32> =
                    self.subjects.values().flat_map(|v| v.values().map(|r| r.id)).collect();
                let gone: Vec<u32> = self.ids.keys().filter(|id| !used.contains(id)).copied().collect();
                for id in gone {
                    if let Some(identity) = self.ids.remove(&id) {
                        self.by_identity.remove(&identity);
                    }
                }
            }
            Record::Config { subject: Some(s), level: Some(l) } => {
                self.config.insert(s, l);
            }
            Record::Config { subject: Some(s), level: None } => {
                self.config.remove(&s);
            }
            Record::Config { subject: None, level } => self.global = level,
            Record::NextId(n) => self.next_id = self.next_id.max(n),
        }
    }

    /// The level that governs `subject`.
    pub fn level_of(&self, subject: &str) -> Level {
        self.config.get(subject).copied().or(self.global).unwrap_or(DEFAULT_LEVEL)
    }

    fn live(&self, subject: &str) -> impl Iterator<Item = &VersionRecord> {
        self.subjects.get(subject).into_iter().flat_map(|v| v.values()).filter(|v| !v.deleted)
    }

    fn version(&self, subject: &str, spec: VersionSpec, deleted: bool) -> Result<&VersionRecord, RegistryError> {
        let versions = self.subjects.get(subject).ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let found = match spec {
            VersionSpec::Latest => versions.values().rev().find(|v| deleted || !v.deleted),
            VersionSpec::Number(n) => versions.get(&n).filter(|v| deleted || !v.deleted),
        };
        match found {
            Some(v) => Ok(v),
            None if !versions.values().any(|v| !v.deleted) && !deleted => {
                Err(RegistryError::subject_not_found(subject))
            }
            None => Err(RegistryError::version_not_found(
                subject,
                &match spec {
                    VersionSpec::Latest => "latest".to_string(),
                    VersionSpec::Number(n) => n.to_string(),
                },
            )),
        }
    }

    /// The texts of the schemas `refs` name, each after its own references (dependency order).
    fn resolve(&self, refs: &[Reference], depth: usize, out: &mut Vec<String>) -> Result<(), RegistryError> {
        if depth > REFERENCE_DEPTH_MAX {
            return Err(RegistryError::invalid_schema(format!("references nest deeper than {REFERENCE_DEPTH_MAX}")));
        }
        for r in refs {
            // A soft-deleted version still resolves (a version that references it stays valid).
            let v = self.subjects.get(&r.subject).and_then(|vs| vs.get(&r.version)).ok_or_else(|| {
                RegistryError::invalid_schema(format!(
                    "reference {:?} names subject {:?} version {}, which is not registered",
                    r.name, r.subject, r.version
                ))
            })?;
            self.resolve(&v.references, depth + 1, out)?;
            if !out.contains(&v.schema) {
                out.push(v.schema.clone());
            }
        }
        Ok(())
    }

    /// Parses a schema with its references resolved from this state.
    ///
    /// # Errors
    /// 42201 (invalid, too large, an unknown reference).
    pub fn parse(&self, format: Format, schema: &str, refs: &[Reference]) -> Result<ParsedSchema, RegistryError> {
        if schema.len() > SCHEMA_BYTES_MAX {
            return Err(RegistryError::invalid_schema(format!(
                "the schema is {} bytes; at most {SCHEMA_BYTES_MAX} are accepted",
                schema.len()
            )));
        }
        let mut texts = Vec::new();
        self.resolve(refs, 0, &mut texts)?;
        ParsedSchema::parse(format, schema, &texts)
    }

    /// Why `new` may not be a version of `subject` after its live versions, at `level`.
    fn incompatibilities(&self, subject: &str, format: Format, new: &ParsedSchema, level: Level) -> Vec<String> {
        if level == Level::None {
            return Vec::new();
        }
        let mut previous = Vec::new();
        let mut why = Vec::new();
        for v in self.live(subject) {
            if v.format != format {
                why.push(format!("version {} is {}, the new schema {}", v.version, v.format.name(), format.name()));
                continue;
            }
            match self.parse(v.format, &v.schema, &v.references) {
                Ok(p) => previous.push((v.version, p)),
                Err(e) => why.push(format!("version {} no longer parses: {}", v.version, e.message)),
            }
        }
        if !why.is_empty() {
            return why;
        }
        let previous: Vec<(u32, &ParsedSchema)> = previous.iter().map(|(v, p)| (*v, p)).collect();
        compat::check(level, new, &previous)
    }

    /// `POST /subjects/{subject}/versions`: the id of `input` under `subject`, registering it
    /// as a new version when the subject has no live version of it.
    ///
    /// # Errors
    /// 422 (subject), 42201 (schema), 409 (incompatible), 422 (the registry is full).
    pub fn register(&self, subject: &str, input: &SchemaInput) -> Result<Plan, RegistryError> {
        check_subject(subject)?;
        let parsed = self.parse(input.format, &input.schema, &input.references)?;
        let identity: Identity = (input.format, parsed.canonical().to_string(), input.references.clone());
        if let Some(v) =
            self.live(subject).find(|v| (v.format, &v.schema, &v.references) == (identity.0, &identity.1, &identity.2))
        {
            return Ok(Plan::read(json!({"id": v.id, "version": v.version})));
        }
        let why = self.incompatibilities(subject, input.format, &parsed, self.level_of(subject));
        if !why.is_empty() {
            return Err(RegistryError::incompatible(subject, &why));
        }
        if self.versions >= VERSIONS_MAX {
            return Err(RegistryError::unprocessable(format!(
                "the registry holds {VERSIONS_MAX} versions, its most; delete some permanently first"
            )));
        }
        let version = self.subjects.get(subject).and_then(|v| v.keys().next_back()).map_or(1, |v| v + 1);
        let mut records = Vec::new();
        let id = match self.by_identity.get(&identity) {
            Some(id) => *id,
            None => {
                let id = self.next_id.max(1);
                records.push(Record::NextId(id + 1));
                id
            }
        };
        records.push(Record::Version(VersionRecord {
            subject: subject.to_string(),
            version,
            id,
            format: identity.0,
            schema: identity.1,
            references: identity.2,
            deleted: false,
        }));
        Ok(Plan { records, answer: json!({"id": id, "version": version}) })
    }

    /// `POST /subjects/{subject}`: the version of `subject` that is `input`.
    ///
    /// # Errors
    /// 40401, 40403, 42201.
    pub fn lookup(&self, subject: &str, input: &SchemaInput, deleted: bool) -> Result<Value, RegistryError> {
        let versions = self.subjects.get(subject).ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let parsed = self.parse(input.format, &input.schema, &input.references)?;
        versions
            .values()
            .rev()
            .filter(|v| deleted || !v.deleted)
            .find(|v| v.format == input.format && v.schema == parsed.canonical() && v.references == input.references)
            .map(version_json)
            .ok_or_else(|| RegistryError::schema_not_found("under this subject"))
    }

    /// `GET /subjects`.
    pub fn subjects(&self, deleted: bool) -> Value {
        json!(self
            .subjects
            .iter()
            .filter(|(_, vs)| deleted || vs.values().any(|v| !v.deleted))
            .map(|(s, _)| s)
            .collect::<Vec<_>>())
    }

    /// `GET /subjects/{subject}/versions`.
    ///
    /// # Errors
    /// 40401.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Value, RegistryError> {
        let list: Vec<u32> = self
            .subjects
            .get(subject)
            .into_iter()
            .flat_map(|vs| vs.values())
            .filter(|v| deleted || !v.deleted)
            .map(|v| v.version)
            .collect();
        if list.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(json!(list))
    }

    /// `GET /subjects/{subject}/versions/{version}`.
    ///
    /// # Errors
    /// 40401, 40402.
    pub fn get_version(&self, subject: &str, spec: VersionSpec, deleted: bool) -> Result<Value, RegistryError> {
        self.version(subject, spec, deleted).map(version_json)
    }

    /// `GET /schemas/ids/{id}`.
    ///
    /// # Errors
    /// 40403.
    pub fn schema_by_id(&self, id: u32) -> Result<Value, RegistryError> {
        let (format, schema, references) = self.ids.get(&id).ok_or_else(|| RegistryError::schema_not_found(id))?;
        let mut out = json!({"schema": schema});
        if *format != Format::Avro {
            out["schemaType"] = json!(format.name());
        }
        if !references.is_empty() {
            out["references"] = json!(references);
        }
        Ok(out)
    }

    /// The format and text of schema `id`, if registered (for validation and serdes).
    pub fn schema_text(&self, id: u32) -> Option<(Format, &str)> {
        self.ids.get(&id).map(|(f, s, _)| (*f, s.as_str()))
    }

    /// `GET /schemas/ids/{id}/versions`: every (subject, version) that is schema `id`.
    ///
    /// # Errors
    /// 40403.
    pub fn versions_by_id(&self, id: u32, deleted: bool) -> Result<Vec<(String, u32)>, RegistryError> {
        if !self.ids.contains_key(&id) {
            return Err(RegistryError::schema_not_found(id));
        }
        Ok(self
            .subjects
            .values()
            .flat_map(|vs| vs.values())
            .filter(|v| v.id == id && (deleted || !v.deleted))
            .map(|v| (v.subject.clone(), v.version))
            .collect())
    }

    /// The first version of another subject (live or soft-deleted) that references
    /// `subject` at `version`, as `subject/version`.
    fn referrer(&self, subject: &str, version: u32) -> Option<String> {
        self.subjects.values().flat_map(|vs| vs.values()).find_map(|v| {
            v.references
                .iter()
                .any(|r| r.subject == subject && r.version == version)
                .then(|| format!("{}/{}", v.subject, v.version))
        })
    }

    /// 42206 when a version of `subject` in `versions` is referenced by another schema.
    fn check_unreferenced(&self, subject: &str, versions: impl Iterator<Item = u32>) -> Result<(), RegistryError> {
        for version in versions {
            if let Some(by) = self.referrer(subject, version) {
                return Err(RegistryError::referenced(subject, version, &by));
            }
        }
        Ok(())
    }

    /// `DELETE /subjects/{subject}`: soft-deletes every live version, or (permanent) removes
    /// a soft-deleted subject. Answers the versions affected.
    ///
    /// # Errors
    /// 40401, 40404 (soft-deleting a soft-deleted subject), 40405 (permanent before soft).
    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Plan, RegistryError> {
        let versions = self.subjects.get(subject).ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let live: Vec<&VersionRecord> = versions.values().filter(|v| !v.deleted).collect();
        self.check_unreferenced(subject, versions.keys().copied())?;
        if permanent {
            if !live.is_empty() {
                return Err(RegistryError::subject_not_soft_deleted(subject));
            }
            let mut records: Vec<Record> =
                versions.keys().map(|v| Record::VersionGone { subject: subject.to_string(), version: *v }).collect();
            if self.config.contains_key(subject) {
                records.push(Record::Config { subject: Some(subject.to_string()), level: None });
            }
            return Ok(Plan { records, answer: json!(versions.keys().collect::<Vec<_>>()) });
        }
        if live.is_empty() {
            return Err(RegistryError::subject_soft_deleted(subject));
        }
        let answer = json!(live.iter().map(|v| v.version).collect::<Vec<_>>());
        let records = live.into_iter().map(|v| Record::Version(VersionRecord { deleted: true, ..v.clone() })).collect();
        Ok(Plan { records, answer })
    }

    /// `DELETE /subjects/{subject}/versions/{version}`.
    ///
    /// # Errors
    /// 40401, 40402, 40406 (soft-deleting twice), 40407 (permanent before soft).
    pub fn delete_version(&self, subject: &str, spec: VersionSpec, permanent: bool) -> Result<Plan, RegistryError> {
        // A numbered version is found soft-deleted or not (to say which); `latest` is the
        // latest live one, or for a permanent delete the latest of all.
        let v = self.version(subject, spec, permanent || matches!(spec, VersionSpec::Number(_)))?;
        self.check_unreferenced(subject, std::iter::once(v.version))?;
        let record = match (permanent, v.deleted) {
            (false, true) => return Err(RegistryError::version_soft_deleted(subject, v.version)),
            (false, false) => Record::Version(VersionRecord { deleted: true, ..v.clone() }),
            (true, false) => return Err(RegistryError::version_not_soft_deleted(subject, v.version)),
            (true, true) => Record::VersionGone { subject: subject.to_string(), version: v.version },
        };
        Ok(Plan { records: vec![record], answer: json!(v.version) })
    }

    /// `POST /compatibility/subjects/{subject}/versions[/{version}]`: against one version
    /// (`Some`, in the directions of the subject's level) or as a registration would be
    /// checked (`None`).
    ///
    /// # Errors
    /// 40401, 40402, 42201.
    pub fn test_compatibility(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        input: &SchemaInput,
        verbose: bool,
    ) -> Result<Value, RegistryError> {
        let parsed = self.parse(input.format, &input.schema, &input.references)?;
        let level = self.level_of(subject);
        let why = match spec {
            // Nothing to compare with (as Confluent answers): any valid schema may be the first.
            None | Some(VersionSpec::Latest) if self.live(subject).next().is_none() => Vec::new(),
            None => self.incompatibilities(subject, input.format, &parsed, level),
            Some(spec) => {
                let v = self.version(subject, spec, false)?;
                if v.format != input.format {
                    vec![format!("version {} is {}, the schema {}", v.version, v.format.name(), input.format.name())]
                } else {
                    let old = self.parse(v.format, &v.schema, &v.references)?;
                    // One version: the level's directions, not its transitivity.
                    let single = match level {
                        Level::BackwardTransitive => Level::Backward,
                        Level::ForwardTransitive => Level::Forward,
                        Level::FullTransitive => Level::Full,
                        l => l,
                    };
                    compat::check(single, &parsed, &[(v.version, &old)])
                }
            }
        };
        let mut out = json!({"is_compatible": why.is_empty()});
        if verbose {
            out["messages"] = json!(why);
        }
        Ok(out)
    }

    /// `GET /config[/{subject}]`.
    ///
    /// # Errors
    /// 40408 for a subject without its own level (unless `default_to_global`).
    pub fn get_config(&self, subject: Option<&str>, default_to_global: bool) -> Result<Value, RegistryError> {
        let level = match subject {
            None => self.global.unwrap_or(DEFAULT_LEVEL),
            Some(s) => match self.config.get(s) {
                Some(l) => *l,
                None if default_to_global => self.global.unwrap_or(DEFAULT_LEVEL),
                None => return Err(RegistryError::subject_level_config_not_found(s)),
            },
        };
        Ok(json!({"compatibilityLevel": level.name()}))
    }

    /// `PUT /config[/{subject}]`.
    ///
    /// # Errors
    /// 422 (subject).
    pub fn set_config(&self, subject: Option<&str>, level: Level) -> Result<Plan, RegistryError> {
        if let Some(s) = subject {
            check_subject(s)?;
        }
        Ok(Plan {
            records: vec![Record::Config { subject: subject.map(str::to_string), level: Some(level) }],
            answer: json!({"compatibility": level.name()}),
        })
    }

    /// `DELETE /config[/{subject}]`: back to the global level (or, globally, the default).
    /// Answers the level removed.
    ///
    /// # Errors
    /// 40401 for a subject that has neither versions nor a level.
    pub fn delete_config(&self, subject: Option<&str>) -> Result<Plan, RegistryError> {
        let previous = match subject {
            None => self.global.unwrap_or(DEFAULT_LEVEL),
            Some(s) => match self.config.get(s) {
                Some(l) => *l,
                None if self.subjects.contains_key(s) => self.global.unwrap_or(DEFAULT_LEVEL),
                None => return Err(RegistryError::subject_not_found(s)),
            },
        };
        Ok(Plan {
            records: vec![Record::Config { subject: subject.map(str::to_string), level: None }],
            answer: json!({"compatibilityLevel": previous.name()}),
        })
    }
}

#[cfg(test)]
impl State {
    /// Everything but the derived index, in a stable order (tests compare states with it).
    fn snapshot(&self) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {} {}",
            self.subjects, self.ids, self.config, self.global, self.next_id, self.versions
        )
    }
}

#[cfg(test)]
#[path = "state_test.rs"]
mod state_test;
