//! The access check: the one place the service layer asks "may this caller do this?", before
//! any work. Every handler of the public API calls [`Access::guard`] first with its request
//! (whose [`Guarded`] impl below says what the call needs, all of them in this one table);
//! listings call [`Access::may`] to leave out what the caller may not describe; streams check
//! again for every message, so a revoked ACL stops them too.
//!
//! With ACLs off (`[auth] acls = false`, the default) everything is allowed. With them on, a
//! super-user may do everything, anyone else what an ACL allows and none denies. The ACLs are
//! this node's copy of the controller state, so an ACL added or removed takes effect here
//! once this node has applied it (normally within a heartbeat of the answer; bounded by the
//! metadata catching up).

use std::sync::Arc;

use cairn_proto::v1::{
    AlterOffsetsRequest, AlterTopicConfigRequest, ConsumerGroupHeartbeatRequest, CreateAclsRequest,
    CreatePartitionsRequest, CreateTopicRequest, DeleteAclsRequest, DeleteGroupRequest, DeleteRecordsRequest,
    DeleteTopicRequest, DescribeClusterRequest, DescribeGroupRequest, DescribeTopicRequest, FetchRequest,
    FindCoordinatorRequest, InitProducerRequest, ListAclsRequest, ListGroupsRequest, ListOffsetsRequest,
    ListTopicsRequest, OffsetCommitPartition, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest,
    RepairReplicaRequest, ReplaceNodeRequest,
};
use tokio::sync::watch;
use tonic::Request;

use super::error::ServiceError;
use crate::auth::acl::{self, Operation, Resource};
use crate::auth::{AuthConfig, Principal};
use crate::config::Config;
use crate::controller::state::ClusterState;

/// What one call needs the caller to be allowed.
pub enum Need<'a> {
    /// Nothing (a listing, filtered by what the caller may describe).
    Nothing,
    /// This operation on this resource.
    One(Operation, Resource<'a>),
    /// Every one of these.
    All(Vec<(Operation, Resource<'a>)>),
    /// Either of these (creating a topic: `create` on the topic or on the cluster).
    Either([(Operation, Resource<'a>); 2]),
    /// `write` on some topic (a producer id: useless without one).
    WriteSomewhere,
}

/// A request type and what it needs.
pub trait Guarded {
    fn needs(&self) -> Need<'_>;
}

/// The access decisions of one node.
#[derive(Clone)]
pub struct Access {
    config: Arc<AuthConfig>,
    state: watch::Receiver<Arc<ClusterState>>,
    /// FAULT INJECTION (negative control): ACLs are not checked.
    ignore_acls: bool,
}

impl Access {
    pub fn new(config: &Config, state: watch::Receiver<Arc<ClusterState>>) -> Access {
        Access { config: Arc::new(config.auth.clone()), state, ignore_acls: config.faults.ignore_acls }
    }

    /// The caller of `request`, if it may do what the request needs.
    ///
    /// # Errors
    /// `Denied`, naming the first operation and resource refused.
    pub fn guard<T: Guarded>(&self, request: &Request<T>) -> Result<Principal, ServiceError> {
        let principal = Principal::of(request);
        self.require(&principal, request.get_ref().needs())?;
        Ok(principal)
    }

    /// Whether `principal` may do what `need` says.
    ///
    /// # Errors
    /// `Denied`, naming the first operation and resource refused.
    pub fn require(&self, principal: &Principal, need: Need<'_>) -> Result<(), ServiceError> {
        let denied = |op: Operation, r: Resource<'_>| ServiceError::Denied {
            principal: principal.name().to_string(),
            operation: op.as_str(),
            resource: r.to_string(),
        };
        match need {
            Need::Nothing => Ok(()),
            Need::One(op, r) => self.may(principal, op, r).then_some(()).ok_or_else(|| denied(op, r)),
            Need::All(all) => all
                .into_iter()
                .try_for_each(|(op, r)| self.may(principal, op, r).then_some(()).ok_or_else(|| denied(op, r))),
            Need::Either([(op, r), other]) => {
                if self.may(principal, op, r) || self.may(principal, other.0, other.1) {
                    Ok(())
                } else {
                    Err(denied(op, r))
                }
            }
            Need::WriteSomewhere => {
                if !self.enforcing() || self.is_super(principal) {
                    return Ok(());
                }
                let state = self.state.borrow();
                if acl::may_write_somewhere(&state.acls, principal.name()) {
                    Ok(())
                } else {
                    Err(denied(Operation::Write, Resource::topic(acl::WILDCARD)))
                }
            }
        }
    }

    /// Whether `principal` may do `operation` to `resource`.
    pub fn may(&self, principal: &Principal, operation: Operation, resource: Resource<'_>) -> bool {
        if !self.enforcing() || self.is_super(principal) {
            return true;
        }
        acl::allowed(&self.state.borrow().acls, principal.name(), operation, resource)
    }

    fn enforcing(&self) -> bool {
        self.config.acls && !self.ignore_acls
    }

    fn is_super(&self, principal: &Principal) -> bool {
        self.config.super_users.iter().any(|s| s == principal.name())
    }
}

// ---- The table: what each call needs. -------------------------------------------------------

use Operation::{Alter, Create, Delete, Describe, Read, Write};

impl Guarded for ProduceRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Write, Resource::topic(&self.topic))
    }
}

impl Guarded for FetchRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Read, Resource::topic(&self.topic))
    }
}

