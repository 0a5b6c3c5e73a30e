//! `dvsan-station routes solve`: the routing-map optimizer ([`dvsan_routing`]) run on a problem file. Reads and
//! checks the file (a malformed or invalid file gets an error naming the entry), solves it and renders the
//! answer as the fixed JSON format (`{"routes": [{"host", "storage", "gateway"}, …], "objective", "variance",
//! "changes", "lower_bound", "gap", "method"}`) or as tables for people. No station state: it works on the file
//! alone. Imports only [`crate::view`] (its table) from this crate.

use crate::view::Table;
use dvsan_routing::{solve, Problem, ProblemError, RouteInput, RoutesInput, Solution, SolveOptions, SolveOutput};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a problem file could not be solved.
#[derive(Debug, Error)]
pub enum RoutesFileError {
    // The causes are part of the message (no `source`), so `{:#}` does not print them twice.
    #[error("{}: cannot read it: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{}: not JSON (line {line}, column {column}): {message}", path.display())]
    Json { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{}: not a routes problem: {message}", path.display())]
    Shape { path: PathBuf, message: String },
    #[error("{}: {error}", path.display())]
    Invalid { path: PathBuf, error: ProblemError },
}

/// A file's problem and its solution.
#[derive(Debug, Clone)]
pub struct Solved {
    pub problem: Problem,
    pub solution: Solution,
    pub output: SolveOutput,
}

/// serde_json's message without its trailing " at line L column C".
fn bare_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) if e.line() > 0 => message.to_string(),
        _ => text,
    }
}

/// The route entry a structural error is about (`routes[3] (h1 → s2)`), found by reading each route alone.
fn failing_route(value: &serde_json::Value) -> Option<(String, String)> {
    let routes = value.get("routes")?.as_array()?;
    routes.iter().enumerate().find_map(|(i, route)| {
        let e = serde_json::from_value::<RouteInput>(route.clone()).err()?;
        let name = |field: &str| route.get(field).and_then(|v| v.as_str()).unwrap_or("?").to_string();
        Some((format!("routes[{i}] ({} → {})", name("host"), name("storage")), bare_message(&e)))
    })
}

/// Parses a problem file's text (`path` only names it in errors).
pub fn parse_input(path: &Path, text: &str) -> Result<Problem, RoutesFileError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| RoutesFileError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: bare_message(&e),
    })?;
    let input: RoutesInput = serde_json::from_value(value.clone()).map_err(|e| {
        let message = match failing_route(&value) {
            Some((route, message)) => format!("{route}: {message}"),
            None => bare_message(&e),
        };
        RoutesFileError::Shape { path: path.to_path_buf(), message }
    })?;
    Problem::from_input(&input).map_err(|error| RoutesFileError::Invalid { path: path.to_path_buf(), error })
}

/// Reads, checks and solves the problem in `path`.
pub fn solve_file(path: &Path, options: &SolveOptions) -> Result<Solved, RoutesFileError> {
    let text =
        std::fs::read_to_string(path).map_err(|error| RoutesFileError::Read { path: path.to_path_buf(), error })?;
    let problem = parse_input(path, &text)?;
    let solution = solve(&problem, options);
    let output = dvsan_routing::solve::output(&problem, &solution);
    Ok(Solved { problem, solution, output })
}

/// `routes solve`: solves `path` and renders the answer as JSON or tables.
pub fn solve_command(path: &Path, options: &SolveOptions, json: bool) -> Result<String, RoutesFileError> {
    let solved = solve_file(path, options)?;
    Ok(if json { render_json(&solved) } else { render_table(&solved) })
}

/// The answer as one JSON object and a newline.
pub fn render_json(solved: &Solved) -> String {
    // Serialising plain strings and finite numbers cannot fail; non-finite numbers would print as null.
    serde_json::to_string(&solved.output).unwrap_or_default() + "\n"
}

/// The answer for people: the map (what moves), the gateways' loads, and the objective.
pub fn render_table(solved: &Solved) -> String {
    let Solved { problem, solution, output } = solved;
    let mut routes = Table::new(&[
        ("HOST", false),
        ("STORAGE", false),
        ("TRAFFIC", true),
        ("GATEWAY", false),
        ("WAS", false),
        ("", false),
    ]);
    for (route, g) in problem.routes.iter().zip(&solution.routes) {
        let was = route.current.map_or("-".to_string(), |c| problem.gateways[c.index()].clone());
        let moved = if route.current.is_some_and(|c| c != *g) { "moves" } else { "" };
        routes.row(vec![
            route.host.clone(),
            route.storage.clone(),
            format!("{:.2}", route.traffic),
            problem.gateways[g.index()].clone(),
            was,
            moved.to_string(),
        ]);
    }
    let k = problem.k();
    let mut loads = vec![0.0; k];
    let mut counts = vec![0usize; k];
    for (route, g) in problem.routes.iter().zip(&solution.routes) {
        loads[g.index()] += route.traffic;
        counts[g.index()] += 1;
    }
    let mean = problem.total_traffic / k as f64;
    let mut gateways = Table::new(&[("GATEWAY", false), ("ROUTES", true), ("TRAFFIC", true), ("OF MEAN", true)]);
    for (g, name) in problem.gateways.iter().enumerate() {
        let share = if mean > 0.0 { format!("{:.1}%", 100.0 * loads[g] / mean) } else { "-".to_string() };
        gateways.row(vec![name.clone(), counts[g].to_string(), format!("{:.2}", loads[g]), share]);
    }
    format!(
        "{}\n{}\nobjective {:.6} (variance {:.6}, {} changes), lower bound {:.6}, gap {:.2}%, found by {}{}\n",
        routes.render(),
        gateways.render(),
        output.objective,
        output.variance,
        output.changes,
        output.lower_bound,
        100.0 * output.gap,
        output.method,
        if solution.optimal { " (optimal)" } else { "" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_entry() {
        let path = Path::new("r.json");
        let e =
            parse_input(path, r#"{"gateways": ["g1"], "routes": [{"host": "h1", "storage": "s1", "traffic": -1}]}"#)
                .expect_err("negative traffic");
        assert_eq!(e.to_string(), "r.json: routes[0] (h1 → s1): traffic is -1; give a finite number ≥ 0");
        let e = parse_input(path, "{\"gateways\": [\"g1\"],\n \"routes\": [}").expect_err("malformed");
        assert!(e.to_string().starts_with("r.json: not JSON (line 2, column "), "{e}");
        let e = parse_input(
            path,
            r#"{"gateways": ["g1"], "routes": [{"host": "h1", "storage": "s1", "traffic": 1},
            {"host": "h2", "storage": "s1", "traffic": "lots"}]}"#,
        )
        .expect_err("a string for traffic");
        assert_eq!(
            e.to_string(),
            r#"r.json: not a routes problem: routes[1] (h2 → s1): invalid type: string "lots", expected f64"#
        );
    }
}
