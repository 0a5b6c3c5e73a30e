//! The module import graph of the layered crates has no cycle: every `crate::x` a module names outside its
//! `#[cfg(test)]` part (imports, paths, doc links) points to a module that does not name it back, directly or
//! through others. Each crate's `lib.rs` lists its layers; this keeps that list true.

use dvsan_tests::repo_root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crates whose module maps promise one-way imports.
const LAYERED: &[&str] = &["blockd", "front", "nbd", "routing", "snmp", "station", "tui"];

/// Top-level module of each source file of `src` (a folder module counts as one) → modules it names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let first = rel.components().next().expect("a file").as_os_str().to_string_lossy().into_owned();
            let module = first.trim_end_matches(".rs").to_string();
            if matches!(module.as_str(), "lib" | "main" | "bin") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let named = graph.entry(module.clone()).or_default();
            named.extend(crate_paths(code).into_iter().filter(|m| *m != module));
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for named in graph.values_mut() {
        named.retain(|m| modules.contains(m));
    }
    graph
}

/// The first segment of every `crate::` path in `code`, including each member of `crate::{a, b::c}`.
fn crate_paths(code: &str) -> Vec<String> {
    let ident =
        |s: &str| -> String { s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // e.g. `dvsan_crate::`
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            found.extend(inner.split(',').map(ident).filter(|m| !m.is_empty()));
        } else {
            found.push(ident(rest));
        }
    }
    found.retain(|m| m.starts_with(|c: char| c.is_ascii_lowercase() || c == '_'));
    found
}

/// Some cycle of `graph` as a path of modules (first = last), if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == m) {
            let mut cycle = path[start..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn layered_crates_import_one_way() {
    for krate in LAYERED {
        let graph = module_graph(&repo_root().join(krate).join("src"));
        assert!(graph.len() > 3, "{krate}: found only {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{krate}: module import cycle {}; see the module map in {krate}/src/lib.rs", cycle.join(" → "));
        }
    }
}

#[test]
fn the_graph_sees_plain_grouped_and_doc_link_paths() {
    let code = "use crate::a::X;\nuse crate::{b, c::Y};\n//! see [`crate::d`]\nlet _ = dvsan_crate::e;\n";
    assert_eq!(crate_paths(code), ["a", "b", "c", "d"]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
    graph.get_mut("c").expect("c").insert("a".to_string());
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}
