//! Reading apps from disk: layers (framework, parents, the app), `e.json`
//! files, config files, and every diagnostic met on the way.

use crate::define::{ArgDefine, ElementDefine, ElementKind, FunctionDefine, Origin};
use crate::diagnostics::{DiagCode, Diagnostic, Diagnostics};
use crate::embedded;
use crate::schema_errors;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Pseudo-path prefix of files embedded from the official framework app.
pub const FRAMEWORK_PREFIX: &str = "<framework>";

/// Folders never scanned for elements.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", "plugins"];

/// One app in the inheritance stack.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub app_id: String,
    /// `None` for the embedded framework app.
    pub root: Option<PathBuf>,
    pub manifest: Value,
}

/// Whether `s` is a valid element-name segment (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses JSON text, turning a syntax error into a located diagnostic
/// (boxed: the happy path should not carry the diagnostic's size).
pub(crate) fn parse_json(text: &str, file: &Path) -> Result<Value, Box<Diagnostic>> {
    if text.starts_with('\u{feff}') {
        // serde_json would say "expected value at line 1 column 1", which
        // sends the user looking for a character their editor does not show.
        return Err(Box::new(
            Diagnostic::error(
                DiagCode::InvalidJson,
                file,
                "",
                "invalid JSON: the file starts with a UTF-8 byte-order mark; save it as UTF-8 without BOM",
            )
            .at(1, 1),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(strict::Strict, &mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            Box::new(
                Diagnostic::error(
                    DiagCode::InvalidJson,
                    file,
                    "",
                    format!("invalid JSON: {}", strip_position(&e.to_string())),
                )
                .at(e.line(), e.column()),
            )
        })
}

/// A JSON reader that refuses duplicate keys: `serde_json` keeps the last
/// one silently, so `{"type": "A", "type": "B"}` would load as whatever came
/// last, and a config with two `secret` keys would use one nobody meant.
mod strict {
    use serde::de::{DeserializeSeed, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};
    use std::fmt;

    pub(super) struct Strict;

    impl<'de> DeserializeSeed<'de> for Strict {
        type Value = Value;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Strict {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E: Error>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E: Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(v) = seq.next_element_seed(Strict)? {
                items.push(v);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value_seed(Strict)?;
                if out.contains_key(&key) {
                    return Err(A::Error::custom(format!(
                        "duplicate key `{key}` (only one may be given)"
                    )));
                }
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }
    }
}

/// The largest declaration or config file read: real ones are a few KiB;
/// a bigger one is a mistake (or hostile), and reading it would hold up the
/// whole load.
pub(crate) const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Reads a declaration or config file as UTF-8, refusing files larger than
/// [`MAX_FILE_BYTES`]; the error is the message of an `io` diagnostic.
pub(crate) fn read_text(file: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    // The size comes from the open file (one fstat, as read_to_string would
    // do anyway), so the limit costs no extra lookup of the path.
    let f = std::fs::File::open(file)?;
    let len = f.metadata()?.len();
    if len > MAX_FILE_BYTES {
        return Err(too_large(len));
    }
    // Read through `take`: `File::read_to_end` would ask the file for its
    // size and position again (two more system calls per file, 20,000 files
    // in a large app), and the cap also holds if the file grew since.
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not valid UTF-8 text",
        )
    })
}

/// The error for a file larger than [`MAX_FILE_BYTES`].
fn too_large(len: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!(
            "the file is {len} bytes, larger than the {} MiB a declaration or config file may be",
            MAX_FILE_BYTES / (1024 * 1024)
        ),
    )
}

fn strip_position(msg: &str) -> &str {
    msg.find(" at line ").map_or(msg, |i| &msg[..i])
}

/// Reads and parses a JSON file on disk.
pub(crate) fn read_json(file: &Path) -> Result<Value, Box<Diagnostic>> {
    let text = read_text(file).map_err(|e| {
        Box::new(Diagnostic::error(
            DiagCode::Io,
            file,
            "",
            format!("cannot read file: {e}"),
        ))
    })?;
    parse_json(&text, file)
}

/// A JSON Schema compiled for validation, with the document it came from.
pub(crate) struct CompiledSchema {
    pub validator: jsonschema::Validator,
    /// The schema itself: explaining a failed `oneOf` needs to see which
    /// keys each branch requires, which the compiled form does not expose.
    pub source: Value,
}

/// Compiled JSON Schemas, compiled once per load and shared by every document.
pub(crate) struct Schemas {
    compiled: HashMap<String, Option<Arc<CompiledSchema>>>,
}

impl Schemas {
    pub fn new() -> Schemas {
        Schemas {
            compiled: HashMap::new(),
        }
    }

