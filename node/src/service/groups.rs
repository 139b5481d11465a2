//! `cairn.v1.Groups`: consumer groups. Each call goes to the group's coordinator on this node
//! (or answers NOT_COORDINATOR with its address); lists fan out to every node, and describe and
//! reset ask the partitions' replicas for their bounds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::CoordinatedGroupsRequest;
use cairn_proto::v1::groups_server::{Groups, GroupsServer};
use cairn_proto::v1::{
    AlterOffsetsRequest, AlterOffsetsResponse, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeleteGroupRequest, DeleteGroupResponse, DescribeGroupRequest, DescribeGroupResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupListing, ListGroupsRequest, ListGroupsResponse, MemberDescription,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, PartitionLag,
};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use super::access::Access;
use super::error::ServiceError;
use crate::auth::acl::{Operation, Resource};
use crate::coordinator::actor::to_topic_partitions;
use crate::coordinator::{Cmd, CoordError, Coordinators, GroupView};
use crate::describe;
use crate::groups::LocalGroups;
use crate::liveness::Liveness;

#[derive(Clone)]
pub struct GroupsService {
    coordinators: Arc<Coordinators>,
    local: Arc<LocalGroups>,
    liveness: Liveness,
    access: Access,
}

/// How long a list waits for each node.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A partition's bounds as its replicas report them: (log start, log end).
type Bounds = BTreeMap<(u64, u32), (u64, u64)>;

impl GroupsService {
    pub fn new(
        coordinators: Arc<Coordinators>,
        local: Arc<LocalGroups>,
        liveness: Liveness,
        access: Access,
    ) -> GroupsService {
        GroupsService { coordinators, local, liveness, access }
    }

    /// What `DescribeGroup` answers for `group` (coordinated here): members, assignments,
    /// committed offsets and lag per partition.
    ///
    /// # Errors
    /// As `DescribeGroup`: not the coordinator, coordinator not loaded.
    pub async fn describe(&self, group: String) -> Result<DescribeGroupResponse, Status> {
        let view = self.call(&group, |reply| Cmd::Describe { group: group.clone(), reply }).await?;
        let me = self.local.env().me;
        let Some(view) = view else {
            return Ok(DescribeGroupResponse {
                group_id: group,
                state: "DEAD".into(),
                coordinator_node_id: me,
                ..Default::default()
            });
        };
        let state = self.local.state();
        let names: BTreeMap<u64, String> = state
            .topics
            .iter()
            .filter(|(n, _)| !crate::topic::is_internal(n))
            .map(|(n, t)| (t.id, n.clone()))
            .collect();
        // Every partition the group has an offset for or owns, of topics that still exist.
        let mut partitions: BTreeSet<(u64, u32)> =
            view.offsets.keys().copied().filter(|(id, _)| names.contains_key(id)).collect();
        for m in view.state.members.values() {
            for (id, ps) in m.assigned.iter().chain(&m.pending_revocation).chain(&m.target) {
                partitions.extend(ps.iter().map(|p| (*id, *p)));
            }
        }
        let topic_ids: BTreeSet<u64> = partitions.iter().map(|(t, _)| *t).collect();
        let bounds = self.bounds(&topic_ids).await;
        let lags = partitions
            .iter()
            .filter_map(|(id, p)| {
                let topic = names.get(id)?.clone();
                let committed = view.offsets.get(&(*id, *p));
                let b = bounds.get(&(*id, *p)).copied();
                let from = committed.map(|o| o.offset).or(b.map(|(start, _)| start)).unwrap_or(0);
                let owner = view.state.owner_of(*id, *p);
                Some(PartitionLag {
                    topic,
                    topic_id: *id,
                    partition: *p,
                    has_committed: committed.is_some(),
                    committed_offset: committed.map_or(0, |o| o.offset),
                    log_start_offset: b.map_or(0, |(s, _)| s),
                    log_end_offset: b.map_or(0, |(_, e)| e),
                    log_end_known: b.is_some(),
                    lag: b.map_or(0, |(_, end)| end.saturating_sub(from)),
                    owner_member_id: owner.map(|m| m.member_id.clone()).unwrap_or_default(),
                    owner_client_id: owner.map(|m| m.client_id.clone()).unwrap_or_default(),
                })
            })
            .collect();
        Ok(DescribeGroupResponse {
            group_id: group,
            state: view.state.state_name().to_string(),
            group_epoch: view.state.epoch,
            assignment_epoch: view.state.assignment_epoch,
            assignor: view.state.assignor.name().to_string(),
            coordinator_node_id: me,
            members: describe_members(&view),
            partitions: lags,
        })
    }

