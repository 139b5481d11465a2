//! `cairn.v1.Admin`: topics. Changes go through the controller leader; reads are answered from
//! this node's copy of the metadata.

use std::sync::Arc;

use cairn_proto::v1::admin_server::{Admin, AdminServer};
use cairn_proto::v1::{
    AlterTopicConfigRequest, AlterTopicConfigResponse, CreateAclsRequest, CreateAclsResponse, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicRequest, CreateTopicResponse, DeleteAclsRequest, DeleteAclsResponse,
    DeleteTopicRequest, DeleteTopicResponse, DescribeTopicRequest, DescribeTopicResponse, ListAclsRequest,
    ListAclsResponse, ListTopicsRequest, ListTopicsResponse, RepairReplicaRequest, RepairReplicaResponse,
    ReplaceNodeRequest, ReplaceNodeResponse, RetentionConfig, TopicConfigEntry, TopicSummary,
};
use cairn_raft::GroupError;
use tonic::{Request, Response, Status};

use super::access::Access;
use super::error::ServiceError;
use super::forward::Forwarder;
use crate::auth::acl::{Operation, Resource};
use crate::config::RetentionSection;
use crate::controller::duties::default_replication;
use crate::controller::repair;
use crate::controller::state::{MetaAnswer, MetaCommand, Retention, Topic, CONTROLLER_GROUP, PARTITIONS_MAX};
use crate::controller::Controller;
use crate::describe;
use crate::groups::LocalGroups;
use crate::liveness::Liveness;

pub struct AdminService {
    controller: Arc<Controller>,
    groups: Arc<LocalGroups>,
    liveness: Liveness,
    forward: Forwarder,
    access: Access,
}

impl AdminService {
    pub fn new(
        controller: Arc<Controller>,
        groups: Arc<LocalGroups>,
        liveness: Liveness,
        access: Access,
    ) -> AdminService {
        let forward = Forwarder::new(groups.env().me, groups.env().peers.clone());
        AdminService { controller, groups, liveness, forward, access }
    }

    pub fn into_server(self) -> AdminServer<AdminService> {
        AdminServer::new(self)
    }
}

/// A topic as the admin API shows it; `defaults` are this node's cluster defaults.
/// A schema validation setting as a config entry: 1 on, 0 off (the default).
fn validation(name: &str, on: bool) -> TopicConfigEntry {
    TopicConfigEntry {
        name: name.to_string(),
        value: i64::from(on),
        source: if on { "topic" } else { "default" }.to_string(),
    }
}

pub fn summary(name: &str, t: &Topic, defaults: &RetentionSection) -> TopicSummary {
    let (ms, bytes) = crate::retention::effective(&t.retention, defaults);
    let entry = |name: &str, e: crate::retention::Effective| TopicConfigEntry {
        name: name.to_string(),
        value: e.value,
        source: e.source.as_str().to_string(),
    };
    TopicSummary {
        name: name.to_string(),
        topic_id: t.id,
        partitions: t.partitions.len() as u32,
        replication_factor: t.replication_factor,
        retention: Some(RetentionConfig {
            retention_ms: t.retention.retention_ms,
            retention_bytes: t.retention.retention_bytes,
        }),
        configs: vec![
            entry("retention_ms", ms),
            entry("retention_bytes", bytes),
            validation("key_schema_validation", t.schema_validation.key),
            validation("value_schema_validation", t.schema_validation.value),
        ],
    }
}

/// A partition count a request may ask for.
fn check_partition_count(partitions: u32) -> Result<(), ServiceError> {
    if partitions == 0 || partitions > PARTITIONS_MAX {
        return Err(ServiceError::InvalidArgument(format!(
            "partitions must be 1..={PARTITIONS_MAX}, got {partitions}"
        )));
    }
    Ok(())
}

