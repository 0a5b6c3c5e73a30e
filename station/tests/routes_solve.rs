//! `dvsan-station routes solve` run as a process on problem files: the JSON answer's fields for a valid file
//! (a small one solved exactly, a larger one searched with a fixed number of steps, the same twice), the table
//! for people, and each kind of invalid file refused with an error naming the entry and a non-zero status.

use dvsan_tests::{run_fails, run_ok, timed, workspace_bin};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn station() -> Command {
    let mut cmd = timed(workspace_bin("dvsan-station").to_str().expect("utf-8 path"), Duration::from_secs(60));
    cmd.args(["routes", "solve"]);
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write problem file");
    path
}

fn solve_json(path: &Path, extra: &[&str]) -> Value {
    let out = run_ok(station().arg("--input").arg(path).arg("--json").args(extra));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn small_problem_is_solved_exactly_with_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let problem = json!({
        "gateways": ["g1", "g2", "g3"], "w_var": 1.0, "w_change": 10.0, "one_gateway_per_storage": false,
        "routes": [
            {"host": "h1", "storage": "s1", "traffic": 120.5, "gateway": "g1", "allowed": ["g1", "g2"]},
            {"host": "h1", "storage": "s2", "traffic": 80, "gateway": "g1"},
            {"host": "h2", "storage": "s1", "traffic": 40},
            {"host": "h2", "storage": "s2", "traffic": 30, "gateway": "g3", "allowed": ["g3"]}
        ]
    });
    let path = write(dir.path(), "small.json", &problem.to_string());
    let answer = solve_json(&path, &[]);
    let routes = answer["routes"].as_array().expect("routes");
    let pairs: Vec<(&str, &str)> =
        routes.iter().map(|r| (r["host"].as_str().unwrap_or(""), r["storage"].as_str().unwrap_or(""))).collect();
    assert_eq!(pairs, [("h1", "s1"), ("h1", "s2"), ("h2", "s1"), ("h2", "s2")], "input order: {answer}");
    let gateways: Vec<&str> = routes.iter().map(|r| r["gateway"].as_str().expect("gateway")).collect();
    // Loads {120.5, 80, 70} with one change is the optimum here: 120.5 stays, 80 moves to g2, 40 and 30 on g3.
    assert_eq!(gateways, ["g1", "g2", "g3", "g3"], "{answer}");
    let mean: f64 = (120.5 + 80.0 + 70.0) / 3.0;
    let variance = [120.5f64, 80.0, 70.0].iter().map(|l| (l - mean).powi(2)).sum::<f64>() / 3.0;
    assert!((answer["variance"].as_f64().expect("variance") - variance).abs() < 1e-9, "{answer}");
    assert_eq!(answer["changes"], 1);
    assert!((answer["objective"].as_f64().expect("objective") - (variance + 10.0)).abs() < 1e-9);
    assert_eq!(answer["method"], "exhaustive");
    assert_eq!(answer["lower_bound"], answer["objective"], "proved optimal: {answer}");
    assert_eq!(answer["gap"], 0.0);

    let table = run_ok(station().arg("--input").arg(&path));
    assert!(table.contains("HOST") && table.contains("OF MEAN"), "{table}");
    assert!(table.contains("moves") && table.contains("found by exhaustive (optimal)"), "{table}");
}

#[test]
fn larger_problem_with_iterations_is_reproducible_and_constrained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateways = ["g1", "g2", "g3", "g4"];
    // Over 1000 routes: the heuristics alone (no branch-and-bound proof attempt), quick in a debug build.
    let routes: Vec<Value> = (0..1100)
        .map(|i| {
            let mut route = json!({"host": format!("h{}", i / 12), "storage": format!("s{}", i % 12),
                                   "traffic": f64::from((i * 7919) % 1000) + 0.5});
            if i % 3 == 0 {
                route["gateway"] = json!(gateways[i as usize % 4]);
            }
            if i % 5 == 0 {
                route["allowed"] = json!([gateways[i as usize % 4], gateways[(i as usize + 1) % 4]]);
            }
            route
        })
        .collect();
    let problem = json!({"gateways": gateways, "w_var": 1.0, "w_change": 500.0, "routes": routes});
    let path = write(dir.path(), "larger.json", &problem.to_string());
    let a = solve_json(&path, &["--iterations", "20000", "--seed", "7"]);
    let b = solve_json(&path, &["--iterations", "20000", "--seed", "7"]);
    assert_eq!(a, b, "same seed and steps, same answer");
    for (i, route) in a["routes"].as_array().expect("routes").iter().enumerate() {
        if i % 5 == 0 {
            let allowed = [gateways[i % 4], gateways[(i + 1) % 4]];
            assert!(allowed.contains(&route["gateway"].as_str().expect("gateway")), "routes[{i}]: {route}");
        }
    }
    let lower = a["lower_bound"].as_f64().expect("lower_bound");
    let objective = a["objective"].as_f64().expect("objective");
    assert!(lower <= objective, "lower bound {lower} above objective {objective}");
    assert!(["greedy", "current", "local-search", "annealing", "tabu", "exhaustive"]
        .contains(&a["method"].as_str().expect("method")));
    // With a time budget it answers too (within the process limit), a complete map.
    let timed = solve_json(&path, &["--time-budget", "200ms"]);
    assert_eq!(timed["routes"].as_array().map(Vec::len), Some(1100));
    assert!(timed["objective"].as_f64().is_some_and(|o| o >= lower), "objective {}", timed["objective"]);
}

