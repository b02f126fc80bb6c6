//! The shape ARCHITECTURE.md promises, checked on every `cargo test`:
//! - no import cycle between modules (files), `mod.rs` re-exports included;
//! - dependencies point one way: commands -> live -> providers -> core;
//! - `core` is pure: it names no async runtime, Kubernetes client or HTTP client crate.
//!
//! The graph is read from the source: every `crate::`/`courier::`/`super::`/`self::` path
//! outside comments and test modules is an edge to the longest module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates that would make `core` impure.
const IMPURE_CRATES: [&str; 9] = [
    "tokio",
    "kube",
    "k8s_openapi",
    "reqwest",
    "hyper",
    "axum",
    "tower",
    "prometheus_client",
    "indicatif",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Core,
    Providers,
    Live,
    Commands,
}

fn layer(module: &str) -> Layer {
    match module.split("::").next().unwrap_or_default() {
        "core" => Layer::Core,
        "providers" => Layer::Providers,
        "live" => Layer::Live,
        _ => Layer::Commands,
    }
}

/// `src/core/plan/mod.rs` -> `core::plan`; the binary's files (`main.rs`, `cli.rs`,
/// `commands/`) are under `bin::`, since they reach the library as `courier::`.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.first().map(String::as_str) {
        Some("lib") => String::new(),
        Some("main") => "bin".to_owned(),
        Some("cli" | "commands") => format!("bin::{}", parts.join("::")),
        _ => parts.join("::"),
    }
}

/// The source without comments and without `#[cfg(test)]` modules (their `super` is the
/// file itself, and tests may reach anywhere).
fn code_of(source: &str) -> String {
    let without_tests = match source.find("#[cfg(test)]") {
        Some(at) => &source[..at],
        None => source,
    };
    without_tests
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a file names, made absolute (`core::plan::types::Failure`), with groups
/// (`crate::core::{load, model}`) expanded. `modules` tells a child module's name from
/// any other identifier.
fn paths_in(code: &str, module: &str, modules: &BTreeSet<String>) -> Vec<String> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut at = 0;
    while at < bytes.len() {
        if !is_ident(bytes[at]) || (at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b':')) {
            at += 1;
            continue;
        }
        let end = (at..bytes.len())
            .find(|&i| !is_ident(bytes[i]))
            .unwrap_or(bytes.len());
        let root = &code[at..end];
        // `pub(crate)`, `pub(super)`: visibility, not a path.
        if !code[end..].starts_with("::") {
            at = end;
            continue;
        }
        let base: Option<Vec<&str>> = match root {
            "crate" => Some(Vec::new()),
            "courier" if module.starts_with("bin") => Some(Vec::new()),
            "self" => Some(module.split("::").filter(|s| !s.is_empty()).collect()),
            "super" => {
                let mut parts: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
                parts.pop();
                Some(parts)
            }
            // `use types::Plan` in `plan/mod.rs`: a path through a child module.
            child => {
                let mut parts: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
                parts.push(child);
                modules.contains(&parts.join("::")).then_some(parts)
            }
        };
        let Some(mut path) = base else {
            at = end;
            continue;
        };
        let mut cursor = end;
        // Follow `::segment` (and further `super`s) until the path ends or opens a group.
        while code[cursor..].starts_with("::") {
            let start = cursor + 2;
            if code[start..].starts_with('{') {
                let close = code[start..].find('}').map_or(code.len(), |c| start + c);
                for item in code[start + 1..close].split(',') {
                    let first = item.trim().split("::").next().unwrap_or_default().trim();
                    if !first.is_empty() && first != "self" && first != "*" {
                        found.push([path.join("::"), first.to_owned()].join("::"));
                    }
                }
                path.clear();
                cursor = close;
                break;
            }
            let stop = (start..bytes.len())
                .find(|&i| !is_ident(bytes[i]))
                .unwrap_or(bytes.len());
            if stop == start {
                break;
            }
            match &code[start..stop] {
                "super" => {
                    path.pop();
                }
                segment => path.push(segment),
            }
            cursor = stop;
        }
        if !path.is_empty() {
            found.push(path.join("::"));
        }
        at = cursor.max(end);
    }
    found
}

/// The longest known module a path names.
fn resolve<'m>(path: &str, modules: &'m BTreeSet<String>) -> Option<&'m String> {
    let mut parts: Vec<&str> = path.split("::").collect();
    while !parts.is_empty() {
        if let Some(module) = modules.get(&parts.join("::")) {
            return Some(module);
        }
        parts.pop();
    }
    None
}

