//! The rule of imports (docs/architecture.md): the core's modules form layers, and a module's code
//! (unit tests aside) names only modules of lower layers. A new import that breaks the rule fails
//! here with the file, the line and the two modules.

use std::path::{Path, PathBuf};

/// Lowest first. Modules in one layer do not import each other.
const LAYERS: &[&[&str]] = &[
    &["types"],
    &["error"],
    &["hash", "fs"],
    &["request"],
    &["completion", "catalog"],
    &["state"],
    &["classify"],
    &["cost"],
    &["policy"],
    &["limits"],
    &["provider"],
    &["execute"],
    &["router", "wire"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read `{}`: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate-level modules a line of code names: `crate::x::…` paths, and the members of a
/// `use crate::{x::…, y}` group (`group` carries an open group across lines).
fn named(line: &str, group: &mut bool, out: &mut Vec<String>) {
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(inner) = after.strip_prefix('{') {
            *group = true;
            rest = inner;
            break;
        }
        let ident: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        out.push(ident);
        rest = after;
    }
    if *group {
        for part in rest.split(',') {
            let part = part.trim().trim_start_matches('{');
            let ident: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            // A module path, or an item taken from the root (which the caller refuses).
            if !ident.is_empty() && (part[ident.len()..].starts_with("::") || ident.starts_with(char::is_uppercase)) {
                out.push(ident);
            }
        }
        if rest.contains("};") {
            *group = false;
        }
    }
}

#[test]
fn every_module_imports_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    all.sort();
    let mut violations = Vec::new();
    for path in &all {
        let rel = path.strip_prefix(&src).expect("under src");
        let Some(module) = rel.iter().next().and_then(|m| m.to_str()).map(|m| m.trim_end_matches(".rs")) else {
            continue;
        };
        if module == "lib" {
            continue;
        }
        let Some(own) = layer(module) else {
            violations.push(format!("{}: module `{module}` is in no layer", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
        let mut group = false;
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("#[cfg(test)]") {
                break;
            }
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let mut names = Vec::new();
            named(code, &mut group, &mut names);
            for name in names {
                if name == module || name.is_empty() {
                    continue;
                }
                if name.starts_with(char::is_uppercase) {
                    violations.push(format!(
                        "{}:{}: `crate::{name}` goes through the root; name the module it lives in",
                        rel.display(),
                        n + 1
                    ));
                    continue;
                }
                match layer(&name) {
                    Some(l) if l < own => {}
                    Some(_) => violations.push(format!(
                        "{}:{}: `{module}` imports `{name}`, which is not in a lower layer",
                        rel.display(),
                        n + 1
                    )),
                    None => {}
                }
            }
        }
    }
    assert!(violations.is_empty(), "imports against the layers:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_paths_and_groups() {
    let mut group = false;
    let mut out = Vec::new();
    named("use crate::policy::{Decision, Observer};", &mut group, &mut out);
    named("use crate::{", &mut group, &mut out);
    named("    catalog::ModelId, error::Error,", &mut group, &mut out);
    named("    Request,", &mut group, &mut out);
    named("};", &mut group, &mut out);
    named("let x = crate::hash::uniform(None, 0);", &mut group, &mut out);
    assert_eq!(out, ["policy", "catalog", "error", "Request", "hash"]);
    assert!(!group);
}
