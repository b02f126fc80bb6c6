//! Replays every saved fuzz input (`fuzz/regressions/`) and the hostile corpus through the
//! fuzz targets' checks, so what once crashed stays fixed.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn saved_inputs_and_the_corpus_pass_every_fuzz_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = files(&root.join("tests/corpus"));
    assert!(!corpus.is_empty());
    let mut replayed = 0;
    for (target, check) in [
        ("load", checks::load as fn(&[u8])),
        ("selector", checks::selector),
        ("template", checks::template),
    ] {
        let saved = files(&root.join("fuzz/regressions").join(target));
        for path in saved.iter().chain(if target == "load" {
            corpus.iter()
        } else {
            [].iter()
        }) {
            check(&std::fs::read(path).unwrap());
            replayed += 1;
        }
    }
    for selector in ["a=b", "a in (x,y),!b", "a notin (z), c", "x==y"] {
        checks::selector(selector.as_bytes());
    }
    for template in [
        "{{ username }}",
        "{{ data['tls.crt'] | b64dec }}",
        "{{ (config | fromjson).a.b[1] }}",
        "{% for x in range(3) %}{{ x }}{% endfor %}",
    ] {
        checks::template(template.as_bytes());
    }
    eprintln!("replayed {replayed} saved inputs");
}
