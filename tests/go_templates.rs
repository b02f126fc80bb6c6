//! Differential test of courier's Go templates: every template of
//! `tests/go_templates/corpus.yaml` is rendered by courier and by External Secrets
//! Operator's own template engine (`Execute` of ESO v2.9.0's `runtime/template/v2` package, in
//! `testenv/eso-template`, built and cached by `testenv/eso-template.sh`). Both must
//! print the same bytes, or both must fail.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use courier::core::gotemplate;
use courier::core::secret_bytes::SecretBytes;

#[derive(serde::Deserialize)]
struct Corpus {
    data: BTreeMap<String, String>,
    /// Values given as base64: bytes that are not UTF-8, or PEM and PKCS#12 fixtures.
    #[serde(default)]
    data_b64: BTreeMap<String, String>,
    templates: BTreeMap<String, String>,
    /// Template name to why courier knowingly differs.
    known_differences: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Debug)]
struct Answer {
    #[allow(dead_code, reason = "shown when a template differs")]
    output: Option<String>,
    /// The exact bytes of the output.
    output_b64: Option<String>,
    #[allow(dead_code, reason = "shown when a template differs")]
    error: Option<String>,
}

impl Answer {
    fn bytes(&self) -> Option<Vec<u8>> {
        self.output_b64
            .as_ref()
            .map(|b64| STANDARD.decode(b64).expect("the oracle writes base64"))
    }
}

impl Corpus {
    fn values(&self) -> BTreeMap<String, SecretBytes> {
        let mut values: BTreeMap<String, SecretBytes> = self
            .data
            .iter()
            .map(|(k, v)| (k.clone(), SecretBytes::from(v.as_str())))
            .collect();
        for (k, v) in &self.data_b64 {
            values.insert(k.clone(), SecretBytes::from(STANDARD.decode(v).unwrap()));
        }
        values
    }
}

/// The corpus, with the key and certificate fixtures (`fixtures.yaml`, written by
/// `make-fixtures.sh`) as more base64 values.
fn load_corpus() -> Corpus {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/go_templates");
    let text = std::fs::read_to_string(format!("{dir}/corpus.yaml")).unwrap();
    let mut corpus: Corpus = serde_saphyr::from_str(&text).unwrap();
    let fixtures = std::fs::read_to_string(format!("{dir}/fixtures.yaml")).unwrap();
    let fixtures: BTreeMap<String, String> = serde_saphyr::from_str(&fixtures).unwrap();
    corpus.data_b64.extend(fixtures);
    corpus
}

