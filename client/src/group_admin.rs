//! Consumer group calls on [`Client`]: each goes to the group's coordinator (found through any
//! broker: a wrong node answers NOT_COORDINATOR with the coordinator's address, which is
//! followed and remembered).

use std::time::Duration;

use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{
    AlterOffsetsRequest, CommittedOffset, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeleteGroupRequest, DescribeGroupRequest, DescribeGroupResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    ListGroupsRequest, ListGroupsResponse, OffsetCommitPartition, OffsetCommitRequest, OffsetFetchRequest,
};

use crate::client::{Client, Target};
use crate::error::ClientError;

impl Client {
    fn groups_client(&self, ch: crate::config::Conn) -> GroupsClient<crate::config::Conn> {
        let max = self.config().message_bytes_max;
        GroupsClient::new(ch).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    /// Which node coordinates `group` (asked of any broker).
    ///
    /// # Errors
    /// No broker answered within the retry deadline.
    pub async fn find_coordinator(&self, group: &str) -> Result<FindCoordinatorResponse, ClientError> {
        let req = FindCoordinatorRequest { group_id: group.to_string() };
        self.with_retries(Target::Any, Duration::ZERO, |ch| {
            let (mut c, req) = (self.groups_client(ch), req.clone());
            async move { c.find_coordinator(req).await }
        })
        .await
    }

    /// One heartbeat of a group member, retried (coordinator moves included) within `budget`.
    ///
    /// # Errors
    /// The coordinator's refusals (UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH, INVALID_ARGUMENT…)
    /// and exhausted retries.
    pub async fn group_heartbeat(
        &self,
        req: ConsumerGroupHeartbeatRequest,
        budget: Duration,
    ) -> Result<ConsumerGroupHeartbeatResponse, ClientError> {
        let group = req.group_id.clone();
        self.with_retries_for(Target::Coordinator(&group), Duration::ZERO, budget, |ch| {
            let (mut c, req) = (self.groups_client(ch), req.clone());
            async move { c.consumer_group_heartbeat(req).await }
        })
        .await
    }

    /// Commits offsets of `group` (all or none): as member `member` at `epoch`, or with epoch -1
    /// from outside the group (only while it has no members).
    ///
    /// # Errors
    /// STALE_MEMBER_EPOCH / FENCED_MEMBER_EPOCH / UNKNOWN_MEMBER_ID when the member may not commit
    /// them; unknown topics; exhausted retries (outcome unknown).
    pub async fn commit_offsets(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        offsets: Vec<OffsetCommitPartition>,
    ) -> Result<(), ClientError> {
        let req = OffsetCommitRequest {
            group_id: group.to_string(),
            member_id: member.to_string(),
            member_epoch: epoch,
            offsets,
        };
        self.with_retries(Target::Coordinator(group), Duration::ZERO, |ch| {
            let (mut c, req) = (self.groups_client(ch), req.clone());
            async move { c.offset_commit(req).await }
        })
        .await
        .map(|_| ())
    }

    /// The committed offsets of `group` (of `topics`, or all when empty).
    ///
    /// # Errors
    /// Exhausted retries.
    pub async fn committed_offsets(&self, group: &str, topics: &[String]) -> Result<Vec<CommittedOffset>, ClientError> {
        let req = OffsetFetchRequest { group_id: group.to_string(), topics: topics.to_vec() };
        self.with_retries(Target::Coordinator(group), Duration::ZERO, |ch| {
            let (mut c, req) = (self.groups_client(ch), req.clone());
            async move { c.offset_fetch(req).await }
        })
        .await
        .map(|r| r.offsets)
    }

    /// Every consumer group of the cluster.
    ///
    /// # Errors
    /// Exhausted retries.
    pub async fn list_groups(&self) -> Result<ListGroupsResponse, ClientError> {
        self.with_retries(Target::Any, Duration::ZERO, |ch| {
            let mut c = self.groups_client(ch);
            async move { c.list_groups(ListGroupsRequest {}).await }
        })
        .await
    }

    /// A group's state, members and per-partition lag.
    ///
    /// # Errors
    /// Exhausted retries.
    pub async fn describe_group(&self, group: &str) -> Result<DescribeGroupResponse, ClientError> {
        let req = DescribeGroupRequest { group_id: group.to_string() };
        self.with_retries(Target::Coordinator(group), Duration::ZERO, |ch| {
            let (mut c, req) = (self.groups_client(ch), req.clone());
            async move { c.describe_group(req).await }
        })
        .await
    }

    /// Deletes a group without members, with its offsets.
    ///
    /// # Errors
    /// GROUP_NOT_EMPTY, GROUP_NOT_FOUND, exhausted retries.
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let req = DeleteGroupRequest { group_id: group.to_string() };
        self.with_retries(Target::Coordinator(group), Duration::ZERO, |ch| {
            let (mut c, req) = (self.groups_client(ch), req.clone());
            async move { c.delete_group(req).await }
        })
        .await
        .map(|_| ())
    }

    /// Sets committed offsets of a group without members (a reset).
    ///
    /// # Errors
    /// GROUP_NOT_EMPTY, OFFSET_OUT_OF_RANGE, unknown topics, exhausted retries.
    pub async fn alter_offsets(&self, group: &str, offsets: Vec<OffsetCommitPartition>) -> Result<(), ClientError> {
        let req = AlterOffsetsRequest { group_id: group.to_string(), offsets };
        self.with_retries(Target::Coordinator(group), Duration::ZERO, |ch| {
            let (mut c, req) = (self.groups_client(ch), req.clone());
            async move { c.alter_offsets(req).await }
        })
        .await
        .map(|_| ())
    }
}