    /// Groups coordinated on this node, described (for the lag metrics): at most `max` (in name
    /// order; the count of the others is returned too), each given `wait` to answer.
    pub async fn describe_local(&self, max: usize, wait: std::time::Duration) -> (Vec<DescribeGroupResponse>, usize) {
        let mut names = Vec::new();
        for c in self.coordinators.all() {
            let (tx, rx) = oneshot::channel();
            if c.send(Cmd::List { reply: tx }).is_ok() {
                if let Ok(Ok(Ok(list))) = tokio::time::timeout(wait, rx).await {
                    names.extend(list.into_iter().map(|g| g.group_id));
                }
            }
        }
        names.sort();
        let skipped = names.len().saturating_sub(max);
        let mut out = Vec::new();
        for name in names.into_iter().take(max) {
            if let Ok(Ok(d)) = tokio::time::timeout(wait, self.describe(name)).await {
                out.push(d);
            }
        }
        (out, skipped)
    }

    pub fn into_server(self) -> GroupsServer<GroupsService> {
        GroupsServer::new(self)
    }

    /// Sends a command to `group`'s coordinator here and waits for its answer.
    async fn call<T>(
        &self,
        group: &str,
        make: impl FnOnce(oneshot::Sender<Result<T, CoordError>>) -> Cmd,
    ) -> Result<T, ServiceError> {
        self.local.known_state()?;
        let c = self.coordinators.route(group)?;
        let (tx, rx) = oneshot::channel();
        c.send(make(tx))?;
        let answer = rx.await.map_err(|_| {
            CoordError::Write(cairn_raft::GroupError::OutcomeUnknown { reason: "the coordinator stopped".into() })
        })?;
        Ok(answer?)
    }

    /// Log start and end of every partition of the topics `ids`, from their replicas.
    async fn bounds(&self, ids: &BTreeSet<u64>) -> Bounds {
        let state = self.local.state();
        let mut groups: BTreeMap<u64, (u64, u32)> = BTreeMap::new();
        for t in state.topics.values().filter(|t| ids.contains(&t.id)) {
            for (i, p) in t.partitions.iter().enumerate() {
                groups.insert(p.group_id, (t.id, i as u32));
            }
        }
        let views = describe::gather(&self.local, &self.liveness, groups.keys().copied().collect()).await;
        groups
            .iter()
            .filter_map(|(g, tp)| views.merged.get(g).map(|v| (*tp, (v.log_start_offset, v.high_watermark))))
            .collect()
    }
}