    /// The embedded schema file of that name (`e.schema.json`, ...).
    pub fn embedded(name: &str) -> Option<&'static str> {
        embedded::SCHEMA_FILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| *text)
    }

    /// Compiles (once) the schema known under `key`; reports a broken schema
    /// against `file` and returns `None` then.
    pub fn get(
        &mut self,
        key: &str,
        schema: impl FnOnce() -> Option<Value>,
        diags: &mut Diagnostics,
        file: &Path,
    ) -> Option<Arc<CompiledSchema>> {
        if let Some(v) = self.compiled.get(key) {
            return v.clone();
        }
        let compiled = schema().and_then(|s| match jsonschema::validator_for(&s) {
            Ok(validator) => Some(Arc::new(CompiledSchema {
                validator,
                source: s,
            })),
            Err(e) => {
                diags.push(Diagnostic::error(
                    DiagCode::Schema,
                    file,
                    "",
                    format!("schema `{key}` is not a valid JSON Schema: {e}"),
                ));
                None
            }
        });
        self.compiled.insert(key.to_string(), compiled.clone());
        compiled
    }
}

/// Validates `doc` and pushes one diagnostic per problem, each at its own
/// JSON pointer (a failed `oneOf` is explained by its closest branch, see
/// [`schema_errors`]).
pub(crate) fn validate(
    schema: &CompiledSchema,
    doc: &Value,
    file: &Path,
    element: Option<&str>,
    what: &str,
    diags: &mut Diagnostics,
) -> bool {
    // The fast check allocates nothing; errors are collected only for the rare bad document.
    if schema.validator.is_valid(doc) {
        return true;
    }
    for err in schema.validator.iter_errors(doc) {
        for problem in schema_errors::explain(&err, &schema.source) {
            let mut d = Diagnostic::error(
                DiagCode::Schema,
                file,
                problem.pointer,
                format!("{what}: {}", problem.message),
            );
            if let Some(e) = element {
                d = d.for_element(e);
            }
            diags.push(d);
        }
    }
    false
}

/// Where an element's declaration lives before it is parsed.
struct Found {
    full_name: String,
    e_json: PathBuf,
    dir: Option<PathBuf>,
    /// Embedded text; `None` = read the file (done in parallel).
    text: Option<&'static str>,
}

/// Maps `f` over `items` on all cores, keeping the order of the results.
/// Loading is dominated by reading, parsing and validating independent
/// files, which parallelises perfectly. Threads take small batches from a
/// shared queue rather than one fixed share each: on a busy machine a thread
/// that gets less time does less of the work instead of holding up the end.
pub(crate) fn par_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    /// Items per batch: large enough that taking one costs nothing next to
    /// the work, small enough to even out the threads' finishing times.
    const BATCH: usize = 64;
    let threads = loader_threads();
    if threads < 2 || items.len() < 2 * BATCH {
        return items.into_iter().map(f).collect();
    }
    let total = items.len();
    let mut batches: Vec<Vec<T>> = Vec::with_capacity(total.div_ceil(BATCH));
    let mut rest = items.into_iter();
    loop {
        let batch: Vec<T> = rest.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            break;
        }
        batches.push(batch);
    }
    let queue = std::sync::Mutex::new(batches.into_iter().enumerate());
    let work = || {
        let mut done: Vec<(usize, Vec<R>)> = Vec::new();
        loop {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
            let Some((i, batch)) = next else {
                return done;
            };
            done.push((i, batch.into_iter().map(&f).collect()));
        }
    };
    let mut done = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut done = work();
        for h in helpers {
            done.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(total);
    for (_, results) in done {
        out.extend(results);
    }
    out
}

/// Finds every `e.json` of an app on disk, in a deterministic order.
fn scan_dir(root: &Path, diags: &mut Diagnostics) -> Vec<Found> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        // Symbolic links are not followed: no cycles, and no `stat` per entry.
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            if e.depth() == 0 || !e.file_type().is_dir() {
                return true;
            }
            let name = e.file_name().to_string_lossy();
            !(name.starts_with('.') || SKIPPED_DIRS.contains(&name.as_ref()))
        });
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.into());
                diags.push(Diagnostic::error(
                    DiagCode::Io,
                    path,
                    "",
                    format!("cannot scan: {e}"),
                ));
                continue;
            }
        };
        if !entry.file_type().is_file() || entry.file_name() != "e.json" {
            continue;
        }
        match found_on_disk(root, entry.into_path()) {
            Ok(found) => out.push(found),
            Err(d) => diags.push(*d),
        }
    }
    out
}

/// The embedded framework app's elements.
fn scan_framework() -> Vec<Found> {
    embedded::FRAMEWORK_FILES
        .iter()
        .filter(|(rel, _)| rel.ends_with("/e.json"))
        .map(|(rel, text)| {
            let dir = rel.trim_end_matches("/e.json");
            Found {
                full_name: dir.replace('/', "."),
                e_json: PathBuf::from(FRAMEWORK_PREFIX).join(rel),
                dir: None,
                text: Some(*text),
            }
        })
        .collect()
}

