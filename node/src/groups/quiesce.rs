//! Quiescence and failover of partition groups, one loop per node.
//!
//! A thousand idle partitions heartbeating several times a second would keep the CPU busy
//! doing nothing. So openraft's per-group timer runs only where it is needed, and failure
//! detection for quiet groups is per node (see [`crate::liveness`]):
//!
//! | replica  | timer on when                                                                  |
//! |----------|--------------------------------------------------------------------------------|
//! | leader   | the log grew in the last 2 s, it became leader in the last 5 s, a live follower |
//! |          | lags, or a follower's node (re)appeared in the last 5 s                          |
//! | follower | no leader known, or the leader's node is down or no longer claims the group     |
//! | other    | always                                                                           |
//!
//! Safety does not depend on timers (Raft's votes and logs decide); only liveness does. When a
//! leader's node goes down, its followers turn their timers on and campaign once the leader
//! lease has surely expired everywhere (last successful ping + lease + margin, plus jitter), so
//! failover does not also wait out a full election timeout. The loop also breaks repeated split
//! votes (openraft 0.9 draws each group's election timeout once): a group leaderless for more
//! than 2 × the election timeout campaigns after a random delay.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_raft::group::{PartitionGroup, Role};
use cairn_raft::{GroupId, NodeId};
use rand::Rng;

use super::{LocalGroups, Roles};
use crate::liveness::Liveness;

const EVERY: Duration = Duration::from_millis(250);
/// A leader keeps its timer this long after its log last grew.
const QUIET_AFTER: Duration = Duration::from_secs(2);
/// A leader keeps its timer this long after an election or a follower's (re)appearance, so
/// followers learn about it.
const WAKE_FOR: Duration = Duration::from_secs(5);
/// Slack on top of the leader lease before a follower of a dead leader campaigns: a heartbeat
/// may have arrived up to one ping interval after the last successful ping.
const LEASE_MARGIN: Duration = Duration::from_millis(300);

struct Track {
    last_index: Option<u64>,
    grew_at: Instant,
    leader_since: Option<Instant>,
    leaderless_since: Option<Instant>,
    last_campaign: Option<Instant>,
    stop_logged: bool,
    /// The last term this replica was seen leading (counted once as an election won).
    led_term: Option<u64>,
}

impl Track {
    fn new(now: Instant, last_index: Option<u64>) -> Track {
        Track {
            last_index,
            grew_at: now,
            leader_since: None,
            led_term: None,
            leaderless_since: None,
            last_campaign: None,
            stop_logged: false,
        }
    }
}

/// Timer settings of the groups (the leader lease is `election_timeout_max`).
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    pub election_timeout_max: Duration,
}

pub async fn run(groups: Arc<LocalGroups>, liveness: Liveness, timers: Timers) {
    let mut tracks: HashMap<GroupId, Track> = HashMap::new();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let all = groups.all();
        let present: HashSet<GroupId> = all.iter().map(|g| g.group_id()).collect();
        tracks.retain(|g, _| present.contains(g));
        let mut roles = Roles::default();
        for g in all {
            pass(&groups, &liveness, timers, &g, &mut tracks, &mut roles);
        }
        roles.stopped = groups.stopped_replicas();
        groups.set_roles(roles);
    }
}

fn pass(
    groups: &LocalGroups,
    liveness: &Liveness,
    timers: Timers,
    g: &Arc<PartitionGroup>,
    tracks: &mut HashMap<GroupId, Track>,
    roles: &mut Roles,
) {
    let now = Instant::now();
    let (id, me, lease) = (g.group_id(), groups.env().me, timers.election_timeout_max);
    let o = g.observe();
    let t = tracks.entry(id).or_insert_with(|| Track::new(now, o.last_log_index));
    if o.last_log_index != t.last_index {
        t.last_index = o.last_log_index;
        t.grew_at = now;
    }
    if o.stopped {
        if !t.stop_logged {
            tracing::error!(group = id, "raft group stopped on this node; it no longer serves");
            t.stop_logged = true;
        }
        return;
    }
    let ticking = match o.role {
        Role::Leader => {
            if t.led_term != Some(o.term) {
                t.led_term = Some(o.term);
                groups.env().metrics.election_won();
            }
            let since = *t.leader_since.get_or_insert(now);
            roles.leading.insert(id, since);
            let recent = now - t.grew_at < QUIET_AFTER || now - since < WAKE_FOR;
            let lagging = o.lagging_nodes.iter().any(|n| liveness.is_alive(*n));
            let returned =
                o.follower_nodes.iter().any(|n| *n != me && liveness.up_for(*n).is_some_and(|d| d < WAKE_FOR));
            recent || lagging || returned
        }
        Role::Follower => {
            t.leader_since = None;
            match o.leader_node {
                Some(l) if l != me => {
                    let waiting = liveness.leads(l, id);
                    if !waiting && !liveness.is_alive(l) {
                        campaign_after_lease(g, t, l, liveness, lease, now);
                    }
                    !waiting
                }
                _ => true,
            }
        }
        Role::Candidate | Role::Learner => {
            t.leader_since = None;
            true
        }
    };
    g.set_ticking(ticking);

    if o.leader_node.is_some() {
        t.leaderless_since = None;
        return;
    }
    let since = *t.leaderless_since.get_or_insert(now);
    let recently_tried = t.last_campaign.is_some_and(|c| now - c < lease);
    if now - since > 2 * lease && !recently_tried {
        t.last_campaign = Some(now);
        let jitter = Duration::from_millis(rand::rng().random_range(0..lease.as_millis().max(1) as u64));
        spawn_campaign(g.clone(), jitter, None, "no leader for a while");
    }
}

/// The leader's node is down: campaign once its lease has expired on every replica.
fn campaign_after_lease(
    g: &Arc<PartitionGroup>,
    t: &mut Track,
    dead: NodeId,
    liveness: &Liveness,
    lease: Duration,
    now: Instant,
) {
    let Some(seen) = liveness.last_seen(dead) else { return };
    if t.last_campaign.is_some_and(|c| c > seen) {
        return; // already campaigned since the leader was last seen
    }
    let at = seen + lease + LEASE_MARGIN;
    if now < at {
        return;
    }
    t.last_campaign = Some(now);
    let jitter = Duration::from_millis(rand::rng().random_range(0..LEASE_MARGIN.as_millis() as u64));
    spawn_campaign(g.clone(), jitter, Some(dead), "leader's node is down");
}

/// Campaigns after `after` unless the group has meanwhile found a leader other than
/// `expected_leader` (the dead one, or none).
fn spawn_campaign(g: Arc<PartitionGroup>, after: Duration, expected_leader: Option<NodeId>, why: &'static str) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let o = g.observe();
        if o.role != Role::Leader && o.leader_node == expected_leader {
            tracing::debug!(group = g.group_id(), why, "campaigning");
            let _ = g.campaign().await;
        }
    });
}