#[test]
fn one_gateway_per_storage_keeps_each_storage_on_one_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let routes: Vec<Value> = (0..12)
        .map(|i| json!({"host": format!("h{}", i % 4), "storage": format!("s{}", i % 3), "traffic": 10 + i}))
        .collect();
    let problem = json!({"gateways": ["g1", "g2"], "one_gateway_per_storage": true, "routes": routes});
    let answer = solve_json(&write(dir.path(), "address.json", &problem.to_string()), &[]);
    let mut by_storage = std::collections::BTreeMap::new();
    for route in answer["routes"].as_array().expect("routes") {
        let gateway = by_storage.entry(route["storage"].to_string()).or_insert(route["gateway"].clone());
        assert_eq!(*gateway, route["gateway"], "{answer}");
    }
}

#[test]
fn invalid_files_are_refused_naming_the_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let route = |extra: &str| format!(r#"{{"host": "h1", "storage": "s2", "traffic": 5{extra}}}"#);
    let ok = route("");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown gateway",
            format!(
                r#"{{"gateways": ["g1", "g2"], "routes": [{ok}, {}]}}"#,
                route(r#", "gateway": "g9""#).replace("s2", "s3")
            ),
            r#"routes[1] (h1 → s3): gateway names unknown gateway "g9"; the gateways are g1, g2"#,
        ),
        (
            "unknown allowed gateway",
            format!(r#"{{"gateways": ["g1", "g2"], "routes": [{}]}}"#, route(r#", "allowed": ["g1", "gx"]"#)),
            r#"routes[0] (h1 → s2): allowed names unknown gateway "gx""#,
        ),
        (
            "negative traffic",
            r#"{"gateways": ["g1"], "routes": [{"host": "h1", "storage": "s2", "traffic": -3}]}"#.to_string(),
            "routes[0] (h1 → s2): traffic is -3; give a finite number ≥ 0",
        ),
        (
            "non-finite traffic",
            r#"{"gateways": ["g1"], "routes": [{"host": "h1", "storage": "s2", "traffic": 1e999}]}"#.to_string(),
            "not JSON (line 1, column 80): number out of range",
        ),
        (
            "empty allowed",
            format!(
                r#"{{"gateways": ["g1", "g2", "g3"], "routes": [{ok}, {ok2}, {ok3}, {bad}]}}"#,
                ok2 = ok.replace("s2", "s4"),
                ok3 = ok.replace("s2", "s5"),
                bad = route(r#", "allowed": []"#).replace("s2", "s6")
            ),
            "routes[3] (h1 → s6): allowed is empty; give at least one of g1, g2, g3 or leave it out",
        ),
        (
            "duplicate route",
            format!(r#"{{"gateways": ["g1"], "routes": [{ok}, {}, {ok}]}}"#, ok.replace("h1", "h2")),
            "routes[2] (h1 → s2): a duplicate of routes[0] (each host → storage route once)",
        ),
        ("no gateways", format!(r#"{{"gateways": [], "routes": [{ok}]}}"#), "no gateways"),
        (
            "malformed JSON",
            r#"{"gateways": ["g1"], "routes": [{"host": "h1",}]}"#.to_string(),
            "not JSON (line 1, column ",
        ),
        (
            "traffic not a number",
            format!(
                r#"{{"gateways": ["g1"], "routes": [{ok}, {}]}}"#,
                ok.replace("5", r#""high""#).replace("h1", "h3")
            ),
            r#"not a routes problem: routes[1] (h3 → s2): invalid type: string "high", expected f64"#,
        ),
        (
            "misspelt field",
            format!(r#"{{"gateways": ["g1"], "routes": [{}]}}"#, route(r#", "alowed": ["g1"]"#)),
            "not a routes problem: routes[0] (h1 → s2): unknown field `alowed`, expected one of",
        ),
        (
            "storage without a common gateway",
            r#"{"gateways": ["g1", "g2"], "one_gateway_per_storage": true, "routes": [
                {"host": "h1", "storage": "s1", "traffic": 1, "allowed": ["g1"]},
                {"host": "h2", "storage": "s1", "traffic": 1, "allowed": ["g2"]}]}"#
                .to_string(),
            r#"storage "s1": with one_gateway_per_storage its routes (routes[0] (h1 → s1), routes[1] (h2 → s1))"#,
        ),
        ("negative weight", format!(r#"{{"gateways": ["g1"], "w_change": -1, "routes": [{ok}]}}"#), "w_change is -1"),
    ];
    for (i, (what, text, expected)) in cases.iter().enumerate() {
        let path = write(dir.path(), &format!("bad{i}.json"), text);
        for json in [true, false] {
            let mut cmd = station();
            cmd.arg("--input").arg(&path);
            if json {
                cmd.arg("--json");
            }
            let output = cmd.output().expect("run dvsan-station");
            assert!(!output.status.success(), "{what}: accepted");
            assert!(output.stdout.is_empty(), "{what}: printed an answer");
            let err = String::from_utf8_lossy(&output.stderr);
            assert!(err.contains(&format!("{}: ", path.display())), "{what}: the file is not named: {err}");
            assert!(err.contains(expected), "{what}: expected {expected:?} in {err}");
        }
    }
    let missing = run_fails(station().arg("--input").arg(dir.path().join("none.json")).arg("--json"));
    assert!(missing.contains("none.json: cannot read it"), "{missing}");
    let budget = run_fails(station().arg("--input").arg(dir.path().join("bad0.json")).args(["--time-budget", "soon"]));
    assert!(budget.contains("is not a duration"), "{budget}");
}