/// The embedded framework `app.json`.
fn framework_manifest() -> Value {
    embedded::FRAMEWORK_FILES
        .iter()
        .find(|(rel, _)| *rel == "app.json")
        .and_then(|(_, t)| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// Resolves the stack of apps: framework first, then parents (each after its
/// own parents, first listed first), then the app itself.
pub(crate) fn resolve_layers(
    root: &Path,
    schemas: &mut Schemas,
    diags: &mut Diagnostics,
) -> Vec<Layer> {
    let mut layers = vec![Layer {
        app_id: "jit.framework".into(),
        root: None,
        manifest: framework_manifest(),
    }];
    let mut visiting = Vec::new();
    let mut done = HashSet::new();
    add_app_layers(root, schemas, diags, &mut visiting, &mut done, &mut layers);
    layers
}

fn add_app_layers(
    root: &Path,
    schemas: &mut Schemas,
    diags: &mut Diagnostics,
    visiting: &mut Vec<PathBuf>,
    done: &mut HashSet<PathBuf>,
    layers: &mut Vec<Layer>,
) {
    let canon = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if done.contains(&canon) {
        return;
    }
    visiting.push(canon.clone());
    let manifest_path = root.join("app.json");
    let manifest = if manifest_path.is_file() {
        match read_json(&manifest_path) {
            Ok(v) => {
                if let Some(val) = schemas.get(
                    "app.schema.json",
                    || {
                        Schemas::embedded("app.schema.json")
                            .and_then(|t| serde_json::from_str(t).ok())
                    },
                    diags,
                    &manifest_path,
                ) {
                    validate(&val, &v, &manifest_path, None, "app.json", diags);
                }
                v
            }
            Err(d) => {
                diags.push(*d);
                Value::Null
            }
        }
    } else {
        Value::Null
    };
    if let Some(parents) = manifest.get("extends").and_then(Value::as_array) {
        for (i, p) in parents.iter().enumerate() {
            let rel = match p {
                Value::String(s) => s.as_str(),
                Value::Object(o) => match o.get("path").and_then(Value::as_str) {
                    Some(s) => s,
                    None => continue, // the schema already reported it
                },
                _ => continue,
            };
            let parent = root.join(rel);
            let pointer = format!("/extends/{i}");
            if !parent.is_dir() {
                diags.push(Diagnostic::error(
                    DiagCode::AppManifest,
                    &manifest_path,
                    pointer,
                    format!("parent app folder `{}` does not exist", parent.display()),
                ));
                continue;
            }
            let pc = parent.canonicalize().unwrap_or_else(|_| parent.clone());
            if visiting.contains(&pc) {
                diags.push(Diagnostic::error(
                    DiagCode::AppManifest,
                    &manifest_path,
                    pointer,
                    format!(
                        "apps extend each other in a circle through `{}`; remove one of the `extends` entries",
                        parent.display()
                    ),
                ));
                continue;
            }
            add_app_layers(&parent, schemas, diags, visiting, done, layers);
        }
    }
    visiting.pop();
    done.insert(canon);
    let app_id = manifest
        .get("appId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "app".into())
        });
    layers.push(Layer {
        app_id,
        root: Some(root.to_path_buf()),
        manifest,
    });
}

fn string_field(raw: &Value, key: &str) -> Option<String> {
    raw.get(key).and_then(Value::as_str).map(str::to_string)
}

fn parse_functions(raw: &Value) -> Vec<FunctionDefine> {
    let Some(list) = raw.get("functionList").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|f| {
            let name = f.get("name")?.as_str()?.to_string();
            let args = f
                .get("args")
                .and_then(Value::as_array)
                .map(|args| {
                    args.iter()
                        .filter_map(|a| {
                            Some(ArgDefine {
                                name: a.get("name")?.as_str()?.to_string(),
                                title: string_field(a, "title").unwrap_or_default(),
                                data_type: string_field(a, "dataType").unwrap_or_default(),
                                required: a
                                    .get("required")
                                    .and_then(Value::as_bool)
                                    .unwrap_or(true),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(FunctionDefine {
                title: string_field(f, "title").unwrap_or_default(),
                return_type: string_field(f, "returnType").or_else(|| {
                    f.pointer("/resultConfig/dataType")?
                        .as_str()
                        .map(str::to_string)
                }),
                is_async: f.get("async").and_then(Value::as_bool).unwrap_or(false),
                name,
                args,
            })
        })
        .collect()
}

/// An instance's config file read and parsed ahead of resolution: the walk
/// reads it while it is in the element's folder anyway, so resolution only
/// fills and checks it. `None`: read it when it is needed.
pub(crate) type ConfigText = Option<ConfigRead>;

/// A config file read ([`read_text`]) and parsed ([`parse_json`]).
pub(crate) type ConfigRead = std::io::Result<Result<Value, Box<Diagnostic>>>;

/// Reads and parses a config file, leaving every error to the caller.
pub(crate) fn read_config(path: &Path) -> ConfigRead {
    read_text(path).map(|text| parse_json(&text, path))
}

/// An `e.json` read, parsed and checked on its own, before its layer is merged.
struct ReadElement {
    found: Found,
    /// The document and what is read from it; `None` when the file could
    /// not be read, parsed or validated (`local` says why).
    raw: Option<(Value, Fields)>,
    local: Diagnostics,
    /// For an instance on disk: its config file (with its text, read ahead),
    /// or the pointer and message of why it may not be read.
    config: Option<ConfigAhead>,
}

/// The fields of an [`ElementDefine`] read from its `e.json` alone.
struct Fields {
    title: String,
    type_name: Option<String>,
    kind: Result<ElementKind, (&'static str, &'static str)>,
    functions: Vec<FunctionDefine>,
    load_time: Option<String>,
    access_modifier: String,
}

/// A located config file and its text, or why it is refused.
type ConfigAhead = Result<(PathBuf, ConfigRead), (&'static str, String)>;

/// The kind an `e.json` declares, or the pointer and message of why its
/// `kind` and `type` do not fit together.
fn element_kind(
    raw: &Value,
    type_name: Option<&str>,
) -> Result<ElementKind, (&'static str, &'static str)> {
    match (raw.get("kind").and_then(Value::as_str), type_name) {
        (Some("Meta"), Some(_)) => Err((
            "/type",
            "a Meta is the root of a family and has no `type`; remove `type` or change `kind`",
        )),
        (Some("Type") | Some("Instance"), None) => Err((
            "/kind",
            "a Type or Instance must name its parent in `type` (a Meta or Type)",
        )),
        (Some("Type"), Some(_)) => Ok(ElementKind::Type),
        (_, None) => Ok(ElementKind::Meta),
        (_, Some(_)) => Ok(ElementKind::Instance),
    }
}

/// Reads, parses and validates one `e.json`, and for an instance on disk
/// locates its config file and reads it: all of it independent of the other
/// elements, so it runs on any thread. `links` names the symbolic links in
/// the element's folder when the walk listed it (`None`: ask the file system).
fn read_element(
    f: Found,
    root: Option<&Path>,
    e_schema: Option<&CompiledSchema>,
    links: Option<&[std::ffi::OsString]>,
) -> ReadElement {
    let mut local = Diagnostics::default();
    let text = match f.text {
        Some(t) => Ok(std::borrow::Cow::Borrowed(t)),
        None => read_text(&f.e_json).map(std::borrow::Cow::Owned),
    };
    let raw = match text {
        Err(e) => {
            local.push(
                Diagnostic::error(
                    DiagCode::Io,
                    &f.e_json,
                    "",
                    format!("cannot read file: {e}"),
                )
                .for_element(&f.full_name),
            );
            None
        }
        Ok(text) => match parse_json(&text, &f.e_json) {
            Err(d) => {
                local.push(d.for_element(&f.full_name));
                None
            }
            Ok(raw) => {
                let valid = e_schema.is_none_or(|v| {
                    validate(v, &raw, &f.e_json, Some(&f.full_name), "e.json", &mut local)
                });
                valid.then_some(raw)
            }
        },
    };
    let raw = raw.map(|raw| {
        let type_name = string_field(&raw, "type");
        let fields = Fields {
            title: string_field(&raw, "title").unwrap_or_default(),
            kind: element_kind(&raw, type_name.as_deref()),
            type_name,
            functions: parse_functions(&raw),
            load_time: string_field(&raw, "loadTime"),
            access_modifier: string_field(&raw, "accessModifier")
                .unwrap_or_else(|| "public".into()),
        };
        (raw, fields)
    });
    let config = match (&raw, f.dir.as_deref(), root) {
        (Some((raw, fields)), Some(dir), Some(root))
            if fields.kind == Ok(ElementKind::Instance) =>
        {
            Some(
                locate_config(root, dir, &f.full_name, raw, links).map(|path| {
                    let read = read_config(&path);
                    (path, read)
                }),
            )
        }
        _ => None,
    };
    ReadElement {
        found: f,
        raw,
        local,
        config,
    }
}

/// What [`walk_and_read`] found: the walk's own diagnostics, each with the
/// path it sorts by, and the elements read.
type Walked = (Vec<(PathBuf, Diagnostic)>, Vec<ReadElement>);

/// One folder's listing: the folders in it to walk into, its `e.json`, and
/// the names of its symbolic links.
type Listing = (Vec<PathBuf>, Option<PathBuf>, Vec<std::ffi::OsString>);

/// Walks an app folder and reads every element in it (see [`read_element`])
/// on `threads` threads taking folders from one shared stack: the walk, the
/// reads and the checks overlap, with no pause between them. Returns the
/// walk's own diagnostics and the elements, both in the order of
/// [`scan_dir`]'s sorted walk (which is the order of their paths), or `None`
/// if a folder could not be listed: [`scan_dir`] then walks again to report
/// it exactly as it always has.
fn walk_and_read(root: &Path, e_schema: Option<&CompiledSchema>, threads: usize) -> Option<Walked> {
    use std::sync::{Condvar, Mutex};
    /// Folders waiting to be listed, how many are being worked on, and
    /// whether a listing failed.
    struct Work {
        dirs: Vec<PathBuf>,
        busy: usize,
        failed: bool,
    }
    let work = Mutex::new(Work {
        dirs: vec![root.to_path_buf()],
        busy: 0,
        failed: false,
    });
    let wake = Condvar::new();
    /// Stops the other threads if this one panics (they would otherwise
    /// wait for its folder forever); the panic then reaches the caller.
    struct StopOnPanic<'a>(&'a Mutex<Work>, &'a Condvar);
    impl Drop for StopOnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.lock().unwrap_or_else(|p| p.into_inner()).failed = true;
                self.1.notify_all();
            }
        }
    }
    let worker = || {
        let _stop = StopOnPanic(&work, &wake);
        let mut scanned: Vec<(PathBuf, Diagnostic)> = Vec::new();
        let mut read: Vec<ReadElement> = Vec::new();
        loop {
            let dir = {
                let mut w = work.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if w.failed {
                        return (scanned, read);
                    }
                    if let Some(d) = w.dirs.pop() {
                        w.busy += 1;
                        break d;
                    }
                    if w.busy == 0 {
                        return (scanned, read);
                    }
                    w = wake.wait(w).unwrap_or_else(|p| p.into_inner());
                }
            };
            let listed = list_dir(&dir);
            let mut w = work.lock().unwrap_or_else(|p| p.into_inner());
            let Ok((subdirs, e_json, links)) = listed else {
                w.failed = true;
                wake.notify_all();
                return (scanned, read);
            };
            // The folder's subfolders are queued: reading its element adds
            // no work, so the others may stop once the queue is empty.
            let more = !subdirs.is_empty();
            w.dirs.extend(subdirs);
            w.busy -= 1;
            let done = w.busy == 0 && w.dirs.is_empty();
            drop(w);
            if more || done {
                wake.notify_all();
            }
            let Some(path) = e_json else {
                continue;
            };
            match found_on_disk(root, path) {
                Ok(found) => read.push(read_element(found, Some(root), e_schema, Some(&links))),
                Err(d) => scanned.push((d.file.clone(), *d)),
            }
        }
    };
    let (mut scanned, mut read) = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(worker)).collect();
        let (mut scanned, mut read) = worker();
        for h in helpers {
            let (more_scanned, more_read) =
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            scanned.extend(more_scanned);
            read.extend(more_read);
        }
        (scanned, read)
    });
    if work.into_inner().unwrap_or_else(|p| p.into_inner()).failed {
        return None;
    }
    // A sorted depth-first walk visits paths in the order of their components.
    scanned.sort_by(|a, b| a.0.cmp(&b.0));
    read.sort_by(|a, b| a.found.e_json.cmp(&b.found.e_json));
    Some((scanned, read))
}

