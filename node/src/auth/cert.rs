//! The principal a client certificate names: its subject's common name, else its first DNS
//! subject alternative name (the chain was already checked against the cluster CA in the TLS
//! handshake; this only reads the name).

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The principal of the DER certificate `der`.
///
/// # Errors
/// A certificate that does not parse or names nobody.
pub fn principal(der: &[u8]) -> Result<String, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("unreadable client certificate: {e}"))?;
    if let Some(cn) = cert.subject().iter_common_name().next() {
        if let Ok(name) = cn.as_str() {
            if !name.trim().is_empty() {
                return Ok(name.trim().to_string());
            }
        }
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                return Ok((*dns).to_string());
            }
        }
    }
    Err("the client certificate names no principal (no common name, no DNS name)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(cn: Option<&str>, sans: Vec<String>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(sans).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        p.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn the_common_name_wins_then_the_first_dns_name() {
        assert_eq!(principal(&der(Some("alice"), vec!["host.example".into()])), Ok("alice".into()));
        assert_eq!(principal(&der(None, vec!["svc-orders".into(), "other".into()])), Ok("svc-orders".into()));
        assert!(principal(&der(None, vec![])).is_err());
        assert!(principal(b"not a certificate").is_err());
    }
}
