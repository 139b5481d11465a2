//! Consumer group metrics, exported by each group's coordinator (the leader of its
//! `__consumer_offsets` partition), so one scrape of the whole cluster shows every group once:
//! lag and committed offset per partition, members, state and group epoch. Refreshed every
//! [`EVERY`] in the background (lag needs every partition's end offset, which may live on other
//! nodes), and served from the last refresh; a group that moved to another coordinator drops
//! out of this node's output at the next refresh.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

use crate::service::GroupsService;

/// How often the coordinator's groups are described again.
pub const EVERY: Duration = Duration::from_secs(5);
/// Groups one node exports at most (group ids are chosen by clients: the series stay bounded);
/// `cairn_group_metrics_skipped` counts the others.
pub const GROUPS_MAX: usize = 1000;
/// How long one group's description may take before the refresh goes on without it.
const DESCRIBE_WAIT: Duration = Duration::from_secs(3);

const GP: &[&str] = &["group", "topic", "partition"];
const FAMILIES: &[(&str, &str, &[&str])] = &[
    ("cairn_group_lag", "records between the group's committed offset and the partition's end (coordinator only)", GP),
    ("cairn_group_committed_offset", "the group's committed offset (coordinator only; absent before a commit)", GP),
    ("cairn_group_members", "members of the group (coordinator only)", &["group"]),
    (
        "cairn_group_epoch",
        "the group's epoch: it rises with every membership or subscription change (coordinator only)",
        &["group"],
    ),
    ("cairn_group_state", "1 for the group's current state (coordinator only)", &["group", "state"]),
    ("cairn_group_metrics_skipped", "groups coordinated here but not exported (over the cap of 1000 per node)", &[]),
];

fn vecs() -> Result<Vec<IntGaugeVec>, prometheus::Error> {
    FAMILIES.iter().map(|(n, h, l)| IntGaugeVec::new(Opts::new(*n, *h), l)).collect()
}

/// The last refresh, as metric families.
pub struct GroupMetrics {
    descs: Vec<Desc>,
    last: Mutex<Vec<MetricFamily>>,
}

impl GroupMetrics {
    /// # Errors
    /// A malformed metric name (a bug).
    pub fn new() -> Result<Arc<GroupMetrics>, prometheus::Error> {
        let descs = vecs()?.iter().flat_map(|v| v.desc().into_iter().cloned()).collect();
        Ok(Arc::new(GroupMetrics { descs, last: Mutex::new(Vec::new()) }))
    }

    /// Describes every group coordinated here every [`EVERY`], until aborted.
    pub async fn run(self: Arc<Self>, service: GroupsService) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (groups, skipped) = service.describe_local(GROUPS_MAX, DESCRIBE_WAIT).await;
            let Ok(v) = vecs() else { return };
            v[5].with_label_values(&[] as &[&str]).set(skipped as i64);
            let clamp = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
            // A group that no longer exists (deleted meanwhile) is not exported.
            for g in groups.iter().filter(|g| g.state != "DEAD") {
                let group = g.group_id.as_str();
                v[2].with_label_values(&[group]).set(g.members.len() as i64);
                v[3].with_label_values(&[group]).set(clamp(u64::from(g.group_epoch)));
                v[4].with_label_values(&[group, g.state.as_str()]).set(1);
                for p in &g.partitions {
                    let part = p.partition.to_string();
                    let labels = [group, p.topic.as_str(), part.as_str()];
                    if p.log_end_known {
                        v[0].with_label_values(&labels).set(clamp(p.lag));
                    }
                    if p.has_committed {
                        v[1].with_label_values(&labels).set(clamp(p.committed_offset));
                    }
                }
            }
            let families = v.iter().flat_map(|x| x.collect()).collect();
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = families;
        }
    }
}

impl Collector for GroupMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Registers the group metrics and starts their refresher.
///
/// # Errors
/// A name clash (a bug).
pub fn spawn(
    metrics: &super::Metrics,
    service: GroupsService,
) -> Result<tokio::task::JoinHandle<()>, prometheus::Error> {
    let groups = GroupMetrics::new()?;
    metrics.register(Box::new(ArcCollector(groups.clone())))?;
    Ok(tokio::spawn(groups.run(service)))
}

/// The registry takes collectors by value; the refresher keeps its own handle.
struct ArcCollector(Arc<GroupMetrics>);

impl Collector for ArcCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.collect()
    }
}
