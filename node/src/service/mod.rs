//! gRPC services of the public API.

mod access;
mod acls;
mod admin;
mod broker;
mod error;
mod forward;
mod groups;
mod internal;
mod subscribe;
mod trace;

pub use access::Access;
pub use admin::AdminService;
pub use broker::BrokerService;
pub use error::ServiceError;
pub use groups::GroupsService;
pub use internal::InternalService;