/// One folder's listing for [`walk_and_read`]: the folders to walk into
/// (hidden and [`SKIPPED_DIRS`] ones left out, links not followed), its
/// `e.json` if it has one, and the names of its symbolic links.
fn list_dir(dir: &Path) -> std::io::Result<Listing> {
    let mut subdirs = Vec::new();
    let mut e_json = None;
    let mut links = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let name = entry.file_name();
        if kind.is_dir() {
            let skipped = name.as_encoded_bytes().starts_with(b".")
                || SKIPPED_DIRS.iter().any(|s| name == *s);
            if !skipped {
                subdirs.push(entry.path());
            }
        } else if kind.is_file() && name == "e.json" {
            e_json = Some(entry.path());
        } else if kind.is_symlink() {
            links.push(name);
        }
    }
    Ok((subdirs, e_json, links))
}

/// The element an `e.json` at `path` under `root` declares, named after its
/// folders, or the diagnostic of why it can never be looked up.
fn found_on_disk(root: &Path, path: PathBuf) -> Result<Found, Box<Diagnostic>> {
    let dir = path.parent().unwrap_or(root).to_path_buf();
    let rel = dir.strip_prefix(root).unwrap_or(&dir);
    let segments: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if segments.is_empty() {
        return Err(Box::new(Diagnostic::error(
            DiagCode::Unreachable,
            &path,
            "",
            "an e.json at the app root has no fullName and can never be looked up; move it into a folder named after the element",
        )));
    }
    if let Some(bad) = segments.iter().find(|s| !is_identifier(s)) {
        return Err(Box::new(Diagnostic::error(
            DiagCode::InvalidName,
            &path,
            "",
            format!(
                "folder name `{bad}` is not a valid identifier (letters, digits and `_`, not starting with a digit); the element is unreachable until it is renamed"
            ),
        )));
    }
    Ok(Found {
        full_name: segments.join("."),
        e_json: path,
        dir: Some(dir),
        text: None,
    })
}

