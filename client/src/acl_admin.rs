//! ACL calls on [`Client`]: changes go to the controller leader (any broker forwards them),
//! listings to any broker.

use std::time::Duration;

use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::{AclEntry, CreateAclsRequest, DeleteAclsRequest, ListAclsRequest};

use crate::client::{Client, Target};
use crate::error::ClientError;

impl Client {
    /// Adds `acls`; returns how many were new.
    ///
    /// # Errors
    /// INVALID_ARGUMENT naming a wrong field, AUTHORIZATION_FAILED without `alter` on the
    /// cluster, exhausted retries.
    pub async fn create_acls(&self, acls: Vec<AclEntry>) -> Result<u32, ClientError> {
        let req = CreateAclsRequest { acls };
        let r = self
            .with_retries(Target::Controller, Duration::ZERO, |ch| {
                let (mut c, req) = (AdminClient::new(ch), req.clone());
                async move { c.create_acls(req).await }
            })
            .await?;
        Ok(r.added)
    }

    /// Removes exactly `acls`; returns how many existed.
    ///
    /// # Errors
    /// As [`Client::create_acls`].
    pub async fn delete_acls(&self, acls: Vec<AclEntry>) -> Result<u32, ClientError> {
        let req = DeleteAclsRequest { acls };
        let r = self
            .with_retries(Target::Controller, Duration::ZERO, |ch| {
                let (mut c, req) = (AdminClient::new(ch), req.clone());
                async move { c.delete_acls(req).await }
            })
            .await?;
        Ok(r.removed)
    }

    /// The ACLs, of one principal and/or resource type when given (empty: any).
    ///
    /// # Errors
    /// AUTHORIZATION_FAILED without `describe` on the cluster, exhausted retries.
    pub async fn list_acls(&self, principal: &str, resource_type: &str) -> Result<Vec<AclEntry>, ClientError> {
        let req = ListAclsRequest { principal: principal.to_string(), resource_type: resource_type.to_string() };
        let r = self
            .with_retries(Target::Any, Duration::ZERO, |ch| {
                let (mut c, req) = (AdminClient::new(ch), req.clone());
                async move { c.list_acls(req).await }
            })
            .await?;
        Ok(r.acls)
    }
}
