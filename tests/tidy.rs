//! Tidy: the architecture invariants that can be checked by reading the
//! repository, checked. Every crate's dependencies keep to the boundaries
//! ARCHITECTURE.md draws, every crate says what it is in a crate-level doc
//! comment, and every crate appears in ARCHITECTURE.md's code map, so the map
//! cannot drift from the tree.
//!
//! The manifests are read with a small TOML reader below rather than the
//! `toml` crate: it covers every form the manifests use, fails loudly on
//! anything else, and keeps this test free of dependencies.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Violations known today and accepted for now, each with the reason. An
/// entry is `(crate, dependency, reason)`; the test fails if an entry is no
/// longer needed, so the list only shrinks. Empty: no invariant is broken.
const ALLOWED: &[(&str, &str, &str)] = &[];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn dependencies_keep_to_the_crate_boundaries() {
    let root = repo_root();
    let workspace = Manifest::read(&root.join("Cargo.toml"));
    let violations: Vec<Violation> = crate_manifests(&root)
        .iter()
        .flat_map(|path| check_dependencies(&Manifest::read(path), &workspace))
        .collect();
    let (allowed, unexpected): (Vec<&Violation>, Vec<&Violation>) =
        violations.iter().partition(|v| {
            ALLOWED
                .iter()
                .any(|(c, d, _)| *c == v.krate && *d == v.dependency)
        });
    let stale: Vec<String> = ALLOWED
        .iter()
        .filter(|(c, d, _)| !allowed.iter().any(|v| v.krate == *c && v.dependency == *d))
        .map(|(c, d, _)| format!("{c} → {d}"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "dependencies that break the architecture invariants (see ARCHITECTURE.md):\n{}",
        unexpected
            .iter()
            .map(|v| format!("  {v}\n"))
            .collect::<String>()
    );
    assert!(
        stale.is_empty(),
        "ALLOWED entries no longer needed, remove them: {}",
        stale.join(", ")
    );
}

/// Every Rust file of the crates outside their `tests` folders, as
/// (path from the repository root with `/` separators, text).
fn crate_sources() -> Vec<(String, String)> {
    let root = repo_root();
    walkdir::WalkDir::new(root.join("crates"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .filter_map(|e| {
            let rel = e.path().strip_prefix(&root).unwrap_or(e.path());
            if rel.iter().any(|c| c == "tests" || c == "target") {
                return None;
            }
            let rel = rel.to_string_lossy().replace('\\', "/");
            Some((rel, std::fs::read_to_string(e.path()).unwrap_or_default()))
        })
        .collect()
}

/// Capping malloc arenas changes how the whole process allocates: the
/// binaries' decision, never a library's. Libraries may use jit-alloc's
/// other help (`release_free_memory` changes no setting).
#[test]
fn only_the_binaries_change_how_the_process_allocates() {
    let mut offenders = Vec::new();
    for (rel, text) in crate_sources() {
        let krate = rel.split('/').nth(1).unwrap_or("");
        if matches!(krate, "jit-cli" | "jit-bench" | "jit-alloc") {
            continue;
        }
        if text.contains("limit_malloc_arenas()") || text.contains("M_ARENA_MAX") {
            offenders.push(rel);
        }
    }
    assert!(
        offenders.is_empty(),
        "library code that changes the process's allocator settings: {offenders:?}"
    );
}

/// `unsafe` is confined to the files whose job needs it: the allocator
/// call, the plugin ABI on both sides, and SQLite binding without copies.
/// Anything else that wants it should be reviewed as a change to this list.
#[test]
fn unsafe_code_lives_only_where_the_architecture_says() {
    const ALLOWED: &[&str] = &[
        "crates/jit-alloc/src/lib.rs",
        "crates/jit-plugin-abi/src/lib.rs",
        "crates/jit-plugin-host/src/library.rs",
        "crates/jit-plugin-host/src/instance.rs",
        "crates/jit-plugin-sdk/src/lib.rs",
        "crates/jit-store/src/sqlite_bind.rs",
    ];
    let mut offenders = Vec::new();
    for (rel, text) in crate_sources() {
        let uses = text
            .lines()
            .map(str::trim_start)
            .filter(|l| !l.starts_with("//"))
            .any(|l| {
                l.contains("unsafe {") || l.contains("unsafe fn ") || l.contains("unsafe impl ")
            });
        if uses && !ALLOWED.contains(&rel.as_str()) {
            offenders.push(rel);
        }
    }
    assert!(
        offenders.is_empty(),
        "unsafe code outside the files ARCHITECTURE.md names: {offenders:?}"
    );
}

#[test]
fn every_crate_has_a_crate_level_doc_comment() {
    let mut undocumented = Vec::new();
    for manifest in crate_manifests(&repo_root()) {
        let dir = manifest.parent().unwrap();
        let roots: Vec<PathBuf> = ["src/lib.rs", "src/main.rs"]
            .iter()
            .map(|r| dir.join(r))
            .filter(|p| p.is_file())
            .collect();
        assert!(
            !roots.is_empty(),
            "{}: no src/lib.rs or src/main.rs",
            dir.display()
        );
        for file in roots {
            let text = std::fs::read_to_string(&file).unwrap();
            if !starts_with_crate_doc(&text) {
                undocumented.push(file.display().to_string());
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "crate roots without a crate-level doc comment (`//!` saying what the crate is):\n  {}",
        undocumented.join("\n  ")
    );
}

#[test]
fn every_crate_is_in_the_architecture_code_map() {
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let map = section(&doc, "## Code map").expect("ARCHITECTURE.md has a `## Code map` section");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let path = entry.unwrap().path();
        if !path.join("Cargo.toml").is_file() {
            continue;
        }
        let name = format!("`crates/{}`", path.file_name().unwrap().to_string_lossy());
        if !map.contains(&name) {
            missing.push(name);
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "crates missing from ARCHITECTURE.md's code map (add a row saying what each is): {}",
        missing.join(", ")
    );
}

#[test]
fn every_integration_test_file_is_compiled_into_one_of_its_crates_test_binaries() {
    // Integration tests are one binary per crate (`autotests = false` and a
    // `tests/tests.rs` declaring a module per area), so a file dropped into
    // `tests/` and never declared would silently not run.
    let root = repo_root();
    let mut problems = Vec::new();
    for dir in std::fs::read_dir(root.join("crates")).unwrap() {
        let dir = dir.unwrap().path();
        let (Ok(manifest), Ok(entries)) = (
            std::fs::read_to_string(dir.join("Cargo.toml")),
            std::fs::read_dir(dir.join("tests")),
        ) else {
            continue;
        };
        let files: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect();
        let crate_name = dir.file_name().unwrap().to_string_lossy().into_owned();
        // Test roots: the `path`s of [[test]] sections (relative to the crate).
        let roots: Vec<PathBuf> = manifest
            .split("[[test]]")
            .skip(1)
            .filter_map(|section| {
                section.lines().find_map(|l| {
                    let l = l.trim();
                    l.strip_prefix("path")
                        .map(|rest| rest.trim_start_matches([' ', '=']).trim_matches('"'))
                        .map(|p| dir.join(p))
                })
            })
            .collect();
        if files.len() > 1 && !manifest.contains("autotests = false") {
            problems.push(format!(
                "{crate_name}: {} integration test files, each its own binary; set `autotests = false` and make them modules of tests/tests.rs",
                files.len()
            ));
            continue;
        }
        if !manifest.contains("autotests = false") {
            continue;
        }
        let declared: Vec<String> = roots
            .iter()
            .filter_map(|r| std::fs::read_to_string(r).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().strip_prefix("mod "))
                    .map(|m| m.trim_end_matches(';').trim().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        for f in &files {
            let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
            let canonical = f.canonicalize().unwrap();
            let is_root = roots
                .iter()
                .any(|r| r.canonicalize().is_ok_and(|r| r == canonical));
            if !is_root && !declared.contains(&stem) {
                problems.push(format!(
                    "{crate_name}: tests/{stem}.rs is neither a [[test]] nor a module of one, so it never runs"
                ));
            }
        }
    }
    // The repository's own tests/ are the modules of tests/tests.rs.
    let top = std::fs::read_to_string(root.join("tests/tests.rs")).unwrap();
    for entry in std::fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let is_module =
            path.extension().is_some_and(|x| x == "rs") || path.join("mod.rs").is_file();
        if is_module && stem != "tests" && !top.contains(&format!("mod {stem};")) {
            problems.push(format!(
                "tests/{stem} is not a module of tests/tests.rs, so it never runs"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_networking_dependency_of_jit_core_is_reported_even_through_the_workspace() {
    let workspace = Manifest::parse(
        "[workspace.dependencies]\ntokio = { version = \"1\", features = [\"rt\", \"net\"] }\n",
    );
    let core = Manifest::parse(
        "[package]\nname = \"jit-core\"\n[dev-dependencies]\ntokio.workspace = true\n",
    );
    let found: Vec<String> = check_dependencies(&core, &workspace)
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("jit-core") && found[0].contains("tokio"),
        "{found:?}"
    );
}

#[test]
fn the_simulator_is_allowed_as_a_dev_dependency_but_not_as_a_dependency() {
    let workspace =
        Manifest::parse("[workspace.dependencies]\njit-sim = { path = \"crates/jit-sim\" }\n");
    let as_dev = Manifest::parse(
        "[package]\nname = \"jit-wecom\"\n[dev-dependencies]\njit-sim = { path = \"../jit-sim\" }\n",
    );
    let as_dep = Manifest::parse(
        "[package]\nname = \"jit-wecom\"\n[dependencies]\njit-sim.workspace = true\n",
    );
    assert!(check_dependencies(&as_dev, &workspace).is_empty());
    assert_eq!(check_dependencies(&as_dep, &workspace).len(), 1);
}

// ---------------------------------------------------------------------------
// The rules.

/// One dependency that breaks a rule.
struct Violation {
    krate: String,
    dependency: String,
    table: String,
    rule: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} depends on {} ([{}]): {}",
            self.krate, self.dependency, self.table, self.rule
        )
    }
}

/// A dependency as declared, with `workspace = true` resolved.
struct Dependency {
    /// The crate depended on (`package = ...` honoured).
    name: String,
    /// The table it is declared in (`dependencies`, `dev-dependencies`, ...).
    table: String,
    /// Its features, the workspace entry's included.
    features: Vec<String>,
}

fn check_dependencies(manifest: &Manifest, workspace: &Manifest) -> Vec<Violation> {
    let krate = manifest
        .get(&["package", "name"])
        .and_then(Toml::as_str)
        .expect("[package] name")
        .to_string();
    let mut out = Vec::new();
    for dep in dependencies(manifest, workspace) {
        let mut broken = |rule: &'static str| {
            out.push(Violation {
                krate: krate.clone(),
                dependency: dep.name.clone(),
                table: dep.table.clone(),
                rule,
            })
        };
        let name = dep.name.as_str();
        if matches!(name, "rusqlite" | "tokio-postgres") && krate != "jit-store" {
            broken("only jit-store speaks SQL");
        }
        if name == "libloading" && krate != "jit-plugin-host" {
            broken("only jit-plugin-host loads libraries");
        }
        if krate == "jit-core" {
            if matches!(name, "reqwest" | "axum" | "hyper" | "hyper-util") {
                broken("jit-core does no network I/O");
            }
            if name == "tokio" && dep.features.iter().any(|f| f == "net" || f == "full") {
                broken("jit-core does no network I/O (tokio's `net` feature)");
            }
        }
        if name == "jit-sim"
            && dep.table != "dev-dependencies"
            && !matches!(krate.as_str(), "jit-cli" | "jit-bench" | "jit-py")
        {
            // jit-py ships `jit.sim` so Python tests need no separate process.
            broken("the simulator is a test and demo tool: only dev-dependencies, jit-cli, jit-bench and jit-py (jit.sim) use it");
        }
        if krate == "jit-sync" && matches!(name, "jit-apiclient" | "reqwest" | "axum" | "hyper") {
            broken("the sync engine knows no HTTP client: platform errors reach it boxed in SourceError");
        }
        if krate == "jit-plugin-abi" && dep.table != "dev-dependencies" {
            broken(
                "the plugin ABI depends on nothing: whatever it used would become part of the ABI",
            );
        }
        if matches!(name, "jit-sync" | "jit-store" | "jit-apiclient")
            && matches!(krate.as_str(), "jit-org" | "jit-core")
        {
            broken("jit-org and jit-core know nothing of syncing, storing or platform clients");
        }
    }
    out
}

/// Every dependency of a manifest, in `[dependencies]`, `[dev-dependencies]`,
/// `[build-dependencies]` and their `[target.'cfg(..)'.*]` variants.
fn dependencies(manifest: &Manifest, workspace: &Manifest) -> Vec<Dependency> {
    const TABLES: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];
    let mut scopes: Vec<&BTreeMap<String, Toml>> = vec![&manifest.0];
    if let Some(Toml::Table(targets)) = manifest.0.get("target") {
        scopes.extend(targets.values().filter_map(Toml::as_table));
    }
    let shared = workspace.get(&["workspace", "dependencies"]);
    let mut out = Vec::new();
    for scope in scopes {
        for table in TABLES {
            let Some(Toml::Table(deps)) = scope.get(table) else {
                continue;
            };
            for (key, spec) in deps {
                let mut name = key.clone();
                let mut features = Vec::new();
                let mut specs = vec![spec];
                if spec.get("workspace").and_then(Toml::as_bool) == Some(true) {
                    let entry = shared.and_then(|s| s.get(key)).unwrap_or_else(|| {
                        panic!("{key} says `workspace = true` but [workspace.dependencies] has no {key}")
                    });
                    specs.push(entry);
                }
                for s in specs {
                    if let Some(package) = s.get("package").and_then(Toml::as_str) {
                        name = package.to_string();
                    }
                    if let Some(Toml::Array(fs)) = s.get("features") {
                        features.extend(fs.iter().filter_map(Toml::as_str).map(str::to_string));
                    }
                }
                out.push(Dependency {
                    name,
                    table: table.to_string(),
                    features,
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The repository.

/// `crates/*/Cargo.toml` and `examples/plugins/*/Cargo.toml`, sorted.
fn crate_manifests(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for parent in ["crates", "examples/plugins"] {
        for entry in std::fs::read_dir(root.join(parent)).unwrap() {
            let manifest = entry.unwrap().path().join("Cargo.toml");
            if manifest.is_file() {
                out.push(manifest);
            }
        }
    }
    out.sort();
    out
}

/// Whether the first thing in a crate root (after inner attributes) is a
/// `//!` doc comment.
fn starts_with_crate_doc(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("#!["))
        .is_some_and(|l| l.starts_with("//!"))
}

/// The text of a Markdown section: from its heading to the next heading of
/// the same level.
fn section<'a>(doc: &'a str, heading: &str) -> Option<&'a str> {
    let start = doc.find(&format!("{heading}\n"))? + heading.len();
    let rest = &doc[start..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    Some(&rest[..end])
}

// ---------------------------------------------------------------------------
// A small TOML reader: tables, dotted keys, strings, booleans, numbers,
// arrays and inline tables (what Cargo manifests use); anything else panics.

#[derive(Debug, Clone)]
enum Toml {
    Str(String),
    Bool(bool),
    /// A number, integer or float (its value is never needed).
    Number,
    Array(Vec<Toml>),
    Table(BTreeMap<String, Toml>),
}

impl Toml {
    fn as_str(&self) -> Option<&str> {
        match self {
            Toml::Str(s) => Some(s),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Toml::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn as_table(&self) -> Option<&BTreeMap<String, Toml>> {
        match self {
            Toml::Table(t) => Some(t),
            _ => None,
        }
    }
    fn get(&self, key: &str) -> Option<&Toml> {
        self.as_table()?.get(key)
    }
}

/// A parsed manifest.
struct Manifest(BTreeMap<String, Toml>);

impl Manifest {
    fn read(path: &Path) -> Manifest {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        std::panic::catch_unwind(|| Manifest::parse(&text))
            .unwrap_or_else(|_| panic!("{}: not understood (see the panic above)", path.display()))
    }

    fn get(&self, path: &[&str]) -> Option<&Toml> {
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(self.0.get(*first)?, |v, k| v.get(k))
    }

    fn parse(text: &str) -> Manifest {
        let mut root = BTreeMap::new();
        let mut current: Vec<String> = Vec::new();
        let mut p = Parser {
            chars: text.chars().collect(),
            pos: 0,
        };
        loop {
            p.skip_blank_lines();
            let Some(c) = p.peek() else { break };
            if c == '[' {
                let array = p.eat_str("[[");
                if !array {
                    p.expect('[');
                }
                current = p.key();
                p.expect(']');
                if array {
                    p.expect(']');
                    // Arrays of tables ([[bin]], [[test]]) hold no dependencies:
                    // each is read into a fresh table of its own.
                    let last = current.pop().unwrap();
                    let parent = table_at(&mut root, &current);
                    let Toml::Array(items) = parent
                        .entry(last.clone())
                        .or_insert_with(|| Toml::Array(Vec::new()))
                    else {
                        panic!("[[{last}]] is also a plain key");
                    };
                    items.push(Toml::Table(BTreeMap::new()));
                    current.push(format!("{last}#{}", items.len()));
                }
            } else {
                let key = p.key();
                p.expect('=');
                let value = p.value();
                let mut path = current.clone();
                path.extend(key);
                let last = path.pop().unwrap();
                table_at(&mut root, &path).insert(last, value);
            }
            p.end_of_line();
        }
        Manifest(root)
    }
}

/// The table at `path`, created on demand (`name#n` = the n-th table of the
/// array `name`).
fn table_at<'a>(
    root: &'a mut BTreeMap<String, Toml>,
    path: &[String],
) -> &'a mut BTreeMap<String, Toml> {
    let mut table = root;
    for key in path {
        let slot = match key.split_once('#') {
            Some((array, n)) => match table.get_mut(array) {
                Some(Toml::Array(items)) => &mut items[n.parse::<usize>().unwrap() - 1],
                _ => panic!("no array of tables {array}"),
            },
            None => table
                .entry(key.clone())
                .or_insert_with(|| Toml::Table(BTreeMap::new())),
        };
        let Toml::Table(t) = slot else {
            panic!("{key} is not a table");
        };
        table = t;
    }
    table
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat_str(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars[self.pos..].iter().take(n).copied().eq(s.chars()) {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace, newlines and comments (inside arrays and between lines).
    fn skip_blank_lines(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\n') => self.pos += 1,
                Some('#') => {
                    while !matches!(self.peek(), None | Some('\n')) {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn expect(&mut self, c: char) {
        self.skip_spaces();
        assert_eq!(self.peek(), Some(c), "expected `{c}` at char {}", self.pos);
        self.pos += 1;
        self.skip_spaces();
    }

    fn end_of_line(&mut self) {
        self.skip_spaces();
        if self.peek() == Some('#') {
            self.skip_blank_lines();
            return;
        }
        assert!(
            matches!(self.peek(), None | Some('\n' | '\r')),
            "unexpected text at char {}",
            self.pos
        );
    }

    /// A dotted key: `a`, `a.b`, `"a b".c`, `target.'cfg(unix)'.dependencies`.
    fn key(&mut self) -> Vec<String> {
        let mut parts = Vec::new();
        loop {
            self.skip_spaces();
            let part = match self.peek() {
                Some('"' | '\'') => self.string(),
                _ => {
                    let start = self.pos;
                    while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    {
                        self.pos += 1;
                    }
                    assert!(self.pos > start, "expected a key at char {}", self.pos);
                    self.chars[start..self.pos].iter().collect()
                }
            };
            parts.push(part);
            self.skip_spaces();
            if self.peek() != Some('.') {
                return parts;
            }
            self.pos += 1;
        }
    }

    fn string(&mut self) -> String {
        let quote = self.peek().unwrap();
        assert!(
            !self.eat_str(&quote.to_string().repeat(3)),
            "multi-line strings are not supported (char {})",
            self.pos
        );
        self.pos += 1;
        let mut s = String::new();
        loop {
            let c = self.peek().expect("unterminated string");
            self.pos += 1;
            match c {
                c if c == quote => return s,
                '\\' if quote == '"' => {
                    let e = self.peek().expect("unterminated escape");
                    self.pos += 1;
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        '"' | '\\' => e,
                        _ => panic!("escape \\{e} is not supported"),
                    });
                }
                c => s.push(c),
            }
        }
    }

    fn value(&mut self) -> Toml {
        self.skip_spaces();
        match self.peek() {
            Some('"' | '\'') => Toml::Str(self.string()),
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_blank_lines();
                    if self.peek() == Some(']') {
                        self.pos += 1;
                        return Toml::Array(items);
                    }
                    items.push(self.value());
                    self.skip_blank_lines();
                    if self.peek() == Some(',') {
                        self.pos += 1;
                    }
                }
            }
            Some('{') => {
                self.pos += 1;
                let mut table = BTreeMap::new();
                loop {
                    self.skip_spaces();
                    if self.peek() == Some('}') {
                        self.pos += 1;
                        return Toml::Table(table);
                    }
                    let mut key = self.key();
                    self.expect('=');
                    let value = self.value();
                    let last = key.pop().unwrap();
                    table_at(&mut table, &key).insert(last, value);
                    self.skip_spaces();
                    if self.peek() == Some(',') {
                        self.pos += 1;
                    }
                }
            }
            _ => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || "+-._:".contains(c))
                {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "true" => Toml::Bool(true),
                    "false" => Toml::Bool(false),
                    w if w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') => {
                        Toml::Number
                    }
                    _ => panic!("unsupported value at char {start}: {word:?}"),
                }
            }
        }
    }
}

#[test]
fn the_manifest_reader_understands_the_forms_manifests_use() {
    let m = Manifest::parse(
        r#"
# a comment
[package]
name = "x" # trailing comment
version.workspace = true

[[test]]
name = "cli"
path = "../../tests/cli.rs"

[dependencies]
a = "1"
b = { version = "0.8", default-features = false, features = ["json", "rustls-tls"] }
c.workspace = true
d = { workspace = true, features = ["rt"] }
e = { package = "real-e", version = "2" }
m = [
  "multi", # with comments
  "line",
]

[target.'cfg(unix)'.dev-dependencies]
f = "3"
"#,
    );
    assert_eq!(
        m.get(&["package", "name"]).and_then(Toml::as_str),
        Some("x")
    );
    assert!(
        matches!(m.get(&["dependencies", "b", "features"]), Some(Toml::Array(f)) if f.len() == 2)
    );
    assert_eq!(
        m.get(&["dependencies", "c", "workspace"])
            .and_then(Toml::as_bool),
        Some(true)
    );
    assert_eq!(
        m.get(&["dependencies", "e", "package"])
            .and_then(Toml::as_str),
        Some("real-e")
    );
    assert!(matches!(m.get(&["dependencies", "m"]), Some(Toml::Array(v)) if v.len() == 2));
    assert!(m
        .get(&["target", "cfg(unix)", "dev-dependencies", "f"])
        .is_some());
    assert!(matches!(m.get(&["test"]), Some(Toml::Array(t)) if t.len() == 1));
}
