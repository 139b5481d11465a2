//! Reading the PEM files and building the rustls configurations from them.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::{TlsError, TlsFiles};

/// Everything built from one reading of the files.
pub struct Material {
    pub client_listener: Arc<rustls::ServerConfig>,
    pub peer_listener: Arc<rustls::ServerConfig>,
    pub outgoing: Arc<rustls::ClientConfig>,
    /// Size and modification time of each file when read: a change means "read again".
    pub stamp: Vec<(u64, Option<std::time::SystemTime>)>,
}

/// What identifies a file's version without reading it.
pub fn stamp(files: &TlsFiles) -> Vec<(u64, Option<std::time::SystemTime>)> {
    [&files.ca, &files.cert, &files.key]
        .iter()
        .map(|p| match std::fs::metadata(p) {
            Ok(m) => (m.len(), m.modified().ok()),
            Err(_) => (0, None),
        })
        .collect()
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_path_buf(), message: message.to_string() }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn setup(e: impl std::fmt::Display) -> TlsError {
    TlsError::Setup(e.to_string())
}

/// Reads the files and builds the three configurations.
///
/// # Errors
/// A file that cannot be read or holds no certificate/key, a key that does not fit the
/// certificate, a CA that is not a usable trust anchor.
pub fn load(files: &TlsFiles, members: &[String]) -> Result<Material, TlsError> {
    let stamp = stamp(files);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certificates(&files.ca)? {
        roots.add(ca).map_err(|e| file_error(&files.ca, format!("not a usable CA certificate: {e}")))?;
    }
    let roots = Arc::new(roots);
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let h2 = vec![b"h2".to_vec()];

    let builder =
        || rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions();
    // Clients may present a certificate of the cluster CA (their principal when
    // authentication is on); one of another CA fails the handshake; none is also accepted
    // here (a token may authenticate the calls instead).
    let optional = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(setup)?;
    let mut client_listener = builder()
        .map_err(setup)?
        .with_client_cert_verifier(optional)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| file_error(&files.key, format!("does not fit {}: {e}", files.cert.display())))?;
    client_listener.alpn_protocols = h2.clone();

    let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(setup)?;
    let names = members
        .iter()
        .map(|h| {
            let bare = h.trim_start_matches('[').trim_end_matches(']').to_string();
            ServerName::try_from(bare).map_err(|e| setup(format!("member host {h}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let verifier = Arc::new(MemberVerifier { inner, members: names });
    let mut peer_listener = builder()
        .map_err(setup)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| file_error(&files.key, format!("does not fit {}: {e}", files.cert.display())))?;
    peer_listener.alpn_protocols = h2.clone();

    let mut outgoing = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| file_error(&files.key, format!("does not fit {}: {e}", files.cert.display())))?;
    outgoing.alpn_protocols = h2;
    Ok(Material {
        client_listener: Arc::new(client_listener),
        peer_listener: Arc::new(peer_listener),
        outgoing: Arc::new(outgoing),
        stamp,
    })
}

/// The peer listener's check: a certificate chained to the cluster CA (the inner verifier)
/// *and* valid for the host of some member's peer address, so a client certificate issued by
/// the same CA cannot speak Raft.
#[derive(Debug)]
struct MemberVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    members: Vec<ServerName<'static>>,
}

impl ClientCertVerifier for MemberVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(format!("unreadable peer certificate: {e}")))?;
        if self.members.iter().any(|m| cert.verify_is_valid_for_subject_name(m).is_ok()) {
            Ok(verified)
        } else {
            Err(rustls::Error::General("the certificate names no member of this cluster".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
