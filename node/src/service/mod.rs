//! gRPC services of the public API.

mod broker;
mod error;

pub use broker::BrokerService;
pub use error::ServiceError;
