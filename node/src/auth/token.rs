//! Bearer tokens: the cluster keeps only their SHA-256 digests (in the configuration), so a
//! leaked configuration file or log does not leak a usable token. Tokens are random strings
//! of 256 bits (`cairn token new`), so a fast hash is enough: there is no dictionary to guess.

use std::collections::HashMap;

/// Where a client puts its token: `authorization: Bearer <token>`.
pub const HEADER: &str = "authorization";

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The digest of `token`.
pub fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Lower-case hex of a digest (how the configuration writes it).
pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 hex digits.
///
/// # Errors
/// Anything else, with what was wrong.
pub fn parse_hex(text: &str) -> Result<Digest, String> {
    let text = text.trim();
    if text.len() != 64 {
        return Err(format!("a SHA-256 digest is 64 hex digits, this has {}", text.len()));
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| format!("{s:?} is not a hex byte"))?;
    }
    Ok(out)
}

/// The known tokens: digest → principal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    by_digest: HashMap<Digest, String>,
}

impl Tokens {
    /// # Errors
    /// The same digest given to two principals.
    pub fn new(entries: impl IntoIterator<Item = (String, Digest)>) -> Result<Tokens, String> {
        let mut by_digest = HashMap::new();
        for (principal, d) in entries {
            if let Some(other) = by_digest.insert(d, principal.clone()) {
                if other != principal {
                    return Err(format!("one token digest is given to both {other:?} and {principal:?}"));
                }
            }
        }
        Ok(Tokens { by_digest })
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The principal `token` belongs to.
    pub fn principal(&self, token: &str) -> Option<&str> {
        self.by_digest.get(&digest(token)).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex_and_find_their_principal() {
        let d = digest("s3cret");
        assert_eq!(parse_hex(&hex(&d)), Ok(d));
        // The well-known SHA-256 of "abc".
        assert_eq!(hex(&digest("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let tokens = Tokens::new([("alice".to_string(), d)]).expect("one entry");
        assert_eq!(tokens.principal("s3cret"), Some("alice"));
        assert_eq!(tokens.principal("s3cret "), None);
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn one_digest_cannot_name_two_principals() {
        let d = digest("t");
        assert!(Tokens::new([("a".to_string(), d), ("b".to_string(), d)]).is_err());
    }
}
