//! Files, directories and stdin into typed objects. Every error names the file and,
//! where there is one, the line and the object.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::core::model::{
    ClusterExternalSecretManifest, ConfigMapManifest, ExternalSecretManifest, NamespaceManifest,
    SecretManifest, SecretStoreManifest,
};
use crate::core::redact::scrub_serde_message;
use crate::core::suggest::did_you_mean;

/// The API group of the External Secrets Operator.
pub const ESO_GROUP: &str = "external-secrets.io";
/// ESO versions courier reads.
pub const ESO_VERSIONS: [&str; 2] = ["v1", "v1beta1"];
/// Largest input courier reads, per file or stdin.
pub const MAX_INPUT_BYTES: u64 = 32 * 1024 * 1024;

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// File path as given (or `<stdin>`).
    pub file: Arc<str>,
    /// 1-based line of the document's first node; 0 when unknown.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}", self.file, self.line)
        } else {
            f.write_str(&self.file)
        }
    }
}

/// An object with its origin.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// Where it was read.
    pub origin: Origin,
    /// The object.
    pub object: T,
}

/// Which store kind a `SecretStoreManifest` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreKind {
    /// Namespaced; serves its own namespace.
    SecretStore,
    /// Cluster-scoped.
    ClusterSecretStore,
}

impl StoreKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::SecretStore => "SecretStore",
            StoreKind::ClusterSecretStore => "ClusterSecretStore",
        }
    }
}

/// Everything read from the inputs, by kind.
#[derive(Debug, Default)]
pub struct Inputs {
    /// `v1` Namespaces.
    pub namespaces: Vec<Loaded<NamespaceManifest>>,
    /// `v1` Secrets (possible sources).
    pub secrets: Vec<Loaded<SecretManifest>>,
    /// `v1` ConfigMaps (for `templateFrom`).
    pub config_maps: Vec<Loaded<ConfigMapManifest>>,
    /// The ESO objects: what to distribute, and from where.
    pub manifests: Manifests,
    /// Every object that is not an ESO manifest (Namespaces, Secrets and ConfigMaps
    /// included), unchanged but for a defaulted namespace, in input order: what
    /// `render --passthrough` prints next to the rendered Secrets.
    pub passthrough: Vec<Loaded<Value>>,
}

/// The ESO objects courier acts on.
#[derive(Debug, Default, Clone)]
pub struct Manifests {
    /// SecretStores and ClusterSecretStores.
    pub stores: Vec<Loaded<(StoreKind, SecretStoreManifest)>>,
    /// ClusterExternalSecrets.
    pub cluster_external_secrets: Vec<Loaded<ClusterExternalSecretManifest>>,
    /// ExternalSecrets.
    pub external_secrets: Vec<Loaded<ExternalSecretManifest>>,
    /// The ESO objects refused at load (ESO's schema or webhook rules, a field courier does
    /// not implement, a misspelt group): each is an error for its own targets alone, which
    /// the planner reports as that object's errors and live mode keeps as they are.
    pub refused: Vec<Refused>,
    /// The ExternalSecrets a ClusterExternalSecret controls (`--from-cluster` with ESO's
    /// objects): not manifests, since their ClusterExternalSecret is planned in their
    /// stead, but each holds its name in its namespace, so another ClusterExternalSecret
    /// that gives its ExternalSecrets that name fails there (ESO's ownership rule).
    pub controlled_external_secrets: Vec<ControlledExternalSecret>,
}

/// An ExternalSecret in the cluster that a ClusterExternalSecret controls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ControlledExternalSecret {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The ClusterExternalSecret its controller owner reference names.
    pub controller: String,
}

/// An ESO object refused at load, known by its identity only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `ExternalSecret`, `ClusterExternalSecret`, `SecretStore` or `ClusterSecretStore`.
    pub kind: String,
    /// `Kind/namespace/name`, as its targets' `courier.dev/origin` names it.
    pub object: String,
    /// Why, each naming the file, the line and the field; never a value.
    pub errors: Vec<LoadError>,
}