impl Guarded for ListOffsetsRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Describe, Resource::topic(&self.topic))
    }
}

impl Guarded for DeleteRecordsRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Delete, Resource::topic(&self.topic))
    }
}

impl Guarded for InitProducerRequest {
    fn needs(&self) -> Need<'_> {
        Need::WriteSomewhere
    }
}

impl Guarded for DescribeClusterRequest {
    fn needs(&self) -> Need<'_> {
        Need::Nothing // topics listed only where the caller may describe them
    }
}

impl Guarded for CreateTopicRequest {
    fn needs(&self) -> Need<'_> {
        Need::Either([(Create, Resource::topic(&self.name)), (Create, Resource::cluster())])
    }
}

impl Guarded for DeleteTopicRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Delete, Resource::topic(&self.name))
    }
}

impl Guarded for ListTopicsRequest {
    fn needs(&self) -> Need<'_> {
        Need::Nothing
    }
}

impl Guarded for DescribeTopicRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Describe, Resource::topic(&self.name))
    }
}

impl Guarded for AlterTopicConfigRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Alter, Resource::topic(&self.name))
    }
}

impl Guarded for CreatePartitionsRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Alter, Resource::topic(&self.name))
    }
}

impl Guarded for ReplaceNodeRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Alter, Resource::cluster())
    }
}

impl Guarded for RepairReplicaRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Alter, Resource::cluster())
    }
}

impl Guarded for CreateAclsRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Alter, Resource::cluster())
    }
}

impl Guarded for DeleteAclsRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Alter, Resource::cluster())
    }
}

impl Guarded for ListAclsRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Describe, Resource::cluster())
    }
}

impl Guarded for FindCoordinatorRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Describe, Resource::group(&self.group_id))
    }
}

impl Guarded for ConsumerGroupHeartbeatRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Read, Resource::group(&self.group_id))
    }
}

impl Guarded for OffsetCommitRequest {
    fn needs(&self) -> Need<'_> {
        group_and_topics(&self.group_id, &self.offsets)
    }
}

/// `read` on the group and on every topic an offset is given for.
fn group_and_topics<'a>(group: &'a str, offsets: &'a [OffsetCommitPartition]) -> Need<'a> {
    let mut topics: Vec<&str> = offsets.iter().map(|o| o.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    let mut all = vec![(Read, Resource::group(group))];
    all.extend(topics.into_iter().map(|t| (Read, Resource::topic(t))));
    Need::All(all)
}

impl Guarded for OffsetFetchRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Describe, Resource::group(&self.group_id))
    }
}

impl Guarded for ListGroupsRequest {
    fn needs(&self) -> Need<'_> {
        Need::Nothing // groups listed only where the caller may describe them
    }
}

impl Guarded for DescribeGroupRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Describe, Resource::group(&self.group_id))
    }
}

impl Guarded for DeleteGroupRequest {
    fn needs(&self) -> Need<'_> {
        Need::One(Delete, Resource::group(&self.group_id))
    }
}

impl Guarded for AlterOffsetsRequest {
    fn needs(&self) -> Need<'_> {
        group_and_topics(&self.group_id, &self.offsets)
    }
}
