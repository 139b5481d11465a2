//! One consumer group's persisted state and the KIP-848 rules that change it: pure functions of
//! the state, the request and the topic metadata (no clocks, no I/O), so they are unit tested on
//! their own and a new coordinator that loads the state continues exactly where the old one was.
//!
//! ```text
//!  membership/subscription/topic change ─► group epoch + 1 ─► assignor ─► every member's target
//!  member heartbeat ─► reconcile:  owns partitions not in its target? ─► revoke them first
//!                                  (member epoch unchanged until it says it let them go)
//!                                ─► member epoch = assignment epoch
//!                                ─► gets each target partition as soon as no one else owns it
//! ```
//!
//! A partition is *owned* by a member while it is in its assignment or pending revocation; no
//! two members ever own one partition, so a partition moves in two steps: revoked from its
//! owner (who commits and acknowledges), then given to the new owner.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::assignor::{self, Assignor, Subscriber};

/// Partitions by topic id.
pub type Partitions = BTreeMap<u64, BTreeSet<u32>>;

/// A topic as the coordinator sees the cluster metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub id: u64,
    pub partitions: u32,
}

/// Topics by name (internal topics left out).
pub type Metadata = BTreeMap<String, TopicMeta>;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// Bumped on every membership, subscription or subscribed-topic change.
    pub epoch: u32,
    /// The group epoch the members' targets were computed at.
    pub assignment_epoch: u32,
    pub assignor: Assignor,
    pub members: BTreeMap<String, Member>,
    /// Subscribed topics (id → name, partitions) when the targets were computed: a change in
    /// the metadata of one of them (more partitions, deleted, re-created) re-assigns.
    pub topics: BTreeMap<u64, (String, u32)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    pub subscribed_regex: Option<String>,
    pub rebalance_timeout_ms: u32,
    pub session_timeout_ms: u32,
    pub epoch: u32,
    pub previous_epoch: u32,
    /// What it owns now.
    pub assigned: Partitions,
    /// What it must give up (still owned until it acknowledges).
    pub pending_revocation: Partitions,
    /// What the assignor wants it to have.
    pub target: Partitions,
    /// A static member that left for a restart: its partitions wait for it.
    pub left_static: bool,
}

/// Whether `p` is empty (no partitions in any topic).
pub fn is_empty(p: &Partitions) -> bool {
    p.values().all(BTreeSet::is_empty)
}

fn union(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = a.clone();
    for (t, ps) in b {
        out.entry(*t).or_default().extend(ps);
    }
    out.retain(|_, ps| !ps.is_empty());
    out
}

