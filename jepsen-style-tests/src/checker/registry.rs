//! The schema registry under faults (the `registry` workload):
//!
//! - *registry-lost*: an acknowledged registration whose schema is not a version of its subject
//!   with the acknowledged id in the final read (or the final read failed).
//! - *registry-id-conflict*: one schema under two ids, or one id for two schemas, anywhere in the
//!   acknowledgements and the final read (ids are global: same schema, same id).
//! - *registry-incompatible*: the incompatible schema acknowledged, or present in the final read
//!   (it is only ever sent to a subject that already has a chain schema).
//! - *registry-version-order*: two acknowledged registrations of different schemas on one
//!   subject, the first completed before the second was invoked, whose final versions are in
//!   the other order.
//! - *registry-stale-read*: a read of a schema by id, sent after a registration that returned
//!   that id was acknowledged, answered "not found" (40403): a node answered from a state older
//!   than an acknowledged write.

use std::collections::BTreeMap;

use super::{anomaly, Anomaly};
use crate::history::OpType;
use crate::registry::{FinalVersion, RegistryHistory};

pub fn registry(h: &RegistryHistory) -> Vec<Anomaly> {
    let mut out = stale_reads(h);
    let Some(finals) = &h.finals else { return out };
    let finals: &[FinalVersion] = match finals {
        Ok(f) => f,
        Err(why) => {
            let acked = h.registrations.iter().filter(|r| r.outcome == OpType::Ok).count();
            if acked > 0 {
                out.push(anomaly(
                    "registry-lost",
                    format!("the final read failed ({why}); {acked} acknowledged registrations unchecked"),
                ));
            }
            return out;
        }
    };
    let acked: Vec<_> = h.registrations.iter().filter(|r| r.outcome == OpType::Ok).collect();
    let version_of =
        |subject: &str, schema: (u32, bool)| finals.iter().find(|f| f.subject == subject && f.schema == Some(schema));
    for r in &acked {
        match version_of(&r.subject, (r.k, r.compatible)) {
            None => out.push(anomaly(
                "registry-lost",
                format!(
                    "{} schema {} (acknowledged with id {:?}) is not a version of the subject",
                    r.subject, r.k, r.id
                ),
            )),
            Some(f) if Some(f.id) != r.id => out.push(anomaly(
                "registry-lost",
                format!(
                    "{} schema {}: acknowledged with id {:?}, version {} has id {}",
                    r.subject, r.k, r.id, f.version, f.id
                ),
            )),
            Some(_) => {}
        }
        if !r.compatible {
            out.push(anomaly(
                "registry-incompatible",
                format!("{}: the incompatible schema was acknowledged (id {:?})", r.subject, r.id),
            ));
        }
    }
    for f in finals.iter().filter(|f| f.schema.is_some_and(|(_, c)| !c)) {
        out.push(anomaly(
            "registry-incompatible",
            format!("{} version {} is the incompatible schema", f.subject, f.version),
        ));
    }
    // Ids: one per schema, one schema per id.
    let mut id_of: BTreeMap<(u32, bool), u64> = BTreeMap::new();
    let mut schema_of: BTreeMap<u64, (u32, bool)> = BTreeMap::new();
    let seen = acked
        .iter()
        .filter_map(|r| r.id.map(|id| ((r.k, r.compatible), id, format!("acknowledged on {}", r.subject))))
        .chain(finals.iter().filter_map(|f| {
            f.schema.map(|s| (s, f.id, format!("{} version {} in the final read", f.subject, f.version)))
        }));
    for (schema, id, where_) in seen {
        if let Some(other) = id_of.insert(schema, id).filter(|o| *o != id) {
            out.push(anomaly("registry-id-conflict", format!("schema {schema:?} has ids {other} and {id} ({where_})")));
        }
        if let Some(other) = schema_of.insert(id, schema).filter(|o| *o != schema) {
            out.push(anomaly(
                "registry-id-conflict",
                format!("id {id} is schema {other:?} and schema {schema:?} ({where_})"),
            ));
        }
    }
    // Real-time order of versions on one subject.
    for a in &acked {
        for b in &acked {
            let (Some(done), true) = (a.complete, a.subject == b.subject && (a.k, a.compatible) != (b.k, b.compatible))
            else {
                continue;
            };
            if done >= b.invoke {
                continue;
            }
            let (Some(va), Some(vb)) =
                (version_of(&a.subject, (a.k, a.compatible)), version_of(&b.subject, (b.k, b.compatible)))
            else {
                continue;
            };
            // b's schema may have been registered before a finished (by another worker, or by
            // an attempt with an unknown outcome): it then keeps its older version.
            let earlier = h.registrations.iter().any(|c| {
                c.subject == b.subject
                    && (c.k, c.compatible) == (b.k, b.compatible)
                    && c.outcome != OpType::Fail
                    && c.invoke < done
            });
            if va.version > vb.version && !earlier {
                out.push(anomaly(
                    "registry-version-order",
                    format!(
                        "{}: schema {} (version {}) was acknowledged before schema {} was registered, which got version {}",
                        a.subject, a.k, va.version, b.k, vb.version
                    ),
                ));
            }
        }
    }
    out
}