/// A problem with the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {}{message}", object.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
pub struct LoadError {
    /// File and line.
    pub origin: Origin,
    /// `Kind/namespace/name`, when known.
    pub object: Option<String>,
    /// What is wrong; never a secret value.
    pub message: String,
}

/// Reads every path (`-` is stdin): files, and directories recursively (`*.yaml`,
/// `*.yml`, `*.json`, in sorted order). Reports every error it finds, not just the first.
pub fn load_paths(paths: &[PathBuf]) -> Result<Inputs, Vec<LoadError>> {
    load_paths_with(paths, &LoadOptions::default())
}

/// How to read inputs.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Namespace for namespaced objects that name none (Argo CD's app namespace,
    /// kubectl's `-n`); without it such objects are an error.
    pub default_namespace: Option<String>,
}

/// [`load_paths`] with options.
pub fn load_paths_with(paths: &[PathBuf], options: &LoadOptions) -> Result<Inputs, Vec<LoadError>> {
    strict(load_paths_partial_with(paths, options))
}

/// What a caller that acts on nothing unless everything loaded gets: the inputs, or every
/// error, the refused objects' included.
fn strict((inputs, mut errors): (Inputs, Vec<LoadError>)) -> Result<Inputs, Vec<LoadError>> {
    if errors.is_empty() && inputs.manifests.refused.is_empty() {
        return Ok(inputs);
    }
    errors.extend(
        inputs
            .manifests
            .refused
            .iter()
            .flat_map(|refused| refused.errors.iter().cloned()),
    );
    errors.sort_by(|a, b| a.origin.cmp(&b.origin));
    Err(errors)
}

/// Like [`load_paths`], but also returns what did load next to the errors, so a caller
/// can find the later errors (a Secret's bad base64, say) in the same run. The errors of
/// refused ESO objects are not among them: they are in `manifests.refused`, and the
/// planner reports them as those objects' own errors.
pub fn load_paths_partial(paths: &[PathBuf]) -> (Inputs, Vec<LoadError>) {
    load_paths_partial_with(paths, &LoadOptions::default())
}

/// [`load_paths_partial`] with options.
pub fn load_paths_partial_with(
    paths: &[PathBuf],
    options: &LoadOptions,
) -> (Inputs, Vec<LoadError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            files.push(FileInput::Stdin);
        } else if path.is_dir() {
            match collect_dir(path) {
                Ok(found) => files.extend(found.into_iter().map(FileInput::Path)),
                Err(e) => errors.push(e),
            }
        } else {
            files.push(FileInput::Path(path.clone()));
        }
    }
    let mut loader = Loader {
        default_namespace: options.default_namespace.clone(),
        ..Loader::default()
    };
    // A file named twice (a directory and a file inside it) is read once.
    let mut read_paths = std::collections::HashSet::new();
    files.retain(|file| match file {
        FileInput::Path(path) => {
            read_paths.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
        }
        // `-` twice is stdin once.
        FileInput::Stdin => read_paths.insert(PathBuf::from("-")),
    });
    for file in files {
        let (name, text) = match file.read() {
            Ok(read) => read,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        loader.add_text(&name, &text);
    }
    let (inputs, load_errors) = loader.finish();
    errors.extend(load_errors);
    (inputs, errors)
}

/// Parses one text (YAML stream, or JSON when the name ends in `.json`) as if read from `name`.
pub fn load_str(name: &str, text: &str) -> Result<Inputs, Vec<LoadError>> {
    let mut loader = Loader::default();
    loader.add_text(&Arc::from(name), text);
    strict(loader.finish())
}

/// Objects already parsed (read from the API server, say), each with the origin to name
/// in errors; refused ESO objects are in `manifests.refused`, as in [`load_paths_partial`].
pub fn load_values(values: Vec<(Origin, Value)>) -> (Inputs, Vec<LoadError>) {
    let mut loader = Loader::default();
    for (origin, value) in values {
        loader.add_value(origin, value);
    }
    loader.finish()
}