/// Threads the loader reads on: every core, at most 8.
fn loader_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// Parses, validates and locates the config file of every element of one
/// layer, each with its config file's text when it was read ahead.
pub(crate) fn read_layer(
    layer: &Layer,
    schemas: &mut Schemas,
    diags: &mut Diagnostics,
) -> Vec<(ElementDefine, ConfigText)> {
    let e_schema = schemas.get(
        "e.schema.json",
        || Schemas::embedded("e.schema.json").and_then(|t| serde_json::from_str(t).ok()),
        diags,
        Path::new("schemas/e.schema.json"),
    );
    let e_schema = e_schema.as_deref();
    let root = layer.root.as_deref();
    let walked = root.and_then(|r| walk_and_read(r, e_schema, loader_threads()));
    let parsed = match walked {
        Some((scanned, read)) => {
            diags.extend(scanned.into_iter().map(|(_, d)| d));
            read
        }
        None => {
            let found = match root {
                None => scan_framework(),
                Some(root) => scan_dir(root, diags),
            };
            // Reading, parsing and schema checks are independent per file.
            par_map(found, |f| read_element(f, root, e_schema, None))
        }
    };
    let mut seen_lower: HashMap<String, PathBuf> = HashMap::with_capacity(parsed.len());
    let mut out = Vec::with_capacity(parsed.len());
    for r in parsed {
        let f = r.found;
        diags.extend(r.local.0);
        let Some((raw, fields)) = r.raw else {
            continue;
        };
        if let Some(explicit) = raw.get("fullName").and_then(Value::as_str) {
            if explicit != f.full_name {
                diags.push(
                    Diagnostic::error(
                        DiagCode::FullNameMismatch,
                        &f.e_json,
                        "/fullName",
                        format!(
                            "fullName `{explicit}` disagrees with the folder path, which makes it `{}`; remove the field or move the folder",
                            f.full_name
                        ),
                    )
                    .for_element(&f.full_name),
                );
            }
        }
        if let Some(prev) = seen_lower.insert(f.full_name.to_lowercase(), f.e_json.clone()) {
            diags.push(
                Diagnostic::error(
                    DiagCode::DuplicateElement,
                    &f.e_json,
                    "",
                    format!(
                        "`{}` differs only in letter case from the element at {}; lookups would be ambiguous on case-insensitive file systems",
                        f.full_name,
                        prev.display()
                    ),
                )
                .for_element(&f.full_name),
            );
            continue;
        }
        let kind = match fields.kind {
            Ok(kind) => kind,
            Err((pointer, message)) => {
                diags.push(
                    Diagnostic::error(DiagCode::BadTypeTarget, &f.e_json, pointer, message)
                        .for_element(&f.full_name),
                );
                continue;
            }
        };
        let mut config_text = None;
        let config_file = match r.config {
            Some(Ok((path, text))) => {
                config_text = Some(text);
                Some(path)
            }
            Some(Err((pointer, message))) => {
                diags.push(
                    Diagnostic::error(DiagCode::OutsideApp, &f.e_json, pointer, message)
                        .for_element(&f.full_name),
                );
                None
            }
            None => None,
        };
        let define = ElementDefine {
            title: fields.title,
            type_name: fields.type_name,
            kind,
            functions: fields.functions,
            load_time: fields.load_time,
            access_modifier: fields.access_modifier,
            config_file,
            origin: Origin {
                app_id: layer.app_id.clone(),
                file: f.e_json,
                dir: f.dir,
            },
            full_name: f.full_name,
            raw,
        };
        out.push((define, config_text));
    }
    out
}