fn describe_members(view: &GroupView) -> Vec<MemberDescription> {
    let names = &view.state.topics;
    view.state
        .members
        .values()
        .map(|m| MemberDescription {
            member_id: m.member_id.clone(),
            instance_id: m.instance_id.clone().unwrap_or_default(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            member_epoch: m.epoch as i32,
            subscribed_topics: m.subscribed_topics.clone(),
            subscribed_regex: m.subscribed_regex.clone().unwrap_or_default(),
            assignment: to_topic_partitions(&m.assigned, names),
            pending_revocation: to_topic_partitions(&m.pending_revocation, names),
            target: to_topic_partitions(&m.target, names),
            session_timeout_ms: m.session_timeout_ms,
        })
        .collect()
}

#[tonic::async_trait]
impl Groups for GroupsService {
    async fn find_coordinator(
        &self,
        request: Request<FindCoordinatorRequest>,
    ) -> Result<Response<FindCoordinatorResponse>, Status> {
        self.access.guard(&request)?;
        let group = request.into_inner().group_id;
        self.local.known_state()?;
        let (partition, hint) = self.coordinators.find(&group).map_err(ServiceError::from)?;
        Ok(Response::new(FindCoordinatorResponse {
            node_id: hint.as_ref().map_or(0, |h| h.node_id),
            address: hint.map(|h| h.address).unwrap_or_default(),
            partition,
        }))
    }

    async fn consumer_group_heartbeat(
        &self,
        request: Request<ConsumerGroupHeartbeatRequest>,
    ) -> Result<Response<ConsumerGroupHeartbeatResponse>, Status> {
        self.access.guard(&request)?;
        let host = request.remote_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        let req = request.into_inner();
        let group = req.group_id.clone();
        let answer = self.call(&group, |reply| Cmd::Heartbeat(req, host, reply)).await?;
        Ok(Response::new(answer))
    }

    async fn offset_commit(
        &self,
        request: Request<OffsetCommitRequest>,
    ) -> Result<Response<OffsetCommitResponse>, Status> {
        self.access.guard(&request)?;
        let req = request.into_inner();
        let group = req.group_id.clone();
        self.call(&group, |reply| Cmd::Commit {
            group: req.group_id,
            member: req.member_id,
            epoch: req.member_epoch,
            offsets: req.offsets,
            reply,
        })
        .await?;
        Ok(Response::new(OffsetCommitResponse {}))
    }

    async fn offset_fetch(
        &self,
        request: Request<OffsetFetchRequest>,
    ) -> Result<Response<OffsetFetchResponse>, Status> {
        let principal = self.access.guard(&request)?;
        let req = request.into_inner();
        let group = req.group_id.clone();
        let mut offsets =
            self.call(&group, |reply| Cmd::Fetch { group: req.group_id, topics: req.topics, reply }).await?;
        offsets.retain(|o| self.access.may(&principal, Operation::Describe, Resource::topic(&o.topic)));
        Ok(Response::new(OffsetFetchResponse { offsets }))
    }

    async fn list_groups(&self, request: Request<ListGroupsRequest>) -> Result<Response<ListGroupsResponse>, Status> {
        let principal = self.access.guard(&request)?;
        let state = self.local.known_state()?;
        let me = self.local.env().me;
        let mut found: BTreeMap<String, GroupListing> = BTreeMap::new();
        let mut unreachable = Vec::new();
        for c in self.coordinators.all() {
            let (tx, rx) = oneshot::channel();
            if c.send(Cmd::List { reply: tx }).is_ok() {
                if let Ok(Ok(list)) = rx.await {
                    for g in list {
                        found.insert(
                            g.group_id.clone(),
                            GroupListing {
                                group_id: g.group_id,
                                state: g.state,
                                members: g.members,
                                coordinator_node_id: me,
                            },
                        );
                    }
                }
            }
        }
        let peers = self.local.env().peers.clone();
        let asks = state.nodes.iter().filter(|(n, _)| **n != me).map(|(node, addr)| {
            let (node, addr, peers, alive) = (*node, addr.peer.clone(), peers.clone(), self.liveness.is_alive(*node));
            async move {
                if !alive {
                    return (node, None);
                }
                let Ok(ch) = peers.get(&addr) else { return (node, None) };
                let mut client = NodeInternalClient::new(ch);
                match tokio::time::timeout(ASK_TIMEOUT, client.coordinated_groups(CoordinatedGroupsRequest {})).await {
                    Ok(Ok(r)) => (node, Some(r.into_inner().groups)),
                    _ => (node, None),
                }
            }
        });
        for (node, answer) in futures::future::join_all(asks).await {
            let Some(groups) = answer else {
                unreachable.push(node);
                continue;
            };
            for g in groups {
                found.entry(g.group_id.clone()).or_insert(GroupListing {
                    group_id: g.group_id,
                    state: g.state,
                    members: g.members,
                    coordinator_node_id: node,
                });
            }
        }
        // Only the groups the caller may describe (all of them with ACLs off).
        found.retain(|name, _| self.access.may(&principal, Operation::Describe, Resource::group(name)));
        Ok(Response::new(ListGroupsResponse {
            groups: found.into_values().collect(),
            unreachable_node_ids: unreachable,
        }))
    }

    async fn describe_group(
        &self,
        request: Request<DescribeGroupRequest>,
    ) -> Result<Response<DescribeGroupResponse>, Status> {
        self.access.guard(&request)?;
        self.describe(request.into_inner().group_id).await.map(Response::new)
    }

    async fn delete_group(
        &self,
        request: Request<DeleteGroupRequest>,
    ) -> Result<Response<DeleteGroupResponse>, Status> {
        self.access.guard(&request)?;
        let group = request.into_inner().group_id;
        self.call(&group, |reply| Cmd::Delete { group: group.clone(), reply }).await?;
        Ok(Response::new(DeleteGroupResponse {}))
    }

    async fn alter_offsets(
        &self,
        request: Request<AlterOffsetsRequest>,
    ) -> Result<Response<AlterOffsetsResponse>, Status> {
        self.access.guard(&request)?;
        let req = request.into_inner();
        let state = self.local.known_state()?;
        // Each offset within its partition's bounds; topics resolved here for the bounds only
        // (the coordinator resolves them again against its own metadata).
        let ids: BTreeSet<u64> = req.offsets.iter().filter_map(|o| state.topics.get(&o.topic).map(|t| t.id)).collect();
        let bounds = self.bounds(&ids).await;
        for o in &req.offsets {
            let Some(t) = state.topics.get(&o.topic) else {
                return Err(ServiceError::from(CoordError::UnknownTopic(o.topic.clone())).into());
            };
            if let Some((start, end)) = bounds.get(&(t.id, o.partition)) {
                if o.offset < *start || o.offset > *end {
                    return Err(ServiceError::from(CoordError::OffsetOutOfRange {
                        topic: o.topic.clone(),
                        partition: o.partition,
                        offset: o.offset,
                        log_start: *start,
                        log_end: *end,
                    })
                    .into());
                }
            } else if (o.partition as usize) < t.partitions.len() {
                return Err(ServiceError::Group(cairn_raft::GroupError::NotLeader { leader: None }).into());
            }
        }
        let group = req.group_id.clone();
        self.call(&group, |reply| Cmd::Alter { group: req.group_id, offsets: req.offsets, reply }).await?;
        Ok(Response::new(AlterOffsetsResponse {}))
    }
}
