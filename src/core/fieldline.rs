//! The line of the field an error names. The loader keeps each document's first line;
//! when an error names a field (`template.data[conf]`, `data[0]`,
//! `dataFrom[1].extract`), this finds that field's own line in the document, so
//! `file:line` points at the typo rather than at `apiVersion`. Run only when an error
//! is printed, on the file's text: loading pays nothing for it.

use granit_parser::{Event, Parser};

/// Path segments of a field as errors write it: `template.data[conf]` is
/// `template`, `data`, `conf`; a note after a space (`data[0] (secretKey "k")`) is dropped.
fn segments(field: &str) -> Vec<String> {
    let field = field.split(" (").next().unwrap_or(field);
    let mut out = Vec::new();
    for part in field.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            if open > 0 {
                out.push(rest[..open].to_owned());
            }
            rest = &rest[open..];
            while let Some(inner) = rest.strip_prefix('[') {
                let Some(close) = inner.find(']') else { break };
                out.push(inner[..close].to_owned());
                rest = &inner[close + 1..];
            }
        } else if !rest.is_empty() {
            out.push(rest.to_owned());
        }
    }
    out
}

/// Every mapping key and sequence item of the document starting at `document_line`,
/// with its path and line.
fn index(text: &str, document_line: usize) -> Vec<(Vec<String>, usize)> {
    enum Frame {
        Map { key: Option<String> },
        Seq { next: usize },
    }
    let mut found = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut in_document = false;
    let mut started = false;
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let line = span.start.line();
        match &event {
            Event::DocumentStart(..) => {
                started = false;
                continue;
            }
            Event::DocumentEnd => {
                if in_document {
                    break;
                }
                continue;
            }
            Event::StreamStart | Event::StreamEnd => continue,
            _ => {}
        }
        if !started {
            started = true;
            in_document = line == document_line;
        }
        if !in_document {
            continue;
        }
        // A node in a sequence gets its index; in a mapping, a key scalar names the next
        // node and a value node takes that name.
        let is_key = matches!(stack.last(), Some(Frame::Map { key: None }));
        if is_key {
            if let Event::Scalar(value, ..) = &event {
                let key = value.to_string();
                let mut at = path.clone();
                at.push(key.clone());
                found.push((at, line));
                if let Some(Frame::Map { key: slot }) = stack.last_mut() {
                    *slot = Some(key);
                }
            }
            if matches!(event, Event::MappingEnd) {
                stack.pop();
                path.pop();
            }
            continue;
        }
        let name = match stack.last_mut() {
            Some(Frame::Map { key }) => key.take(),
            Some(Frame::Seq { next }) => {
                let index = *next;
                if !matches!(event, Event::SequenceEnd) {
                    *next += 1;
                }
                Some(index.to_string())
            }
            None => None,
        };
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if let Some(name) = name {
                    path.push(name);
                    if matches!(stack.last(), Some(Frame::Seq { .. })) {
                        found.push((path.clone(), line));
                    }
                } else {
                    path.push(String::new());
                }
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map { key: None }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
                path.pop();
            }
            _ => {
                if let (Some(name), Some(Frame::Seq { .. })) = (name, stack.last()) {
                    let mut at = path.clone();
                    at.push(name);
                    found.push((at, line));
                }
            }
        }
    }
    found
}

/// The line of `field` in the document that starts at `document_line`: the deepest
/// node whose path ends with the field's segments (or with the longest prefix of them
/// that exists). `None` when nothing matches.
pub fn field_line(text: &str, document_line: usize, field: &str) -> Option<usize> {
    let wanted = segments(field);
    if wanted.is_empty() {
        return None;
    }
    let nodes = index(text, document_line);
    for len in (1..=wanted.len()).rev() {
        let suffix = &wanted[..len];
        let hit = nodes
            .iter()
            .filter(|(path, _)| path.ends_with(suffix))
            .map(|(_, line)| *line)
            .next();
        if hit.is_some() {
            return hit;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: es
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: stor}
  target:
    template:
      data:
        conf: '{{ .usernme }}'
  data:
  - secretKey: user
    remoteRef:
      key: src
      property: usrname
  dataFrom:
  - extract: {key: src}
";

    #[test]
    fn fields_resolve_to_their_own_lines() {
        assert_eq!(segments("data[0] (secretKey \"user\")"), ["data", "0"]);
        assert_eq!(
            segments("template.data[conf]"),
            ["template", "data", "conf"]
        );
        assert_eq!(field_line(DOC, 5, "template.data[conf]"), Some(14));
        assert_eq!(field_line(DOC, 5, "secretStoreRef"), Some(10));
        assert_eq!(field_line(DOC, 5, "data[0] (secretKey \"user\")"), Some(16));
        assert_eq!(field_line(DOC, 5, "dataFrom[0].extract"), Some(21));
        assert_eq!(field_line(DOC, 5, "data[0].remoteRef.property"), Some(19));
        // Not in this document: the Namespace has no such field.
        assert_eq!(field_line(DOC, 1, "template.data[conf]"), None);
    }
}