enum FileInput {
    Stdin,
    Path(PathBuf),
}

/// stdin as read the first time, for the life of the process. A command may load its
/// inputs more than once (`apply` validates them before its reconcile reads them again,
/// `run` re-reads them at every reconcile); a second read of the stream would find it
/// empty, and an empty input would prune every target. So stdin is read once.
static STDIN: std::sync::OnceLock<StdinRead> = std::sync::OnceLock::new();

/// stdin's bytes, or how reading them failed (kept to be told to every later reader).
type StdinRead = Result<Arc<[u8]>, (std::io::ErrorKind, String)>;

fn stdin_bytes() -> std::io::Result<Vec<u8>> {
    let read = STDIN.get_or_init(|| {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map(|_| Arc::from(bytes))
            .map_err(|e| (e.kind(), e.to_string()))
    });
    match read {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err((kind, message)) => Err(std::io::Error::new(*kind, message.clone())),
    }
}

impl FileInput {
    fn read(&self) -> Result<(Arc<str>, String), LoadError> {
        let (name, bytes): (Arc<str>, _) = match self {
            FileInput::Stdin => ("<stdin>".into(), stdin_bytes()),
            FileInput::Path(path) => {
                let name: Arc<str> = path.display().to_string().into();
                let result = std::fs::File::open(path).and_then(|file| {
                    let mut bytes = Vec::new();
                    file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes)?;
                    Ok(bytes)
                });
                (name, result)
            }
        };
        let fail = |message: String| LoadError {
            origin: Origin {
                file: name.clone(),
                line: 0,
            },
            object: None,
            message,
        };
        let bytes = bytes.map_err(|e| fail(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > MAX_INPUT_BYTES {
            return Err(fail(format!(
                "larger than the {} MiB courier reads",
                MAX_INPUT_BYTES >> 20
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            fail(format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Ok((name, text))
    }
}

fn collect_dir(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| LoadError {
            origin: Origin {
                file: dir.display().to_string().into(),
                line: 0,
            },
            object: None,
            message: format!("cannot read directory: {e}"),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if is_hidden {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The files of an app directory, walked as [`load_paths`] walks it, split into those
/// that hold Kubernetes objects and those skipped ([`is_manifest_text`]), the way Argo
/// CD's directory source reads an app.
pub fn manifest_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), LoadError> {
    let (mut found, mut skipped) = (Vec::new(), Vec::new());
    for path in collect_dir(dir)? {
        // A file that cannot be read is kept, so loading it reports why.
        let keep = match FileInput::Path(path.clone()).read() {
            Ok((name, text)) => is_manifest_text(&name, &text),
            Err(_) => true,
        };
        if keep {
            found.push(path);
        } else {
            skipped.push(path);
        }
    }
    Ok((found, skipped))
}

/// Whether a file of an app holds Kubernetes objects, by Argo CD's rule for directory
/// sources: a YAML file whose documents are not all objects (a mapping with `apiVersion`
/// and `kind`), or that does not parse, is skipped unless its text has the three lines of
/// a manifest (`apiVersion:`, `kind:` and `metadata:`), when it is read and its error
/// reported; a JSON file is always read, as Argo CD reads it. Kustomize files
/// (`kustomization.yaml`, anywhere in the app) are never objects of the cluster and are
/// skipped too.
pub fn is_manifest_text(name: &str, text: &str) -> bool {
    let base = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if matches!(
        base,
        "kustomization.yaml" | "kustomization.yml" | "Kustomization"
    ) {
        return false;
    }
    if name.ends_with(".json") {
        return true;
    }
    let documents = parse_yaml(&Arc::from(name), text);
    let is_object = |value: &Value| {
        ["apiVersion", "kind"].iter().all(|field| {
            value
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty())
        })
    };
    let all_objects = documents.is_ok_and(|documents| {
        documents
            .iter()
            .all(|(_, value)| value.is_null() || is_object(value))
    });
    all_objects
        || ["apiVersion:", "kind:", "metadata:"]
            .iter()
            .all(|line| text.contains(line))
}

#[derive(Default)]
struct Loader {
    inputs: Inputs,
    errors: Vec<LoadError>,
    seen: HashMap<(String, String, String), Origin>,
    default_namespace: Option<String>,
    /// The ESO object being read, once its identity is known: its errors from then on
    /// refuse it alone (see [`Refused`]).
    refusable: Option<(String, String)>,
}

impl Loader {
    fn add_text(&mut self, name: &Arc<str>, text: &str) {
        let documents = if name.ends_with(".json") {
            parse_json(name, text)
        } else {
            parse_yaml(name, text)
        };
        match documents {
            Ok(documents) => {
                for (line, value) in documents {
                    let before = self.errors.len();
                    let refused_before = self.inputs.manifests.refused.len();
                    self.add_value(
                        Origin {
                            file: name.clone(),
                            line,
                        },
                        value,
                    );
                    locate_fields(&mut self.errors[before..], text, line);
                    for refused in &mut self.inputs.manifests.refused[refused_before..] {
                        locate_fields(&mut refused.errors, text, line);
                    }
                }
            }
            Err(e) => self.errors.push(e),
        }
    }

    fn add_value(&mut self, origin: Origin, value: Value) {
        match value {
            Value::Null => {}
            Value::Object(ref map) => {
                let kind = map
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let api_version = map
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if kind.ends_with("List")
                    && api_version == "v1"
                    && let Some(Value::Array(items)) = map.get("items")
                {
                    for item in items.clone() {
                        self.add_value(origin.clone(), item);
                    }
                    return;
                }
                let before = self.errors.len();
                if let Err(e) = self.add_object(&origin, &kind, &api_version, value) {
                    self.errors.push(e);
                }
                if let Some((kind, object)) = self.refusable.take()
                    && self.errors.len() > before
                {
                    let errors = self.errors.split_off(before);
                    self.inputs.manifests.refused.push(Refused {
                        kind,
                        object,
                        errors,
                    });
                }
            }
            other => self.errors.push(LoadError {
                origin,
                object: None,
                message: format!(
                    "expected a Kubernetes object (a mapping), found {}",
                    json_type(&other)
                ),
            }),
        }
    }

    fn add_object(
        &mut self,
        origin: &Origin,
        kind: &str,
        api_version: &str,
        mut value: Value,
    ) -> Result<(), LoadError> {
        let fail = |object: Option<String>, message: String| LoadError {
            origin: origin.clone(),
            object,
            message,
        };
        if kind.is_empty() || api_version.is_empty() {
            let missing = if kind.is_empty() {
                "kind"
            } else {
                "apiVersion"
            };
            return Err(fail(None, format!("missing required field `{missing}`")));
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut namespace = value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let cluster_scoped = matches!(
            kind,
            "Namespace" | "ClusterSecretStore" | "ClusterExternalSecret"
        );
        // Only courier's own namespaced kinds get the default: a pass-through object's
        // scope is unknown here, and Argo CD or kubectl place it themselves.
        let courier_namespaced = (group.is_empty() && matches!(kind, "Secret" | "ConfigMap"))
            || (group == ESO_GROUP && matches!(kind, "SecretStore" | "ExternalSecret"));
        if courier_namespaced
            && namespace.as_deref().is_none_or(str::is_empty)
            && let Some(default) = &self.default_namespace
            && let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut)
        {
            metadata.insert("namespace".into(), Value::from(default.as_str()));
            namespace = Some(default.clone());
        }
        let display = object_display(kind, namespace.as_deref(), &name);
        // From here an error of one of the four ESO kinds whose identity is known refuses
        // that object alone; the others (a missing name, an object defined twice) leave
        // courier unsure which targets are whose, and fail the whole input.
        let identity_known = !name.is_empty()
            && (cluster_scoped || namespace.as_deref().is_some_and(|n| !n.is_empty()));
        self.refusable = (ESO_KINDS.contains(&kind) && identity_known)
            .then(|| (kind.to_owned(), display.clone()));

        check_eso_api_version(kind, api_version, group)
            .map_err(|message| fail(Some(display.clone()), message))?;
        let is_eso = group == ESO_GROUP;
        let handled = (group.is_empty() && matches!(kind, "Namespace" | "Secret" | "ConfigMap"))
            || (is_eso
                && matches!(
                    kind,
                    "ClusterSecretStore"
                        | "SecretStore"
                        | "ClusterExternalSecret"
                        | "ExternalSecret"
                ));
        // The four ESO kinds courier acts on are replaced by their Secrets; everything else
        // (a PushSecret, a generator, a Deployment) passes through.
        if !is_eso || !handled {
            self.inputs.passthrough.push(Loaded {
                origin: origin.clone(),
                object: value.clone(),
            });
        }
        if is_eso && !handled && !ESO_OTHER_KINDS.contains(&kind) {
            let hint = did_you_mean(kind, ESO_KINDS.iter().copied())
                .map(|close| format!("; did you mean {close}?"))
                .unwrap_or_default();
            return Err(fail(
                Some(display),
                format!("unknown kind {kind:?} in {ESO_GROUP}{hint}"),
            ));
        }
        if !handled {
            return Ok(());
        }
        if is_eso && !ESO_VERSIONS.contains(&version) {
            return Err(fail(
                Some(display),
                format!(
                    "unsupported apiVersion {api_version:?}; courier reads {ESO_GROUP}/v1 and {ESO_GROUP}/v1beta1"
                ),
            ));
        }
        if group.is_empty() && version != "v1" {
            return Err(fail(
                Some(display),
                format!("unsupported apiVersion {api_version:?} for {kind}; expected v1"),
            ));
        }
        if name.is_empty() {
            return Err(fail(
                Some(kind.to_owned()),
                "missing required field `metadata.name`".into(),
            ));
        }
        if !cluster_scoped && namespace.as_deref().is_none_or(str::is_empty) {
            return Err(fail(
                Some(display),
                "missing `metadata.namespace`; courier needs every namespaced object's namespace to be explicit\nhint: write it, or pass -n NAMESPACE (render --argocd takes it from ARGOCD_APP_NAMESPACE, the Application's destination namespace)".into(),
            ));
        }
        let identity = (
            kind.to_owned(),
            namespace.clone().unwrap_or_default(),
            name.clone(),
        );
        if let Some(first) = self.seen.get(&identity) {
            self.refusable = None;
            return Err(fail(
                Some(display),
                format!("defined twice: first at {first}, again here"),
            ));
        }
        self.seen.insert(identity, origin.clone());

        if is_eso && !self.eso_object_admitted(origin, &display, kind, &value) {
            return Ok(());
        }
        let mut value = value;
        if is_eso {
            drop_nulls(&mut value);
        }
        match kind {
            "Namespace" => self
                .inputs
                .namespaces
                .push(typed_object(origin, &display, value)?),
            "Secret" => self
                .inputs
                .secrets
                .push(typed_object(origin, &display, value)?),
            "ConfigMap" => self
                .inputs
                .config_maps
                .push(typed_object(origin, &display, value)?),
            "SecretStore" | "ClusterSecretStore" => {
                let store_kind = if kind == "SecretStore" {
                    StoreKind::SecretStore
                } else {
                    StoreKind::ClusterSecretStore
                };
                let loaded: Loaded<SecretStoreManifest> = typed_object(origin, &display, value)?;
                self.inputs.manifests.stores.push(Loaded {
                    origin: loaded.origin,
                    object: (store_kind, loaded.object),
                });
            }
            "ClusterExternalSecret" => {
                let loaded: Loaded<ClusterExternalSecretManifest> =
                    typed_object(origin, &display, value)?;
                let spec = &loaded.object.spec;
                check_duration(origin, &display, "spec.refreshTime", &spec.refresh_time)?;
                check_duration(
                    origin,
                    &display,
                    "spec.externalSecretSpec.refreshInterval",
                    &spec.external_secret_spec.refresh_interval,
                )?;
                check_cluster_selector(origin, &display, &loaded.object.metadata.annotations)?;
                self.inputs.manifests.cluster_external_secrets.push(loaded);
            }
            "ExternalSecret" => {
                let loaded: Loaded<ExternalSecretManifest> = typed_object(origin, &display, value)?;
                check_duration(
                    origin,
                    &display,
                    "spec.refreshInterval",
                    &loaded.object.spec.refresh_interval,
                )?;
                check_cluster_selector(origin, &display, &loaded.object.metadata.annotations)?;
                self.inputs.manifests.external_secrets.push(loaded);
            }
            _ => unreachable!("kind checked above"),
        }
        Ok(())
    }

    /// ESO's schema (strict, as the API server checks it), the fields courier does not
    /// implement, and ESO's webhook rules: every failure is pushed as its own error, and
    /// `false` means the object is refused.
    fn eso_object_admitted(
        &mut self,
        origin: &Origin,
        display: &str,
        kind: &str,
        value: &Value,
    ) -> bool {
        let mut found = crate::core::schema::validate(kind, value);
        if found.is_empty() {
            found = crate::core::eso_rules::check(kind, value);
        }
        let admitted = found.is_empty();
        self.errors.extend(found.into_iter().map(|e| LoadError {
            origin: origin.clone(),
            object: Some(display.to_owned()),
            message: format!("{}: {}", e.field, e.message),
        }));
        admitted
    }

    fn finish(self) -> (Inputs, Vec<LoadError>) {
        (self.inputs, self.errors)
    }
}

/// Moves each error that names a field (`spec.target.nmae: ...`) from its document's
/// first line to the field's own line; runs only on errors.
fn locate_fields(errors: &mut [LoadError], text: &str, document_line: usize) {
    for error in errors {
        let Some((field, _)) = error.message.split_once(": ") else {
            continue;
        };
        let is_field = (field.starts_with("spec.") || field.starts_with("metadata."))
            && !field.contains(char::is_whitespace);
        if is_field
            && error.origin.line == document_line
            && let Some(line) = crate::core::fieldline::field_line(text, document_line, field)
        {
            error.origin.line = line;
        }
    }
}

/// The ESO kinds courier renders.
const ESO_KINDS: [&str; 4] = [
    "ClusterExternalSecret",
    "ExternalSecret",
    "ClusterSecretStore",
    "SecretStore",
];

/// Other kinds of ESO's group, which courier passes through untouched.
const ESO_OTHER_KINDS: [&str; 2] = ["PushSecret", "ClusterPushSecret"];

/// An apiVersion that was meant to be ESO's but misses: a group a typo away from
/// `external-secrets.io` (the object would pass through untouched and its targets would
/// never be written, or be pruned by `apply`), or the group without a version.
fn check_eso_api_version(kind: &str, api_version: &str, group: &str) -> Result<(), String> {
    let eso_kind = ESO_KINDS.contains(&kind) || ESO_OTHER_KINDS.contains(&kind);
    let versions = "courier reads external-secrets.io/v1 (and v1beta1, read as v1)";
    if !api_version.contains('/') {
        let close = api_version == ESO_GROUP || did_you_mean(api_version, [ESO_GROUP]).is_some();
        if close || (eso_kind && api_version.contains('.')) {
            return Err(format!(
                "apiVersion {api_version:?} has no version\nhint: write apiVersion: {ESO_GROUP}/v1; {versions}"
            ));
        }
        // The core group (`v1`) has no such kind: the group was lost (a Secret's header
        // copied over, say). Passed through, the object would be no manifest, and its
        // targets would be pruned by `apply`.
        if eso_kind {
            return Err(format!(
                "apiVersion {api_version:?} is the core API group, which has no {kind}\nhint: write apiVersion: {ESO_GROUP}/v1; {versions}"
            ));
        }
        return Ok(());
    }
    if group != ESO_GROUP
        && !group.ends_with(&format!(".{ESO_GROUP}"))
        && did_you_mean(group, [ESO_GROUP]).is_some()
    {
        let version = api_version.rsplit('/').next().unwrap_or("v1");
        return Err(format!(
            "unknown API group {group:?}; did you mean {ESO_GROUP}?\nhint: write apiVersion: {ESO_GROUP}/{version}"
        ));
    }
    Ok(())
}

/// ESO's CRDs take a Go duration (`1h`, `90s`); anything else is refused at load, as the
/// API server would.
fn check_duration(
    origin: &Origin,
    display: &str,
    field: &str,
    value: &Option<String>,
) -> Result<(), LoadError> {
    match value {
        Some(text) if crate::core::duration::parse_go_duration(text).is_none() => Err(LoadError {
            origin: origin.clone(),
            object: Some(display.to_owned()),
            message: format!(
                "{field}: is not a Go duration\nhint: write it like 1h, 30m, 1h30m or 90s"
            ),
        }),
        _ => Ok(()),
    }
}

/// A cluster selector that does not parse would send the targets nowhere: refused at load.
fn check_cluster_selector(
    origin: &Origin,
    display: &str,
    annotations: &crate::core::model::StringMap,
) -> Result<(), LoadError> {
    crate::core::select::cluster_selector(annotations)
        .map(drop)
        .map_err(|message| LoadError {
            origin: origin.clone(),
            object: Some(display.to_owned()),
            message,
        })
}

/// An ESO object's fields that are `null` (`target:` with nothing under it) taken out, as
/// the API server prunes them and [`crate::core::schema`] skips them; a `null` list item
/// stays (the schema refuses it).
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn typed_object<T: DeserializeOwned>(
    origin: &Origin,
    display: &str,
    value: Value,
) -> Result<Loaded<T>, LoadError> {
    serde_path_to_error::deserialize(value)
        .map(|object| Loaded {
            origin: origin.clone(),
            object,
        })
        .map_err(|e| {
            let path = e.path().to_string();
            let message = scrub_serde_message(&e.inner().to_string());
            let hint = if message.contains("expected a string")
                && !message.contains("invalid type: map")
                && !message.contains("invalid type: sequence")
            {
                " (quote the value: YAML reads true, yes, y, on and numbers as non-strings)"
            } else {
                ""
            };
            LoadError {
                origin: origin.clone(),
                object: Some(display.to_owned()),
                message: format!("{path}: {message}{hint}"),
            }
        })
}

/// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects.
pub fn object_display(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(namespace) if !namespace.is_empty() => format!("{kind}/{namespace}/{name}"),
        _ => format!("{kind}/{name}"),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// Budgets apply per document (the streaming reader resets them at every `---`), so a
/// stream may hold any number of objects while one document stays bounded: no Kubernetes
/// object comes near 500,000 YAML events, and an alias bomb trips that within a second.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        with_snippet: false,
        budget: serde_saphyr::budget! {
            max_events: 500_000,
            max_aliases: 10_000,
            max_depth: 64,
        },
    }
}

fn parse_yaml(name: &Arc<str>, text: &str) -> Result<Vec<(usize, Value)>, LoadError> {
    let mut reader = text.as_bytes();
    let mut documents = Vec::new();
    for document in serde_saphyr::read_with_options::<_, serde_saphyr::Spanned<Value>>(
        &mut reader,
        yaml_options(),
    ) {
        match document {
            Ok(document) => documents.push((document.referenced.line() as usize, document.value)),
            Err(e) => {
                let line = e.location().map(|l| l.line() as usize).unwrap_or(0);
                let message = e.without_snippet().to_string();
                // The location is already in our prefix; keep the message short.
                let message = message
                    .split_once(" at line ")
                    .map(|(m, _)| m.to_owned())
                    .unwrap_or(message);
                // serde-saphyr's advice is for programmers; say what the user did.
                let message = match message
                    .strip_prefix("duplicate mapping key: ")
                    .and_then(|rest| rest.split(',').next())
                {
                    Some(key @ ("apiVersion" | "kind" | "metadata")) => format!(
                        "`{key}` appears twice in one document; two documents without a `---` line between them?"
                    ),
                    Some(key) => format!("the key `{key}` appears twice in one mapping"),
                    None => message,
                };
                return Err(LoadError {
                    origin: Origin {
                        file: name.clone(),
                        line,
                    },
                    object: None,
                    message: format!("invalid YAML: {}", scrub_serde_message(&message)),
                });
            }
        }
    }
    Ok(documents)
}

fn parse_json(name: &Arc<str>, text: &str) -> Result<Vec<(usize, Value)>, LoadError> {
    let mut documents = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            None => return Ok(documents),
            Some(Ok(value)) => {
                let skipped = text[start..].len() - text[start..].trim_start().len();
                let line = text[..start + skipped].matches('\n').count() + 1;
                documents.push((line, value));
            }
            Some(Err(e)) => {
                return Err(LoadError {
                    origin: Origin {
                        file: name.clone(),
                        line: e.line(),
                    },
                    object: None,
                    message: format!(
                        "invalid JSON: {}",
                        scrub_serde_message(
                            &e.to_string()
                                .rsplit_once(" at line ")
                                .map(|(m, _)| m.to_owned())
                                .unwrap_or_else(|| e.to_string())
                        )
                    ),
                });
            }
        }
    }
}

/// Namespace name to labels, with `kubernetes.io/metadata.name` set as the API server sets it.
pub fn namespace_labels(
    namespaces: &[Loaded<NamespaceManifest>],
) -> BTreeMap<String, BTreeMap<String, String>> {
    namespaces
        .iter()
        .map(|ns| {
            let mut labels = ns.object.metadata.labels.clone();
            labels.insert(
                "kubernetes.io/metadata.name".into(),
                ns.object.metadata.name.clone(),
            );
            (ns.object.metadata.name.clone(), labels)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_may_hold_thousands_of_objects() {
        let text: String = (0..5_000)
            .map(|n| format!("---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns-{n}}}\n"))
            .collect();
        let inputs = load_str("big.yaml", &text).unwrap();
        assert_eq!(inputs.namespaces.len(), 5_000);
        assert_eq!(inputs.namespaces[4_999].origin.line, 20_000 - 2);
    }

    /// An empty field (`target:` with nothing under it, YAML's null) is absent, as the
    /// API server prunes it and [`crate::core::schema`] reads it.
    #[test]
    fn a_null_field_of_an_eso_object_is_absent() {
        let text = "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: e, namespace: a}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: s}\n  syncWindows:\n  refreshPolicy:\n  target:\n  data: [{secretKey: k, remoteRef: {key: src, property: ~}}]\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: f, namespace: a}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: s}\n  target:\n    template:\n      metadata:\n      data: {x: null, y: '{{ .k }}'}\n  data: [{secretKey: k, remoteRef: {key: src}}]\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: c}\nspec:\n  externalSecretMetadata:\n  externalSecretSpec:\n    secretStoreRef: {kind: ClusterSecretStore, name: s}\n    target: {template: {metadata: null}}\n    data: [{secretKey: k, remoteRef: {key: src}}]\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: s}\nspec:\n  conditions:\n  provider:\n    kubernetes: {remoteNamespace: src, auth: null}\n";
        let inputs = load_str("n.yaml", text).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(inputs.manifests.external_secrets.len(), 2);
        assert_eq!(inputs.manifests.cluster_external_secrets.len(), 1);
        assert_eq!(inputs.manifests.stores.len(), 1);
        let f = &inputs.manifests.external_secrets[1].object.spec;
        let data = &f.target.template.as_ref().unwrap().data;
        assert_eq!(data.keys().collect::<Vec<_>>(), ["y"]);
    }

    #[test]
    fn documents_report_their_first_line() {
        let inputs = load_str("f.yaml", "# comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n").unwrap();
        let lines: Vec<usize> = inputs.namespaces.iter().map(|n| n.origin.line).collect();
        assert_eq!(lines, [3, 8]);
    }
}
