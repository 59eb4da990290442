//! Embeds the official framework app (`elements/`) and the schemas
//! (`schemas/`) so a host needs no files beside its own app.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, base, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            let rel = p
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, p.canonicalize().unwrap()));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../..");
    let mut code = String::new();
    for (name, sub) in [("FRAMEWORK_FILES", "elements"), ("SCHEMA_FILES", "schemas")] {
        let dir = root.join(sub);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        collect(&dir, &dir, &mut files);
        writeln!(
            code,
            "/// Embedded `{sub}/` files: (relative path, contents)."
        )
        .unwrap();
        writeln!(code, "pub static {name}: &[(&str, &str)] = &[").unwrap();
        for (rel, abs) in files {
            println!("cargo:rerun-if-changed={}", abs.display());
            writeln!(
                code,
                "    ({rel:?}, include_str!({:?})),",
                abs.display().to_string()
            )
            .unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("embedded.rs");
    std::fs::write(out, code).unwrap();
}