/// The config file of an instance: the `.json` file `frontBundleEntry` names,
/// else `<InstanceName>.json` beside `e.json`. Returns the expected path even
/// when it does not exist, so a missing file can be reported by name.
///
/// A config holds credentials, so it is read only from inside the app folder
/// `root`: an absolute `frontBundleEntry`, one with `..`, or a file (or
/// folder) that is a symbolic link leading outside is refused with the JSON
/// pointer and message of the diagnostic. Otherwise any `.json` file on the
/// machine could be read as a config, and its content quoted in errors.
///
/// `links` names the symbolic links in `dir` when the caller has listed it
/// (then a config beside `e.json` costs no system call to check), `None` to
/// ask the file system.
fn locate_config(
    root: &Path,
    dir: &Path,
    full_name: &str,
    raw: &Value,
    links: Option<&[std::ffi::OsString]>,
) -> Result<PathBuf, (&'static str, String)> {
    let entry = raw
        .get("frontBundleEntry")
        .and_then(Value::as_str)
        .filter(|e| e.ends_with(".json"));
    let path = match entry {
        Some(entry) => {
            let rel = Path::new(entry);
            let escapes = rel.components().any(|c| {
                !matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
            if escapes {
                return Err((
                    "/frontBundleEntry",
                    format!(
                        "`{entry}` leads outside the app folder; name a file inside the element's folder, relative to it, without `..`"
                    ),
                ));
            }
            // Joined without `.` components, so the path reads as the user
            // would write it (`corps/X/X.json`, not `corps/X/./X.json`).
            rel.components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .fold(dir.to_path_buf(), |p, c| p.join(c))
        }
        None => {
            let name = full_name.rsplit('.').next().unwrap_or(full_name);
            dir.join(format!("{name}.json"))
        }
    };
    // The walk does not follow links, so `dir` is inside the app; only the
    // file or a folder of a nested entry can be a link. One lstat in the
    // common case; the full resolution only when a link may be involved.
    let nested = entry.is_some_and(|e| {
        Path::new(e)
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .count()
            > 1
    });
    let is_link = match (links, path.file_name()) {
        // Not nested: the file is an entry of `dir`, whose listing says
        // what `lstat` would.
        (Some(links), Some(name)) if !nested => links.iter().any(|l| l == name),
        _ => std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()),
    };
    if nested || is_link {
        if let (Ok(real), Ok(real_root)) = (path.canonicalize(), root.canonicalize()) {
            if !real.starts_with(&real_root) {
                let pointer = if entry.is_some() {
                    "/frontBundleEntry"
                } else {
                    ""
                };
                return Err((
                    pointer,
                    format!(
                        "`{}` is a symbolic link that leads outside the app folder; a config is read only from inside the app",
                        path.strip_prefix(dir).unwrap_or(&path).display()
                    ),
                ));
            }
        }
    }
    Ok(path)
}

/// Checks that `rel`, a path written in an `e.json`, stays inside `dir` (the
/// element's folder): relative, without `..`, and not through a symbolic
/// link leading out of `dir`. The error is the diagnostic's message.
pub(crate) fn inside(dir: &Path, rel: &str) -> Result<(), String> {
    let path = Path::new(rel);
    let escapes = path.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if escapes {
        return Err(format!(
            "`{rel}` leads outside the element's folder; name a file inside it, relative to it, without `..`"
        ));
    }
    let full = dir.join(path);
    if let (Ok(real), Ok(real_dir)) = (full.canonicalize(), dir.canonicalize()) {
        if !real.starts_with(&real_dir) {
            return Err(format!(
                "`{rel}` is a symbolic link that leads outside the element's folder"
            ));
        }
    }
    Ok(())
}

/// Merges layers: a later layer's element with the same fullName replaces the
/// earlier one, unless the earlier one is `protected` (inheritable, not overridable).
///
/// Returns the elements by fullName and, in the same order, their config
/// files' texts read ahead.
pub(crate) fn merge_layers(
    layers: Vec<Vec<(ElementDefine, ConfigText)>>,
    diags: &mut Diagnostics,
) -> (BTreeMap<String, Arc<ElementDefine>>, Vec<ConfigText>) {
    let mut merged: BTreeMap<String, (Arc<ElementDefine>, ConfigText)> = BTreeMap::new();
    for layer in layers {
        for (def, text) in layer {
            if let Some((prev, _)) = merged.get(&def.full_name) {
                if prev.access_modifier == "protected" && prev.origin.app_id != def.origin.app_id {
                    diags.push(
                        Diagnostic::error(
                            DiagCode::DuplicateElement,
                            &def.origin.file,
                            "",
                            format!(
                                "`{}` is protected in app `{}` and may be extended but not overridden; give this element another name",
                                def.full_name, prev.origin.app_id
                            ),
                        )
                        .for_element(&def.full_name),
                    );
                    continue;
                }
            }
            merged.insert(def.full_name.clone(), (Arc::new(def), text));
        }
    }
    let mut texts = Vec::with_capacity(merged.len());
    let elements = merged
        .into_iter()
        .map(|(name, (def, text))| {
            texts.push(text);
            (name, def)
        })
        .collect();
    (elements, texts)
}

/// Environment for `{{NAME}}` placeholders: the process environment (or the
/// map a host passes in), then the app's `env` defaults.
pub(crate) struct Env {
    pub vars: Option<HashMap<String, String>>,
    pub defaults: HashMap<String, String>,
}

impl Env {
    fn get(&self, name: &str) -> Option<String> {
        let from_env = match &self.vars {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        from_env.or_else(|| self.defaults.get(name).cloned())
    }

    /// Replaces `{{NAME}}` in every string of `value`; reports unset names,
    /// unterminated placeholders and names that are no variable names. The
    /// values filled in are pushed to `filled`: they are usually secrets,
    /// so diagnostics about the filled document mask them.
    pub fn substitute(
        &self,
        value: &mut Value,
        pointer: &mut String,
        file: &Path,
        element: &str,
        diags: &mut Diagnostics,
        filled: &mut Vec<String>,
    ) {
        match value {
            Value::String(s) if s.contains("{{") => {
                let mut out = String::with_capacity(s.len());
                let mut rest = s.as_str();
                while let Some(start) = rest.find("{{") {
                    out.push_str(&rest[..start]);
                    let after = &rest[start + 2..];
                    let Some(end) = after.find("}}") else {
                        // A value that was meant to be filled would otherwise
                        // go upstream as the literal text `{{NAME`.
                        diags.push(
                            Diagnostic::error(
                                DiagCode::InvalidConfig,
                                file,
                                pointer.clone(),
                                "a `{{` placeholder has no closing `}}`; write {{NAME}}",
                            )
                            .for_element(element),
                        );
                        out.push_str(&rest[start..]);
                        rest = "";
                        break;
                    };
                    let name = after[..end].trim();
                    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        diags.push(
                            Diagnostic::error(
                                DiagCode::InvalidConfig,
                                file,
                                pointer.clone(),
                                format!(
                                    "`{{{{{}}}}}` is not a variable name: a placeholder is {{{{NAME}}}} with letters, digits and _",
                                    name.chars().take(40).collect::<String>()
                                ),
                            )
                            .for_element(element),
                        );
                        rest = &after[end + 2..];
                        continue;
                    }
                    match self.get(name) {
                        Some(v) => {
                            out.push_str(&v);
                            filled.push(v);
                        }
                        None => diags.push(
                            Diagnostic::error(
                                DiagCode::UnsetVariable,
                                file,
                                pointer.clone(),
                                format!(
                                    "placeholder {{{{{name}}}}} names an environment variable that is not set; export {name}=... or add it to `env` in app.json"
                                ),
                            )
                            .for_element(element),
                        ),
                    }
                    rest = &after[end + 2..];
                }
                out.push_str(rest);
                *s = out;
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    self.substitute(item, pointer, file, element, diags, filled);
                    pointer.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    self.substitute(item, pointer, file, element, diags, filled);
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
    }
}

/// Edit distance, for "did you mean" suggestions.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(!ca.eq_ignore_ascii_case(cb));
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Up to three names closest to `wanted` (edit distance at most half the
/// longer name, and at least 2): the "did you mean" of every diagnostic
/// that names something missing.
pub fn closest<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = candidates
        .map(|c| (levenshtein(wanted, c), c))
        .filter(|(d, c)| *d <= (c.len().max(wanted.len()) / 2).max(2))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_the_element_name_rules() {
        assert!(is_identifier("MyCorp_2"));
        assert!(is_identifier("_x"));
        assert!(!is_identifier("2corp"));
        assert!(!is_identifier("my-corp"));
        assert!(!is_identifier(""));
    }

    #[test]
    fn closest_names_rank_by_edit_distance() {
        let names = ["corps.QywxInnerType", "corps.DDInnerType", "corps.Meta"];
        assert_eq!(
            closest("corps.QywxInerType", names.iter().copied())[0],
            "corps.QywxInnerType"
        );
        assert!(closest("zzzzzzzzzz", names.iter().copied()).is_empty());
    }

    #[test]
    fn read_text_reads_a_file_whole_and_refuses_oversized_or_non_utf8_ones() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("e.json");
        std::fs::write(&ok, "{\"title\": \"Größe\"}").unwrap();
        assert_eq!(read_text(&ok).unwrap(), "{\"title\": \"Größe\"}");

        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
        let e = read_text(&big).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("larger than the 8 MiB"), "{e}");

        let latin1 = dir.path().join("latin1.json");
        std::fs::write(&latin1, b"{\"title\": \"Gr\xf6\xdfe\"}").unwrap();
        let e = read_text(&latin1).unwrap_err();
        assert_eq!(e.to_string(), "the file is not valid UTF-8 text");
    }

    #[test]
    fn the_parallel_walk_finds_what_the_sorted_walk_finds_in_the_same_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut folders = vec![
            "a".to_string(),
            "a/b".into(),
            "a/B".into(),
            "a_b".into(),
            "a.b".into(),
            "Z".into(),
            "2bad".into(),
            "2bad/Inner".into(),
            ".hidden/X".into(),
            "node_modules/Y".into(),
        ];
        // Enough folders that both threads take some.
        for g in 0..5 {
            for i in 0..40 {
                folders.push(format!("items/g{g}/Item{i}"));
            }
        }
        for f in &folders {
            std::fs::create_dir_all(root.join(f)).unwrap();
            std::fs::write(root.join(f).join("e.json"), "{}").unwrap();
        }
        std::fs::write(root.join("e.json"), "{}").unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("linked")).unwrap();

        let mut diags = Diagnostics::default();
        let sorted = scan_dir(root, &mut diags);
        let (scanned, read) = walk_and_read(root, None, 2).expect("every folder lists");
        let names = |found: Vec<&Found>| -> Vec<(String, PathBuf)> {
            found
                .into_iter()
                .map(|f| (f.full_name.clone(), f.e_json.clone()))
                .collect()
        };
        assert_eq!(
            names(read.iter().map(|r| &r.found).collect()),
            names(sorted.iter().collect())
        );
        assert_eq!(
            sorted.len(),
            folders.len() - 5,
            "hidden, skipped and misnamed folders left out"
        );
        let walked: Vec<Diagnostic> = scanned.into_iter().map(|(_, d)| d).collect();
        assert_eq!(walked, diags.0);
        assert_eq!(
            walked.len(),
            4,
            "the root e.json, two under 2bad and a.b: {walked:?}"
        );
    }
}