/// Whether courier's result is ESO's: the same bytes, or an error on both sides.
fn same(ours: &Result<String, gotemplate::GoTemplateError>, go: &Answer) -> bool {
    match (ours, go.bytes()) {
        (Ok(ours), Some(theirs)) => *gotemplate::binary::to_bytes(ours) == theirs,
        (Err(_), None) => true,
        _ => false,
    }
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
        let request = serde_json::json!({
            "template": template,
            "data": corpus.data,
            "data_b64": corpus.data_b64,
        });
        input.push_str(&request.to_string());
        input.push('\n');
    }
    // Written from another thread: the oracle answers while it reads, and both pipes
    // would fill up.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
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
fn courier_renders_every_corpus_template_as_eso_does() {
    let corpus = load_corpus();
    assert!(corpus.templates.len() >= 150, "the corpus shrank");
    let values = corpus.values();
    let mut mismatches = Vec::new();
    let mut fixed = Vec::new();
    let (mut outputs, mut errors) = (0, 0);
    for ((name, template), go) in corpus.templates.iter().zip(go_answers(&corpus)) {
        let ours = gotemplate::render("t", template, &values);
        let same = same(&ours, &go);
        if same {
            if ours.is_ok() {
                outputs += 1;
            } else {
                errors += 1;
            }
        }
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

/// A small deterministic generator (xorshift), so the generated corpus is the same on
/// every run and a failure can be reproduced.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    /// A string-valued expression, nested at most `depth` deep.
    fn string(&mut self, depth: u32) -> String {
        const LEAVES: [&str; 12] = [
            ".username",
            ".password",
            ".num",
            ".unicode",
            ".empty",
            ".multiline",
            ".json",
            ".b64",
            "\"a-b_c\"",
            "\"Hello World\"",
            "\" x \"",
            "\"<&>\"",
        ];
        if depth == 0 || self.next().is_multiple_of(4) {
            return self.pick(&LEAVES).to_owned();
        }
        let a = self.string(depth - 1);
        let n = self.next() % 5;
        match self.next() % 37 {
            0 => format!("(upper {a})"),
            1 => format!("(lower {a})"),
            2 => format!("(title {a})"),
            3 => format!("(trim {a})"),
            4 => format!("(b64enc {a})"),
            5 => format!("(b64dec {a})"),
            6 => format!("(quote {a})"),
            7 => format!("(squote {a})"),
            8 => format!("(toJson {a})"),
            9 => format!("(sha256sum {a})"),
            10 => format!("(replace \"o\" \"0\" {a})"),
            11 => format!("(trunc {n} {a})"),
            12 => format!("(repeat {n} {a})"),
            13 => format!("(default \"dflt\" {a})"),
            14 => format!("(nospace {a})"),
            15 => format!("(indent {n} {a})"),
            16 => format!("(cat {a} {})", self.string(depth - 1)),
            17 => format!("(join \",\" (list {a} {}))", self.string(depth - 1)),
            18 => format!("(toString {a})"),
            19 => format!("(trimPrefix \"b\" {a})"),
            20 => format!("(trimSuffix \"t\" {a})"),
            21 => format!("(coalesce {a} {})", self.string(depth - 1)),
            22 => format!(
                "(ternary {a} {} (contains \"o\" {a}))",
                self.string(depth - 1)
            ),
            23 => format!("(last (splitList \",\" {a}))"),
            24 => format!("(get (dict \"k\" {a}) \"k\")"),
            25 => format!("(regexFind \"[a-z]+\" {a})"),
            26 => format!("(printf \"%s|%v|%x\" {a} {n} {a})"),
            27 => format!("(toString (add (atoi {a}) {n}))"),
            28 => format!("(toString (len {a}))"),
            29 => format!(
                "(toYaml (dict \"k\" {a} {} (list {a})))",
                self.string(depth - 1)
            ),
            30 => format!("(toYaml (fromYaml {a}))"),
            31 => format!("(filterPEM \"X\" {a})"),
            32 => format!("(camelcase {a})"),
            33 => format!("(snakecase {a})"),
            34 => format!("(kebabcase (swapcase {a}))"),
            35 => format!("(wrap {n} {a})"),
            _ => format!("(nindent {n} {a})"),
        }
    }

    fn template(&mut self) -> String {
        let e = self.string(3);
        match self.next() % 5 {
            0 => format!("{{{{ {e} }}}}"),
            1 => format!("x{{{{- {e} -}}}} y"),
            2 => format!(
                "{{{{ if {e} }}}}[{{{{ {} }}}}]{{{{ else }}}}none{{{{ end }}}}",
                self.string(2)
            ),
            3 => format!(
                "{{{{ range $i, $v := list {e} {} }}}}{{{{ $i }}}}={{{{ $v }}}};{{{{ end }}}}",
                self.string(2)
            ),
            _ => format!("{{{{ $x := {e} }}}}{{{{ $x | upper }}}}"),
        }
    }
}

#[test]
fn generated_templates_render_as_eso_does() {
    let mut corpus = load_corpus();
    let mut generator = Generator(0x5eed_c0de_1234_5678);
    corpus.templates = (0..500)
        .map(|i| (format!("generated-{i:03}"), generator.template()))
        .collect();
    corpus.known_differences.clear();
    let values = corpus.values();
    let mut mismatches = Vec::new();
    let mut binary = 0;
    for ((name, template), go) in corpus.templates.iter().zip(go_answers(&corpus)) {
        let ours = gotemplate::render("t", template, &values);
        if go.bytes().is_some_and(|b| std::str::from_utf8(&b).is_err()) {
            binary += 1;
        }
        if !same(&ours, &go) {
            mismatches.push(format!(
                "{name}: {template}\n  courier: {ours:?}\n  go:      {go:?}"
            ));
        }
    }
    eprintln!("500 generated templates, {binary} with a result that is not UTF-8");
    assert!(
        mismatches.is_empty(),
        "{} of 500 generated templates differ from Go:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// `templateAs: KeysAndValues`: the rendered text is read as ESO reads it (YAML 1.1 into
/// a map of strings). ESO's `Execute` with scope KeysAndValues is the oracle.
#[test]
fn keys_and_values_outputs_read_as_eso_reads_them() {
    let cases = [
        "a: x\nb: 'y'",
        "a: 1\nb: yes\nc: 010\nd: 1.5\ne: 1000000.0\nf: ~\ng: 0x1F\nh: on",
        "1: one\ntrue: t\n2.5: f",
        "a: [1, 2]",
        "a: {b: c}",
        "- a\n- b",
        "just text",
        "",
        "a: 1\na: 2",
        "base: &b x\nref: *b",
        "a: |\n  multi\n  line\n",
        "a: \"\\u00e9\\t\"",
        "a: [",
    ];
    let mut input = String::new();
    for case in &cases {
        let request = serde_json::json!({
            "templates": {"t": case},
            "scope": "KeysAndValues",
            "data": {},
        });
        input.push_str(&request.to_string());
        input.push('\n');
    }
    let mut child = Command::new(oracle())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let mut mismatches = Vec::new();
    for (case, line) in cases
        .iter()
        .zip(String::from_utf8(output.stdout).unwrap().lines())
    {
        let go: serde_json::Value = serde_json::from_str(line).unwrap();
        let theirs = go["secret"]["data"].as_object().map(|data| {
            data.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect::<BTreeMap<_, _>>()
        });
        let ours = gotemplate::keys_and_values(case).ok();
        if ours != theirs {
            mismatches.push(format!("{case:?}\n  courier: {ours:?}\n  go:      {go}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
