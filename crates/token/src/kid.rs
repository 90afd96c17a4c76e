//! libtrust-compatible key ids: the `kid` format Docker Distribution and GitLab expect.

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};

/// libtrust key id: SHA-256 of the DER SubjectPublicKeyInfo, first 30 bytes (240 bits),
/// base32 (RFC 4648, no padding, uppercase), split into 12 groups of 4 chars joined with ':'.
///
/// 30 bytes is a multiple of 5, so the base32 text is exactly 48 characters and never
/// needs padding.
pub fn libtrust_kid(spki_der: &[u8]) -> String {
    let digest = Sha256::digest(spki_der);
    let encoded = BASE32_NOPAD.encode(&digest[..30]);
    let mut out = String::with_capacity(59);
    for (i, ch) in encoded.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(':');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_twelve_groups_of_four() {
        let kid = libtrust_kid(b"anything");
        let groups: Vec<&str> = kid.split(':').collect();
        assert_eq!(groups.len(), 12);
        for g in groups {
            assert_eq!(g.len(), 4);
            assert!(
                g.chars()
                    .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
            );
        }
    }

    #[test]
    fn deterministic_and_input_sensitive() {
        assert_eq!(libtrust_kid(b"a"), libtrust_kid(b"a"));
        assert_ne!(libtrust_kid(b"a"), libtrust_kid(b"b"));
    }
}
