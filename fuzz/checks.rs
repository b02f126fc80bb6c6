//! What the fuzz targets check, as plain functions: the libFuzzer targets call them, and
//! `tests/fuzz_regressions.rs` replays every saved input through them in `cargo test`.

use std::collections::BTreeMap;

/// Any bytes, as a YAML or JSON file: loading and planning end in a result or an error,
/// never a panic, and no error quotes the marker value of the world it plans against.
pub fn load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["fuzz.yaml", "fuzz.json"] {
        match courier::core::load::load_str(name, text) {
            Ok(inputs) => {
                if let Ok(world) = courier::core::world::World::from_inputs(&inputs) {
                    let plan = courier::core::plan::plan(
                        &inputs.manifests,
                        &world,
                        &courier::providers::Registry,
                    );
                    let _ = courier::core::output::to_yaml(
                        &plan.secrets,
                        courier::core::output::Values::Redact,
                    );
                    let _ = courier::core::plan::check(
                        &inputs.manifests,
                        &world,
                        &courier::providers::Registry,
                    );
                }
            }
            Err(errors) => {
                for error in errors {
                    let _ = error.to_string();
                }
            }
        }
    }
}

/// Any text as a set-based selector: parsing never panics, and what parses prints back to
/// a selector that parses to the same thing.
pub fn selector(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(selector) = courier::core::select::Selector::parse(text) {
        let printed = selector.to_string();
        let again = courier::core::select::Selector::parse(&printed)
            .unwrap_or_else(|e| panic!("{printed:?} does not parse again: {e}"));
        assert_eq!(again.to_string(), printed);
        let labels: BTreeMap<String, String> = text
            .split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let _ = selector.matches(&labels);
    }
}

/// Any text as a template over a fixed context: rendering ends in output or an error
/// (fuel bounds loops), and no error quotes the context's marker value.
pub fn template(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let env = courier::core::template::environment();
    let values: BTreeMap<String, courier::core::secret_bytes::SecretBytes> = [
        ("username", "fuzz-user"),
        ("password", "fuzzmarker-value-42"),
        ("tls.crt", "LS0tLS1CRUdJTg=="),
        ("config", r#"{"a":{"b":[1,2,3]}}"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into()))
    .collect();
    let context = courier::core::template::context(&values);
    if let Err(error) = courier::core::template::render(&env, source, &context) {
        assert!(
            !error.message.contains("fuzzmarker-value-42"),
            "a template error quoted a value: {}",
            error.message
        );
    }
}
