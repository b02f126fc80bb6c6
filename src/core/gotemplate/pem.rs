//! PEM as Go's `encoding/pem` reads and writes it, since ESO's PEM functions
//! (`filterPEM`, `pkcs12cert`, ...) go through it: a block is found after any junk, a
//! bad block is skipped, headers are kept, and the body is written 64 characters a
//! line.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The type, as in `-----BEGIN <type>-----`.
    pub kind: String,
    /// `Key: value` header lines.
    pub headers: BTreeMap<String, String>,
    /// The decoded body.
    pub bytes: Vec<u8>,
}

/// Go's `getLine`: the line without its end (and trailing blanks), what follows, and
/// how many bytes were consumed.
fn line(data: &[u8]) -> (&[u8], &[u8], usize) {
    let (mut end, next) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (i, i + 1),
        None => (data.len(), data.len()),
    };
    if end > 0 && next > end && data[end - 1] == b'\r' {
        end -= 1;
    }
    let mut text = &data[..end];
    while let [rest @ .., b' ' | b'\t'] = text {
        text = rest;
    }
    (text, &data[next..], next)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// Go's `pem.Decode` (Go 1.25.2 on, as ESO v1.3.2 is built): the first END line, the
/// last BEGIN line before it (at the start of a line), and the block between; or `None`
/// and `data` unchanged.
pub fn decode(data: &[u8]) -> (Option<Block>, &[u8]) {
    const BEGIN: &[u8] = b"\n-----BEGIN ";
    const END: &[u8] = b"\n-----END ";
    const DASHES: &[u8] = b"-----";
    let mut rest = data;
    let mut end_trailer_index: isize = 0;
    loop {
        if end_trailer_index < 0 || end_trailer_index as usize > rest.len() {
            return (None, data);
        }
        rest = &rest[end_trailer_index as usize..];
        let Some(end) = find(rest, END) else {
            return (None, data);
        };
        let mut end_index = end as isize;
        end_trailer_index = end_index + END.len() as isize;
        let begin = match rfind(&rest[..end], &BEGIN[1..]) {
            Some(b) if b == 0 || rest[b - 1] == b'\n' => b,
            _ => continue,
        };
        let skip = (begin + BEGIN.len() - 1) as isize;
        rest = &rest[skip as usize..];
        end_index -= skip;
        end_trailer_index -= skip;
        let (type_line, after_type, consumed) = line(rest);
        rest = after_type;
        end_index -= consumed as isize;
        end_trailer_index -= consumed as isize;
        let Some(kind) = type_line.strip_suffix(DASHES) else {
            continue;
        };
        let mut headers = BTreeMap::new();
        loop {
            if rest.is_empty() {
                return (None, data);
            }
            let (header, next, consumed) = line(rest);
            let Some(colon) = header.iter().position(|&b| b == b':') else {
                break;
            };
            headers.insert(
                String::from_utf8_lossy(header[..colon].trim_ascii()).into_owned(),
                String::from_utf8_lossy(header[colon + 1..].trim_ascii()).into_owned(),
            );
            rest = next;
            end_index -= consumed as isize;
            end_trailer_index -= consumed as isize;
        }
        if !headers.is_empty() && end_index < 0 {
            continue;
        }
        if end_trailer_index < 0 || end_trailer_index as usize > rest.len() {
            continue;
        }
        let trailer = &rest[end_trailer_index as usize..];
        let trailer_len = kind.len() + DASHES.len();
        if trailer.len() < trailer_len {
            continue;
        }
        let (end_line, after_end) = trailer.split_at(trailer_len);
        if !end_line.starts_with(kind) || !end_line.ends_with(DASHES) {
            continue;
        }
        if !line(after_end).0.is_empty() {
            continue;
        }
        let mut bytes = Vec::new();
        if end_index > 0 {
            let body: Vec<u8> = rest[..end_index as usize]
                .iter()
                .copied()
                .filter(|&b| b != b' ' && b != b'\t')
                .collect();
            match super::sprig::go_base64_decode(&body) {
                Ok(decoded) => bytes = decoded,
                Err(_) => continue,
            }
        }
        let from = (end_index + END.len() as isize - 1).max(0) as usize;
        let (_, after, _) = line(&rest[from.min(rest.len())..]);
        let block = Block {
            kind: String::from_utf8_lossy(kind).into_owned(),
            headers,
            bytes,
        };
        return (Some(block), after);
    }
}

/// Go's `pem.Encode`. Go refuses a header key with a colon; so does this.
pub fn encode(block: &Block) -> Result<String, String> {
    let mut out = format!("-----BEGIN {}-----\n", block.kind);
    if !block.headers.is_empty() {
        if block.headers.keys().any(|k| k.contains(':')) {
            return Err("pem: cannot encode a header key that contains a colon".into());
        }
        // Proc-Type first, the rest sorted.
        if let Some(value) = block.headers.get("Proc-Type") {
            out.push_str(&format!("Proc-Type: {value}\n"));
        }
        for (key, value) in block.headers.iter().filter(|(k, _)| *k != "Proc-Type") {
            out.push_str(&format!("{key}: {value}\n"));
        }
        out.push('\n');
    }
    let body = STANDARD.encode(&block.bytes);
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {}-----\n", block.kind));
    Ok(out)
}

/// A block of `kind` around `bytes`, without headers.
pub fn encode_der(bytes: &[u8], kind: &str) -> String {
    encode(&Block {
        kind: kind.to_owned(),
        headers: BTreeMap::new(),
        bytes: bytes.to_vec(),
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_found_after_junk_and_written_back_as_go_does() {
        let input = b"junk\n-----BEGIN A-----\nAAEC\n-----END A-----\ntail";
        let (block, rest) = decode(input);
        let block = block.unwrap();
        assert_eq!(
            (block.kind.as_str(), block.bytes.as_slice()),
            ("A", &[0, 1, 2][..])
        );
        assert_eq!(rest, b"tail");
        assert_eq!(
            encode(&block).unwrap(),
            "-----BEGIN A-----\nAAEC\n-----END A-----\n"
        );
        assert_eq!(decode(b"-----BEGIN A-----\nAA\n-----END A-----").0, None);
    }
}