fn minus(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = Partitions::new();
    for (t, ps) in a {
        let rest: BTreeSet<u32> = ps.iter().filter(|p| !b.get(t).is_some_and(|x| x.contains(p))).copied().collect();
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

fn intersects(a: &Partitions, b: &Partitions) -> bool {
    a.iter().any(|(t, ps)| b.get(t).is_some_and(|x| !x.is_disjoint(ps)))
}

/// Whether `p` contains `topic`/`partition`.
pub fn contains(p: &Partitions, topic: u64, partition: u32) -> bool {
    p.get(&topic).is_some_and(|s| s.contains(&partition))
}

impl Member {
    /// What it owns: its assignment and what it has not yet given up.
    pub fn owned(&self) -> Partitions {
        union(&self.assigned, &self.pending_revocation)
    }

    /// Whether it may commit offsets of `topic`/`partition` with `epoch`: its current epoch, or
    /// its previous one (a commit sent just before it learned the new epoch), for a partition it
    /// still owns.
    pub fn may_commit(&self, epoch: u32, topic: u64, partition: u32) -> Result<(), CommitRefusal> {
        if epoch > self.epoch {
            return Err(CommitRefusal::Fenced);
        }
        if epoch != self.epoch && epoch != self.previous_epoch {
            return Err(CommitRefusal::Stale);
        }
        if !contains(&self.owned(), topic, partition) {
            return Err(CommitRefusal::NotOwned);
        }
        Ok(())
    }

    /// Topic ids this member subscribes to, in `meta`.
    pub fn subscribed(&self, meta: &Metadata, regex: Option<&regex::Regex>) -> BTreeSet<u64> {
        let mut out: BTreeSet<u64> =
            self.subscribed_topics.iter().filter_map(|name| meta.get(name)).map(|t| t.id).collect();
        if let Some(re) = regex {
            out.extend(meta.values().filter(|t| re.is_match(&t.name)).map(|t| t.id));
        }
        out
    }
}

/// Why a member's commit is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitRefusal {
    /// An epoch the coordinator never gave it.
    Fenced,
    /// An old epoch.
    Stale,
    /// A partition it does not own (any more).
    NotOwned,
}

/// Compiles `re`, anchored (a subscription pattern matches whole topic names).
///
/// # Errors
/// An invalid expression, with the parser's message.
pub fn compile_regex(re: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid subscription regex {re:?}: {e}"))
}

impl GroupState {
    /// The topics every member subscribes to (as they are in `meta`), by id.
    pub fn subscribed_topics(&self, meta: &Metadata) -> BTreeMap<u64, (String, u32)> {
        let mut out = BTreeMap::new();
        for m in self.members.values() {
            let re = m.subscribed_regex.as_deref().and_then(|r| compile_regex(r).ok());
            for id in m.subscribed(meta, re.as_ref()) {
                if let Some(t) = meta.values().find(|t| t.id == id) {
                    out.insert(id, (t.name.clone(), t.partitions));
                }
            }
        }
        out
    }

    /// Bumps the group epoch and computes every member's target with the group's assignor.
    pub fn reassign(&mut self, meta: &Metadata) {
        self.epoch += 1;
        self.topics = self.subscribed_topics(meta);
        let counts: BTreeMap<u64, u32> = self.topics.iter().map(|(id, (_, n))| (*id, *n)).collect();
        let regexes: BTreeMap<String, Option<regex::Regex>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.subscribed_regex.as_deref().and_then(|r| compile_regex(r).ok())))
            .collect();
        let subs: Vec<Subscriber<'_>> = self
            .members
            .values()
            .map(|m| Subscriber {
                member_id: &m.member_id,
                sort_key: m.instance_id.as_deref().unwrap_or(&m.member_id),
                topics: m.subscribed(meta, regexes.get(&m.member_id).and_then(Option::as_ref)),
                previous: &m.target,
            })
            .collect();
        let targets = assignor::assign(self.assignor, &subs, &counts);
        for (id, target) in targets {
            if let Some(m) = self.members.get_mut(&id) {
                m.target = target;
            }
        }
        self.assignment_epoch = self.epoch;
    }

    /// Whether the subscribed topics' metadata changed since the targets were computed.
    pub fn topics_changed(&self, meta: &Metadata) -> bool {
        self.subscribed_topics(meta) != self.topics
    }

    /// Partitions owned by members other than `member`.
    fn owned_by_others(&self, member: &str) -> Partitions {
        let mut out = Partitions::new();
        for m in self.members.values().filter(|m| m.member_id != member) {
            out = union(&out, &m.owned());
        }
        out
    }

    /// One reconciliation step of `member` after a heartbeat that reports it owns `owned`
    /// (`None`: not known, e.g. the heartbeat carried an older epoch). Returns whether anything
    /// changed.
    pub fn reconcile(&mut self, member: &str, owned: Option<&Partitions>) -> bool {
        self.reconcile_with(member, owned, false)
    }

    /// [`GroupState::reconcile`]; with `skip_revoke` (a negative control of the fault suite) a
    /// member gets its target partitions even while another member still owns them.
    pub fn reconcile_with(&mut self, member: &str, owned: Option<&Partitions>, skip_revoke: bool) -> bool {
        let others = if skip_revoke { Partitions::new() } else { self.owned_by_others(member) };
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member) else { return false };
        let before = m.clone();
        // Revocations are done once the member no longer reports owning them.
        if !is_empty(&m.pending_revocation) {
            match owned {
                Some(o) if !intersects(o, &m.pending_revocation) => m.pending_revocation.clear(),
                _ => return *m != before,
            }
        }
        if m.epoch < assignment_epoch {
            let revoke = minus(&m.assigned, &m.target);
            if !is_empty(&revoke) {
                m.assigned = minus(&m.assigned, &revoke);
                m.pending_revocation = revoke;
                return true;
            }
            m.previous_epoch = m.epoch;
            m.epoch = assignment_epoch;
        }
        let free = minus(&minus(&m.target, &m.assigned), &others);
        m.assigned = union(&m.assigned, &free);
        *m != before
    }

    /// Removes a member (left, timed out or fenced): its partitions are free at once.
    pub fn remove(&mut self, member: &str, meta: &Metadata) -> bool {
        if self.members.remove(member).is_none() {
            return false;
        }
        self.reassign(meta);
        true
    }

    /// EMPTY, RECONCILING or STABLE.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "EMPTY"
        } else if self
            .members
            .values()
            .all(|m| m.epoch == self.assignment_epoch && m.assigned == m.target && is_empty(&m.pending_revocation))
        {
            "STABLE"
        } else {
            "RECONCILING"
        }
    }

    /// The member owning `topic`/`partition`, if any.
    pub fn owner_of(&self, topic: u64, partition: u32) -> Option<&Member> {
        self.members.values().find(|m| contains(&m.owned(), topic, partition))
    }
}

#[cfg(test)]
#[path = "group_test.rs"]
mod tests;
