//! Who is calling. On the client listener every `cairn.v1` call is authenticated before it
//! reaches a service: a bearer token (`authorization: Bearer …`, checked against the SHA-256
//! digests in the configuration) or a client certificate of the cluster CA (its common name,
//! checked in the TLS handshake). The principal found rides in the request's extensions for the
//! service layer's access check. With authentication off (the local default) every caller is
//! [`Principal::anonymous`] and may do everything.
//!
//! On the peer listener only nodes get through the TLS handshake (a member certificate), so a
//! forwarded admin call's principal is taken from the forwarding node's `cairn-principal`
//! header; on the client listener that header is removed before anything reads it.
//!
//! ```text
//!  client listener: token? ─ valid ─► Principal(name)      peer listener: cairn-principal
//!                     │ none  └ invalid ─► UNAUTHENTICATED              header ─► Principal
//!                     ▼
//!                  client certificate? ─► Principal(common name) │ none ─► UNAUTHENTICATED
//! ```

pub mod acl;
mod cert;
pub mod token;

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::service::ServiceError;
use crate::telemetry::EverySecond;

pub use token::Tokens;

/// Header naming the principal of an admin call one node forwards to another.
pub const FORWARDED_PRINCIPAL: &str = "cairn-principal";

/// The caller a request was authenticated as.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal(String);

impl Principal {
    /// Everyone, when authentication is off.
    pub const ANONYMOUS: &'static str = "ANONYMOUS";

    pub fn new(name: impl Into<String>) -> Principal {
        Principal(name.into())
    }

    pub fn anonymous() -> Principal {
        Principal(Principal::ANONYMOUS.to_string())
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// The principal the client-listener check stored in `request` (anonymous when none did:
    /// only possible for services served without the check, never the public API).
    pub fn of<T>(request: &Request<T>) -> Principal {
        request.extensions().get::<Principal>().cloned().unwrap_or_else(Principal::anonymous)
    }

    /// Puts this principal on a call forwarded to another node's peer listener.
    pub fn forward_on<T>(&self, request: &mut Request<T>) {
        if let Ok(v) = MetadataValue::try_from(self.0.as_str()) {
            request.metadata_mut().insert(FORWARDED_PRINCIPAL, v);
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `name` can be a principal: printable, no spaces or commas, not the wildcard.
///
/// # Errors
/// What is wrong with it.
pub fn check_principal_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 256 {
        return Err("a principal name is 1 to 256 characters".into());
    }
    if name == "*" {
        return Err("`*` means every principal in an ACL; it cannot be one".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',') {
        return Err("a principal name has no spaces, control characters or commas".into());
    }
    Ok(())
}

/// The `[auth]` settings a node runs with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Every client call must authenticate.
    pub enabled: bool,
    /// ACLs decide what an authenticated principal may do (deny unless allowed).
    pub acls: bool,
    /// Principals every ACL check allows.
    pub super_users: Vec<String>,
    pub tokens: Tokens,
}

impl AuthConfig {
    /// Says at start-up how clients are checked.
    pub fn announce(&self, tls: bool) {
        if !self.enabled {
            tracing::warn!("authentication is off: every client may do everything (set [auth] enabled = true)");
            return;
        }
        let mut ways = Vec::new();
        if tls {
            ways.push("client certificates of the cluster CA");
        }
        if !self.tokens.is_empty() {
            ways.push("bearer tokens");
        }
        if !tls && !self.tokens.is_empty() {
            tracing::warn!("bearer tokens travel in clear text: no TLS is configured");
        }
        let acls = if self.acls { "on" } else { "off (every authenticated principal may do everything)" };
        tracing::info!(accepted = %ways.join(" and "), acls, super_users = ?self.super_users, "authentication is on");
    }
}

/// The client listener's check, run on every call of the public services before the service
/// sees it.
#[derive(Clone)]
pub struct Authenticator {
    config: Arc<AuthConfig>,
    refusals: Arc<EverySecond>,
}

impl Authenticator {
    pub fn new(config: AuthConfig) -> Authenticator {
        Authenticator { config: Arc::new(config), refusals: Arc::default() }
    }

    /// The principal `request` proves, or why it proves none.
    fn authenticate(&self, request: &Request<()>) -> Result<Principal, ServiceError> {
        if !self.config.enabled {
            return Ok(Principal::anonymous());
        }
        if let Some(value) = request.metadata().get(token::HEADER) {
            let text = value.to_str().map_err(|_| unauthenticated("the authorization header is not text"))?;
            let Some(token) = text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")) else {
                return Err(unauthenticated("the authorization header must be `Bearer <token>`"));
            };
            // A wrong token is refused even with a good certificate: the caller meant the token.
            return match self.config.tokens.principal(token.trim()) {
                Some(p) => Ok(Principal::new(p)),
                None => Err(unauthenticated("the bearer token is not valid")),
            };
        }
        if let Some(certs) = request.peer_certs() {
            if let Some(leaf) = certs.first() {
                return cert::principal(leaf).map(Principal::new).map_err(ServiceError::Unauthenticated);
            }
        }
        Err(unauthenticated(
            "authentication is required: present a client certificate of the cluster CA (--cert/--cert-key) or a bearer token (--token)",
        ))
    }
}

fn unauthenticated(why: &str) -> ServiceError {
    ServiceError::Unauthenticated(why.to_string())
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        // Only nodes may name the principal of a call (on the peer listener).
        request.metadata_mut().remove(FORWARDED_PRINCIPAL);
        match self.authenticate(&request) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                Ok(request)
            }
            Err(e) => {
                if let Some(more) = self.refusals.allow() {
                    let remote = request.remote_addr().map(|a| a.to_string()).unwrap_or_default();
                    tracing::warn!(%remote, reason = %e, unlogged_since_last = more, "refused an unauthenticated call");
                }
                Err(e.into())
            }
        }
    }
}

/// The peer listener's side: the caller is a node (the handshake proved it when TLS is on);
/// the principal is the one it forwards, anonymous if it names none.
#[derive(Clone, Copy, Default)]
pub struct ForwardedPrincipal;

impl Interceptor for ForwardedPrincipal {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let principal = request
            .metadata()
            .get(FORWARDED_PRINCIPAL)
            .and_then(|v| v.to_str().ok())
            .map_or_else(Principal::anonymous, Principal::new);
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}
