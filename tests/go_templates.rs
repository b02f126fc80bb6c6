//! Differential test of courier's Go templates: every template of
//! `tests/go_templates/corpus.yaml` is rendered by courier and by Go's own text/template
//! with the sprig release ESO requires (`testenv/eso-template`, built and cached by
//! `testenv/eso-template.sh`). Both must print the same bytes, or both must fail.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use courier::core::gotemplate;
use courier::core::secret_bytes::SecretBytes;

#[derive(serde::Deserialize)]
struct Corpus {
    data: BTreeMap<String, String>,
    templates: BTreeMap<String, String>,
    /// Template name to why courier knowingly differs.
    known_differences: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Debug)]
struct Answer {
    output: Option<String>,
    #[allow(dead_code, reason = "shown when a template differs")]
    error: Option<String>,
}

fn oracle() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testenv/eso-template.sh");
    let built = Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        built.status.success(),
        "testenv/eso-template.sh failed; the differential test needs Go (see README, Testing)"
    );
    String::from_utf8(built.stdout).unwrap().trim().to_owned()
}

/// Go's answers for every template, in one run of the oracle.
fn go_answers(corpus: &Corpus) -> Vec<Answer> {
    let mut child = Command::new(oracle())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for template in corpus.templates.values() {
        let request = serde_json::json!({"template": template, "data": corpus.data});
        input.push_str(&request.to_string());
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the oracle failed");
    let answers: Vec<Answer> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(answers.len(), corpus.templates.len());
    answers
}

#[test]
fn courier_renders_every_corpus_template_as_go_and_sprig_do() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/go_templates/corpus.yaml"
    ))
    .unwrap();
    let corpus: Corpus = serde_saphyr::from_str(&text).unwrap();
    assert!(corpus.templates.len() >= 150, "the corpus shrank");
    let values: BTreeMap<String, SecretBytes> = corpus
        .data
        .iter()
        .map(|(k, v)| (k.clone(), SecretBytes::from(v.as_str())))
        .collect();
    let mut mismatches = Vec::new();
    let mut fixed = Vec::new();
    let (mut outputs, mut errors) = (0, 0);
    for ((name, template), go) in corpus.templates.iter().zip(go_answers(&corpus)) {
        let ours = gotemplate::render("t", template, &values);
        let same = match (&ours, &go.output) {
            (Ok(ours), Some(theirs)) if ours == theirs => {
                outputs += 1;
                true
            }
            (Err(_), None) => {
                errors += 1;
                true
            }
            _ => false,
        };
        match (same, corpus.known_differences.contains_key(name)) {
            (true, true) => fixed.push(name.clone()),
            (false, false) => mismatches.push(format!(
                "{name}: {template}\n  courier: {ours:?}\n  go:      {go:?}"
            )),
            _ => {}
        }
    }
    eprintln!(
        "{outputs} identical outputs, {errors} errors on both sides, {} known differences",
        corpus.known_differences.len()
    );
    assert!(
        fixed.is_empty(),
        "known differences that no longer differ (take them off the list): {fixed:?}"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} templates differ from Go:\n{}",
        mismatches.len(),
        corpus.templates.len(),
        mismatches.join("\n")
    );
}