/// The error for a refusal of the controller (placing partitions, adding ACLs).
fn refusal(answer: MetaAnswer) -> ServiceError {
    match answer {
        MetaAnswer::Invalid(m) if m.contains("live nodes") => ServiceError::NotEnoughLiveNodes(m),
        MetaAnswer::LimitExceeded(m) => ServiceError::LimitExceeded(m),
        MetaAnswer::Invalid(m) => ServiceError::InvalidArgument(m),
        other => ServiceError::Internal(other.unexpected()),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_topic(
        &self,
        request: Request<CreateTopicRequest>,
    ) -> Result<Response<CreateTopicResponse>, Status> {
        self.access.guard(&request)?;
        if !self.controller.is_leader() {
            let leader = self.controller.leader();
            return self.forward.admin(leader, request, |mut c, r| async move { c.create_topic(r).await }).await;
        }
        let req = request.into_inner();
        crate::topic::check_name(&req.name).map_err(ServiceError::InvalidArgument)?;
        if crate::topic::is_internal(&req.name) {
            return Err(ServiceError::InvalidArgument(format!(
                "topic names starting with \"__\" are reserved for Cairn's internal topics ({:?})",
                req.name
            ))
            .into());
        }
        check_partition_count(req.partitions)?;
        // Checks below use the controller leader's view; elsewhere, redirect first.
        if !self.controller.is_leader() {
            return Err(ServiceError::Group(GroupError::NotLeader { leader: self.controller.leader() }).into());
        }
        let state = self.controller.state();
        if state.nodes.is_empty() {
            return Err(ServiceError::Starting { group: CONTROLLER_GROUP }.into());
        }
        let rf = match req.replication_factor {
            0 => default_replication(state.nodes.len()),
            n => n,
        };
        if rf as usize > state.nodes.len() {
            return Err(ServiceError::InvalidReplication(format!(
                "replication factor {rf} is above the cluster's {} nodes",
                state.nodes.len()
            ))
            .into());
        }
        let live = self.liveness.live_nodes(self.groups.env().me, state.nodes.keys().copied());
        if rf as usize > live.len() {
            // Nodes may come back (or this node may not have heard from them yet): retriable.
            return Err(ServiceError::NotEnoughLiveNodes(format!(
                "replication factor {rf} needs {rf} live nodes; {} of {} nodes are live",
                live.len(),
                state.nodes.len()
            ))
            .into());
        }
        let retention = req
            .retention
            .map(|r| Retention { retention_ms: r.retention_ms, retention_bytes: r.retention_bytes })
            .unwrap_or_default();
        crate::retention::check_topic_settings(&retention).map_err(ServiceError::InvalidArgument)?;
        let cmd = MetaCommand::CreateTopic {
            name: req.name.clone(),
            partitions: req.partitions,
            replication_factor: rf,
            retention,
            live,
            limits: self.controller.limits().partition_limits(),
        };
        match self.controller.propose(&cmd).await? {
            MetaAnswer::Created { .. } => {
                let state = self.controller.state();
                let t = state
                    .topics
                    .get(&req.name)
                    .ok_or_else(|| ServiceError::Internal("created topic vanished".into()))?;
                Ok(Response::new(CreateTopicResponse {
                    topic: Some(summary(&req.name, t, &self.groups.env().config.retention)),
                }))
            }
            MetaAnswer::AlreadyExists => Err(ServiceError::TopicExists(req.name).into()),
            other => Err(refusal(other).into()),
        }
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        self.access.guard(&request)?;
        if !self.controller.is_leader() {
            let leader = self.controller.leader();
            return self.forward.admin(leader, request, |mut c, r| async move { c.delete_topic(r).await }).await;
        }
        let name = request.into_inner().name;
        if crate::topic::is_internal(&name) {
            return Err(
                ServiceError::InvalidArgument(format!("{name:?} is an internal topic; it cannot be deleted")).into()
            );
        }
        match self.controller.propose(&MetaCommand::DeleteTopic { name: name.clone() }).await? {
            MetaAnswer::Done => Ok(Response::new(DeleteTopicResponse {})),
            MetaAnswer::NotFound => Err(ServiceError::UnknownTopic(name).into()),
            other => Err(ServiceError::Internal(other.unexpected()).into()),
        }
    }

    async fn alter_topic_config(
        &self,
        request: Request<AlterTopicConfigRequest>,
    ) -> Result<Response<AlterTopicConfigResponse>, Status> {
        self.access.guard(&request)?;
        if !self.controller.is_leader() {
            let leader = self.controller.leader();
            return self.forward.admin(leader, request, |mut c, r| async move { c.alter_topic_config(r).await }).await;
        }
        let req = request.into_inner();
        if crate::topic::is_internal(&req.name) {
            return Err(ServiceError::InvalidArgument(format!("{:?} is an internal topic", req.name)).into());
        }
        let validation = req.key_schema_validation.is_some() || req.value_schema_validation.is_some();
        if req.retention_ms.is_none() && req.retention_bytes.is_none() && !validation {
            return Err(ServiceError::InvalidArgument("no setting to change was given".into()).into());
        }
        let asked = Retention {
            retention_ms: req.retention_ms.unwrap_or(0),
            retention_bytes: req.retention_bytes.unwrap_or(0),
        };
        crate::retention::check_topic_settings(&asked).map_err(ServiceError::InvalidArgument)?;
        let mut cmds = Vec::new();
        if req.retention_ms.is_some() || req.retention_bytes.is_some() {
            cmds.push(MetaCommand::AlterTopicConfig {
                name: req.name.clone(),
                retention_ms: req.retention_ms,
                retention_bytes: req.retention_bytes,
            });
        }
        if validation {
            cmds.push(MetaCommand::SetSchemaValidation {
                name: req.name.clone(),
                key: req.key_schema_validation,
                value: req.value_schema_validation,
            });
        }
        // Each command is checked whole before any is proposed (the retention settings above),
        // so a refusal comes from the first and changes nothing.
        let mut answer = MetaAnswer::Done;
        for cmd in &cmds {
            answer = self.controller.propose(cmd).await?;
            if answer != MetaAnswer::Done {
                break;
            }
        }
        match answer {
            MetaAnswer::Done => {
                let state = self.controller.state();
                let t = state.topics.get(&req.name).ok_or_else(|| ServiceError::UnknownTopic(req.name.clone()))?;
                let topic = summary(&req.name, t, &self.groups.env().config.retention);
                Ok(Response::new(AlterTopicConfigResponse { topic: Some(topic) }))
            }
            MetaAnswer::NotFound => Err(ServiceError::UnknownTopic(req.name).into()),
            MetaAnswer::Invalid(why) => Err(ServiceError::InvalidArgument(why).into()),
            other => Err(ServiceError::Internal(other.unexpected()).into()),
        }
    }

    async fn create_partitions(
        &self,
        request: Request<CreatePartitionsRequest>,
    ) -> Result<Response<CreatePartitionsResponse>, Status> {
        self.access.guard(&request)?;
        if !self.controller.is_leader() {
            let leader = self.controller.leader();
            return self.forward.admin(leader, request, |mut c, r| async move { c.create_partitions(r).await }).await;
        }
        let req = request.into_inner();
        if crate::topic::is_internal(&req.name) {
            // Group ids hash over __consumer_offsets' partition count: growing it would move
            // every group's coordinator away from its records.
            return Err(ServiceError::InvalidArgument(format!(
                "{:?} is an internal topic; its partition count is fixed",
                req.name
            ))
            .into());
        }
        check_partition_count(req.partitions)?;
        // Liveness is the controller leader's view; elsewhere, redirect first.
        if !self.controller.is_leader() {
            return Err(ServiceError::Group(GroupError::NotLeader { leader: self.controller.leader() }).into());
        }
        let state = self.controller.state();
        let live = self.liveness.live_nodes(self.groups.env().me, state.nodes.keys().copied());
        let cmd = MetaCommand::CreatePartitions {
            name: req.name.clone(),
            partitions: req.partitions,
            live,
            limits: self.controller.limits().partition_limits(),
        };
        match self.controller.propose(&cmd).await? {
            MetaAnswer::Done | MetaAnswer::AlreadyExists => {
                let state = self.controller.state();
                let t = state.topics.get(&req.name).ok_or_else(|| ServiceError::UnknownTopic(req.name.clone()))?;
                let topic = summary(&req.name, t, &self.groups.env().config.retention);
                Ok(Response::new(CreatePartitionsResponse { topic: Some(topic) }))
            }
            MetaAnswer::NotFound => Err(ServiceError::UnknownTopic(req.name).into()),
            other => Err(refusal(other).into()),
        }
    }

    async fn replace_node(
        &self,
        request: Request<ReplaceNodeRequest>,
    ) -> Result<Response<ReplaceNodeResponse>, Status> {
        self.access.guard(&request)?;
        if !self.controller.is_leader() {
            let leader = self.controller.leader();
            return self.forward.admin(leader, request, |mut c, r| async move { c.replace_node(r).await }).await;
        }
        let ReplaceNodeRequest { node_id: node, expected_directory_id: expected } = request.into_inner();
        if !self.controller.is_leader() {
            return Err(ServiceError::Group(GroupError::NotLeader { leader: self.controller.leader() }).into());
        }
        let state = self.controller.state();
        if !state.nodes.contains_key(&node) {
            return Err(ServiceError::InvalidArgument(format!("node {node} is not a member of this cluster")).into());
        }
        let registered = state.directories.get(&node).copied().unwrap_or(0);
        if expected != 0 {
            // The node itself found its data damaged (a WAL that lost fsynced writes) and asks
            // for its own replacement; a repeat after success is answered alike.
            if registered == 0 {
                return Ok(Response::new(ReplaceNodeResponse { replicas: 0 }));
            }
            if registered != expected {
                return Err(ServiceError::InvalidArgument(format!(
                    "node {node} has data directory {registered:#x} registered, not {expected:#x}"
                ))
                .into());
            }
        }
        let up_with_it = node == self.groups.env().me || self.liveness.directory_of(node) == Some(registered);
        if registered != 0 && up_with_it && expected == 0 {
            return Err(ServiceError::InvalidArgument(format!(
                "node {node} is up with its registered data directory {registered:#x}: replacing it would discard \
                 a working replica (stop it first if its disk is really lost)"
            ))
            .into());
        }
        match self.controller.propose(&MetaCommand::ReplaceNode { node }).await? {
            MetaAnswer::Replaced { replicas } => {
                tracing::warn!(node, replicas, "node marked for replacement");
                Ok(Response::new(ReplaceNodeResponse { replicas }))
            }
            MetaAnswer::Invalid(m) => Err(ServiceError::InvalidArgument(m).into()),
            other => Err(ServiceError::Internal(other.unexpected()).into()),
        }
    }

    async fn repair_replica(
        &self,
        request: Request<RepairReplicaRequest>,
    ) -> Result<Response<RepairReplicaResponse>, Status> {
        self.access.guard(&request)?;
        if !self.controller.is_leader() {
            let leader = self.controller.leader();
            return self.forward.admin(leader, request, |mut c, r| async move { c.repair_replica(r).await }).await;
        }
        let RepairReplicaRequest { topic, partition, node_id } = request.into_inner();
        if !self.controller.is_leader() {
            return Err(ServiceError::Group(GroupError::NotLeader { leader: self.controller.leader() }).into());
        }
        let state = self.controller.state();
        let t = state.topics.get(&topic).ok_or_else(|| ServiceError::UnknownTopic(topic.clone()))?;
        let p = t.partitions.get(partition as usize).ok_or(ServiceError::UnknownPartition {
            topic: topic.clone(),
            partition,
            count: t.partitions.len() as u32,
        })?;
        let r = p.replicas.iter().find(|r| r.node == node_id).ok_or_else(|| {
            ServiceError::InvalidArgument(format!("{topic}/{partition} has no replica on node {node_id}"))
        })?;
        let replica = cairn_raft::ids::replica_id(r.node, r.incarnation);
        if p.replicas.len() < 2 {
            return Err(ServiceError::InvalidArgument(format!(
                "{topic}/{partition} has a single replica: there is no other copy to rebuild it from"
            ))
            .into());
        }
        repair::ready(&self.groups, &self.liveness, p, node_id).await.map_err(|why| {
            ServiceError::Group(GroupError::MembershipChange { reason: format!("cannot rebuild it now: {why}") })
        })?;
        match self.controller.propose(&MetaCommand::RepairReplica { group: p.group_id, replica }).await? {
            MetaAnswer::Repaired { replica: new } => {
                tracing::warn!(
                    topic,
                    partition,
                    node = node_id,
                    new = format_args!("{new:#x}"),
                    "replica repair requested"
                );
                Ok(Response::new(RepairReplicaResponse { replica_id: new }))
            }
            MetaAnswer::Invalid(m) => Err(ServiceError::InvalidArgument(m).into()),
            other => Err(ServiceError::Internal(other.unexpected()).into()),
        }
    }

    async fn list_topics(&self, request: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        let principal = self.access.guard(&request)?;
        let internal = request.into_inner().include_internal;
        let state = self.groups.known_state()?;
        let topics = state
            .topics
            .iter()
            .filter(|(n, _)| internal || !crate::topic::is_internal(n))
            .filter(|(n, _)| self.access.may(&principal, Operation::Describe, Resource::topic(n)))
            .map(|(n, t)| summary(n, t, &self.groups.env().config.retention))
            .collect();
        Ok(Response::new(ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        request: Request<DescribeTopicRequest>,
    ) -> Result<Response<DescribeTopicResponse>, Status> {
        self.access.guard(&request)?;
        let name = request.into_inner().name;
        let state = self.groups.known_state()?;
        let t = state.topics.get(&name).ok_or_else(|| ServiceError::UnknownTopic(name.clone()))?;
        let ids = t.partitions.iter().map(|p| p.group_id).collect();
        let views = describe::gather(&self.groups, &self.liveness, ids).await;
        Ok(Response::new(DescribeTopicResponse {
            topic: Some(summary(&name, t, &self.groups.env().config.retention)),
            partitions: describe::partitions(t, &views, &state),
        }))
    }

    async fn create_acls(&self, request: Request<CreateAclsRequest>) -> Result<Response<CreateAclsResponse>, Status> {
        self.access.guard(&request)?;
        if !self.controller.is_leader() {
            let leader = self.controller.leader();
            return self.forward.admin(leader, request, |mut c, r| async move { c.create_acls(r).await }).await;
        }
        let acls = super::acls::parse_all(&request.into_inner().acls)?;
        match self.controller.propose(&MetaCommand::AddAcls { acls }).await? {
            MetaAnswer::AclsChanged { count } => Ok(Response::new(CreateAclsResponse { added: count })),
            other => Err(refusal(other).into()),
        }
    }

    async fn delete_acls(&self, request: Request<DeleteAclsRequest>) -> Result<Response<DeleteAclsResponse>, Status> {
        self.access.guard(&request)?;
        if !self.controller.is_leader() {
            let leader = self.controller.leader();
            return self.forward.admin(leader, request, |mut c, r| async move { c.delete_acls(r).await }).await;
        }
        let acls = super::acls::parse_all(&request.into_inner().acls)?;
        match self.controller.propose(&MetaCommand::RemoveAcls { acls }).await? {
            MetaAnswer::AclsChanged { count } => Ok(Response::new(DeleteAclsResponse { removed: count })),
            // None of them existed: removing them again is not an error (a retried call).
            MetaAnswer::NotFound => Ok(Response::new(DeleteAclsResponse { removed: 0 })),
            other => Err(refusal(other).into()),
        }
    }

    async fn list_acls(&self, request: Request<ListAclsRequest>) -> Result<Response<ListAclsResponse>, Status> {
        self.access.guard(&request)?;
        let filter = request.into_inner();
        let resource = match filter.resource_type.as_str() {
            "" => None,
            text => Some(super::acls::resource_type(text)?),
        };
        let state = self.groups.known_state()?;
        let acls = state
            .acls
            .iter()
            .filter(|a| filter.principal.is_empty() || a.principal == filter.principal)
            .filter(|a| resource.is_none_or(|r| a.resource == r))
            .map(super::acls::entry)
            .collect();
        Ok(Response::new(ListAclsResponse { acls }))
    }
}