fn stale_reads(h: &RegistryHistory) -> Vec<Anomaly> {
    let acked_at = |id: u64| {
        h.registrations.iter().filter(|r| r.outcome == OpType::Ok && r.id == Some(id)).filter_map(|r| r.complete).min()
    };
    h.reads
        .iter()
        .filter(|r| r.outcome == OpType::Fail && r.code == Some(40403))
        .filter_map(|r| acked_at(r.id).filter(|t| *t < r.invoke).map(|t| (r, t)))
        .map(|(r, t)| {
            anomaly(
                "registry-stale-read",
                format!(
                    "schema id {} not found by a read sent at {:.3} s, acknowledged at {:.3} s",
                    r.id,
                    r.invoke as f64 / 1e9,
                    t as f64 / 1e9
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registration;

    fn reg(subject: &str, k: u32, compatible: bool, invoke: u64, complete: u64, id: u64) -> Registration {
        Registration {
            subject: subject.into(),
            k,
            compatible,
            invoke,
            complete: Some(complete),
            id: Some(id),
            outcome: OpType::Ok,
        }
    }

    fn fin(subject: &str, version: u64, id: u64, k: u32) -> FinalVersion {
        FinalVersion { subject: subject.into(), version, id, schema: Some((k, true)) }
    }

    fn read(id: u64, invoke: u64, refused: Option<u64>) -> crate::registry::RegistryRead {
        crate::registry::RegistryRead {
            id,
            invoke,
            outcome: if refused.is_some() { OpType::Fail } else { OpType::Ok },
            code: refused,
        }
    }

    fn kinds(h: &RegistryHistory) -> Vec<&'static str> {
        registry(h).into_iter().map(|a| a.kind).collect()
    }

    #[test]
    fn a_consistent_history_is_valid() {
        let h = RegistryHistory {
            registrations: vec![reg("s", 0, true, 1, 2, 1), reg("s", 1, true, 3, 4, 2), reg("t", 0, true, 5, 6, 1)],
            // Read before the acknowledgement: it may miss.
            reads: vec![read(2, 3, Some(40403)), read(1, 3, None)],
            finals: Some(Ok(vec![fin("s", 1, 1, 0), fin("s", 2, 2, 1), fin("t", 1, 1, 0)])),
        };
        assert!(kinds(&h).is_empty(), "{:?}", registry(&h));
    }

    #[test]
    fn each_kind_of_anomaly_is_found() {
        // Lost: acknowledged, not in the final read.
        let lost = RegistryHistory {
            registrations: vec![reg("s", 0, true, 1, 2, 1)],
            reads: vec![],
            finals: Some(Ok(vec![])),
        };
        assert_eq!(kinds(&lost), ["registry-lost"]);
        // Id conflict: id 1 handed out again to another schema (a registry that forgot).
        let conflict = RegistryHistory {
            registrations: vec![reg("s", 0, true, 1, 2, 1), reg("t", 3, true, 3, 4, 1)],
            reads: vec![],
            finals: Some(Ok(vec![fin("s", 1, 1, 0), fin("t", 1, 1, 3)])),
        };
        assert!(kinds(&conflict).contains(&"registry-id-conflict"), "{:?}", registry(&conflict));
        // Incompatible acknowledged.
        let bad = RegistryHistory {
            registrations: vec![reg("s", 0, true, 1, 2, 1), reg("s", 0, false, 3, 4, 2)],
            reads: vec![],
            finals: Some(Ok(vec![
                fin("s", 1, 1, 0),
                FinalVersion { subject: "s".into(), version: 2, id: 2, schema: Some((0, false)) },
            ])),
        };
        assert_eq!(kinds(&bad), ["registry-incompatible", "registry-incompatible"]);
        // Version order: 0 acknowledged before 1 was sent, yet 1 has the lower version.
        let order = RegistryHistory {
            registrations: vec![reg("s", 0, true, 1, 2, 1), reg("s", 1, true, 3, 4, 2)],
            reads: vec![],
            finals: Some(Ok(vec![fin("s", 2, 1, 0), fin("s", 1, 2, 1)])),
        };
        assert_eq!(kinds(&order), ["registry-version-order"]);
        // A failed final read with acknowledgements to check.
        let unread = RegistryHistory {
            registrations: vec![reg("s", 0, true, 1, 2, 1)],
            reads: vec![],
            finals: Some(Err("down".into())),
        };
        assert_eq!(kinds(&unread), ["registry-lost"]);
        // A read sent after id 1 was acknowledged, answered not found.
        let stale = RegistryHistory {
            registrations: vec![reg("s", 0, true, 1, 2, 1)],
            reads: vec![read(1, 5, Some(40403))],
            finals: Some(Ok(vec![fin("s", 1, 1, 0)])),
        };
        assert_eq!(kinds(&stale), ["registry-stale-read"]);
    }
}
