//! The few DER shapes ESO's key functions write, laid out as Go's `crypto/x509` lays
//! them out: PKIX public keys and PKCS#8 private keys.

/// A TLV with a definite, minimal length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// SEQUENCE of already encoded parts.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub fn unsigned(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|&&b| b == 0).count();
    let trimmed = &magnitude[skip..];
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(0x02, &content)
}

/// A small INTEGER.
pub fn small(value: u8) -> Vec<u8> {
    unsigned(&[value])
}

pub fn octet_string(content: &[u8]) -> Vec<u8> {
    tlv(0x04, content)
}

/// BIT STRING without unused bits.
pub fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut padded = Vec::with_capacity(content.len() + 1);
    padded.push(0);
    padded.extend_from_slice(content);
    tlv(0x03, &padded)
}

pub fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

/// An explicit, constructed context tag `[n]`.
pub fn explicit(n: u8, content: &[u8]) -> Vec<u8> {
    tlv(0xA0 | n, content)
}

/// An OBJECT IDENTIFIER from its encoded body.
pub fn oid(body: &[u8]) -> Vec<u8> {
    tlv(0x06, body)
}

/// Encoded OID bodies.
pub mod oids {
    /// rsaEncryption, 1.2.840.113549.1.1.1
    pub const RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
    /// id-ecPublicKey, 1.2.840.10045.2.1
    pub const EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    /// prime256v1, 1.2.840.10045.3.1.7
    pub const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    /// secp384r1, 1.3.132.0.34
    pub const P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
    /// secp521r1, 1.3.132.0.35
    pub const P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];
    /// Ed25519, 1.3.101.112
    pub const ED25519: &[u8] = &[0x2B, 0x65, 0x70];
    /// X25519, 1.3.101.110
    pub const X25519: &[u8] = &[0x2B, 0x65, 0x6E];
}

/// The algorithm of a key: an OID and its parameters (RSA: NULL; EC: the curve; the
/// Edwards and Montgomery curves: none).
pub fn algorithm(key_oid: &[u8], parameters: Option<Vec<u8>>) -> Vec<u8> {
    match parameters {
        Some(p) => sequence(&[&oid(key_oid), &p]),
        None => sequence(&[&oid(key_oid)]),
    }
}

/// SubjectPublicKeyInfo.
pub fn public_key_info(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    sequence(&[algorithm, &bit_string(key)])
}

/// PKCS#8 PrivateKeyInfo, version 0, no attributes.
pub fn private_key_info(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    sequence(&[&small(0), algorithm, &octet_string(key)])
}

/// One TLV of `input`: its tag, its content and what follows. Definite lengths only.
pub fn read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The content of a TLV that must have `tag`, and what follows.
pub fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    read(input).and_then(|(t, content, rest)| (t == tag).then_some((content, rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_lengths_are_minimal() {
        assert_eq!(unsigned(&[0, 0, 0x7F]), [0x02, 0x01, 0x7F]);
        assert_eq!(unsigned(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned(&[]), [0x02, 0x01, 0x00]);
        assert_eq!(&octet_string(&[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(&octet_string(&[0; 300])[..4], [0x04, 0x82, 0x01, 0x2C]);
    }
}