struct Crate {
    /// module -> modules it uses.
    edges: BTreeMap<String, BTreeSet<String>>,
    /// module -> its code, for the purity check.
    code: BTreeMap<String, String>,
}

fn read_crate(src: &Path) -> Crate {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut code = BTreeMap::new();
    for file in &files {
        let module = module_of(file.strip_prefix(src).expect("under src"));
        let source = std::fs::read_to_string(file).expect("readable source");
        code.insert(module, code_of(&source));
    }
    let modules: BTreeSet<String> = code.keys().filter(|m| !m.is_empty()).cloned().collect();
    let mut edges = BTreeMap::new();
    for (module, text) in &code {
        let targets: BTreeSet<String> = paths_in(text, module, &modules)
            .iter()
            .filter_map(|path| resolve(path, &modules))
            .filter(|target| *target != module)
            .cloned()
            .collect();
        edges.insert(module.clone(), targets);
    }
    Crate { edges, code }
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        let next = state.index.len();
        state.index.insert(node, next);
        state.low.insert(node, next);
        state.stack.push(node);
        state.on_stack.insert(node);
        if let Some(targets) = state.edges.get(node) {
            for target in targets {
                let target = target.as_str();
                if !state.index.contains_key(target) {
                    visit(state, target);
                    let low = state.low[node].min(state.low[target]);
                    state.low.insert(node, low);
                } else if state.on_stack.contains(target) {
                    let low = state.low[node].min(state.index[target]);
                    state.low.insert(node, low);
                }
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.to_owned());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_imports_another_in_a_circle() {
    let krate = read_crate(&src_dir());
    assert!(
        krate.edges.len() > 30,
        "read only {} modules; is the walk broken?",
        krate.edges.len()
    );
    let found = cycles(&krate.edges);
    assert!(
        found.is_empty(),
        "import cycles between modules: {found:#?}"
    );
}

#[test]
fn dependencies_point_from_commands_to_live_to_providers_to_core() {
    let krate = read_crate(&src_dir());
    let mut wrong = Vec::new();
    for (module, targets) in &krate.edges {
        if module.is_empty() {
            continue;
        }
        for target in targets {
            if layer(target) > layer(module) {
                wrong.push(format!("{module} -> {target}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layering: {wrong:#?}"
    );
}

#[test]
fn core_names_no_runtime_cluster_or_http_crate() {
    let krate = read_crate(&src_dir());
    let mut impure = Vec::new();
    for (module, code) in krate.code.iter().filter(|(m, _)| layer(m) == Layer::Core) {
        if module.is_empty() {
            continue;
        }
        for name in IMPURE_CRATES {
            let pattern = format!("{name}::");
            let uses = code.match_indices(&pattern).any(|(at, _)| {
                let before = code[..at].chars().next_back();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            });
            if uses {
                impure.push(format!("{module} uses {name}"));
            }
        }
    }
    assert!(impure.is_empty(), "core must stay pure: {impure:#?}");
}

#[test]
fn the_checker_finds_a_cycle_and_resolves_relative_paths() {
    // A cycle through a parent's re-export, as `plan` <-> `source` once was.
    let modules: BTreeSet<String> = [
        "core",
        "core::plan",
        "core::plan::types",
        "core::source",
        "core::world",
    ]
    .map(String::from)
    .into();
    let edge = |from: &str, code: &str| {
        let targets: BTreeSet<String> = paths_in(code, from, &modules)
            .iter()
            .filter_map(|p| resolve(p, &modules))
            .filter(|t| *t != from)
            .cloned()
            .collect();
        (from.to_owned(), targets)
    };
    let edges: BTreeMap<String, BTreeSet<String>> = [
        edge(
            "core::plan",
            "pub use types::Plan; use crate::core::source::fetch;",
        ),
        edge("core::source", "use crate::core::{plan::Plan, world};"),
        edge(
            "core::plan::types",
            "use super::super::world::X; pub(super) fn f() {}",
        ),
    ]
    .into();
    assert_eq!(
        edges["core::plan::types"],
        BTreeSet::from(["core::world".to_owned()])
    );
    assert_eq!(
        edges["core::source"],
        BTreeSet::from(["core::plan".to_owned(), "core::world".to_owned()])
    );
    assert_eq!(
        cycles(&edges),
        vec![vec!["core::plan".to_owned(), "core::source".to_owned()]]
    );
    assert_eq!(module_of(Path::new("core/plan/mod.rs")), "core::plan");
    assert_eq!(
        module_of(Path::new("commands/render.rs")),
        "bin::commands::render"
    );
    assert_eq!(
        code_of("use a; // crate::x\n#[cfg(test)]\nuse crate::y;"),
        "use a; "
    );
}
