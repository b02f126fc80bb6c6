//! Go strings are bytes; gotmpl's strings are UTF-8. A secret value that is not UTF-8 (a
//! PKCS#12 keystore, an RSA ciphertext, the output of `b64dec`) must still pass through a
//! template byte for byte, as it does in ESO. So each byte of an invalid UTF-8 sequence
//! travels as one character of the private-use range U+10FF00..=U+10FFFF (the byte is the
//! low eight bits), the way Python's `surrogateescape` works; functions that look at bytes
//! (`b64enc`, the digests, PKCS#12, `rsaDecrypt`) and the final output turn those
//! characters back into their bytes.
//!
//! Valid UTF-8 that already holds characters of that range would come out as raw bytes:
//! plane-16 private-use characters do not occur in credentials, and the README lists it.

use std::borrow::Cow;

/// The first character of the range that carries raw bytes.
const BASE: u32 = 0x10FF00;

/// The text a template sees for `bytes`.
pub fn from_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for &byte in chunk.invalid() {
            out.push(char::from_u32(BASE + u32::from(byte)).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
    }
    Cow::Owned(out)
}

/// The bytes `text` stands for.
pub fn to_bytes(text: &str) -> Cow<'_, [u8]> {
    // U+10FF00..=U+10FFFF encode as F4 8F BC..BF xx: no F4 byte, nothing carried.
    if !text.as_bytes().contains(&0xF4) {
        return Cow::Borrowed(text.as_bytes());
    }
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match u32::from(c).checked_sub(BASE) {
            Some(byte) if byte <= 0xFF => out.push(byte as u8),
            _ => {
                let mut buffer = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    Cow::Owned(out)
}

/// `text` with each carried byte as U+FFFD, one per byte, as Go writes invalid UTF-8
/// when it maps or encodes a string (`strings.ToLower`, `json.Marshal`).
pub fn replaced(text: &str) -> Cow<'_, str> {
    let bytes = to_bytes(text);
    if std::str::from_utf8(&bytes).is_ok() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for _ in chunk.invalid() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_passes_unchanged_and_other_bytes_round_trip() {
        assert!(matches!(
            from_bytes("żółw".as_bytes()),
            Cow::Borrowed("żółw")
        ));
        let raw = [0x30, 0x82, 0xFF, b'a', 0xC3, 0x28, 0xF4, 0x8F];
        let text = from_bytes(&raw);
        assert_eq!(text.chars().count(), 8);
        assert_eq!(to_bytes(&text).as_ref(), raw);
        let every_byte: Vec<u8> = (0..=255).collect();
        assert_eq!(to_bytes(&from_bytes(&every_byte)).as_ref(), every_byte);
    }
}
