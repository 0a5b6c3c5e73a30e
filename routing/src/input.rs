//! The file formats of `dvsan-station routes solve` (fixed: scripts depend on them), as serde types: the
//! problem ([`RoutesInput`]) and the answer ([`SolveOutput`]). Plain values; the problem module checks them.
//!
//! Input: `{"gateways": ["g1", …], "w_var": 1.0, "w_change": 10.0, "one_gateway_per_storage": false,
//! "routes": [{"host": "h1", "storage": "s1", "traffic": 120.5, "gateway": "g1", "allowed": ["g1", "g2"]}, …]}`
//! where `gateway` (the current route) and `allowed` (default: every gateway) are optional, `w_var` defaults to 1,
//! `w_change` to 0 and `one_gateway_per_storage` to false. Unknown fields are refused (a misspelt `allowed` would
//! otherwise be ignored silently).
//!
//! Output: `{"routes": [{"host", "storage", "gateway"}, …], "objective", "variance", "changes", "lower_bound",
//! "method"}` plus `"gap"` (objective − lower bound, relative to the objective; 0 when proved optimal), routes in
//! input order.

use serde::{Deserialize, Serialize};

fn one() -> f64 {
    1.0
}

/// A routing problem as read from a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesInput {
    /// The gateways' names, each once.
    pub gateways: Vec<String>,
    /// Weight of the variance of the gateways' traffic.
    #[serde(default = "one")]
    pub w_var: f64,
    /// Weight of each route that changes gateway.
    #[serde(default)]
    pub w_change: f64,
    /// All routes of a storage entity use one gateway (address mode).
    #[serde(default)]
    pub one_gateway_per_storage: bool,
    /// The routes, each (host, storage) once.
    pub routes: Vec<RouteInput>,
}

/// One host → storage-entity route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    pub host: String,
    pub storage: String,
    /// The route's traffic over the interval (any non-negative unit, e.g. bytes/s).
    pub traffic: f64,
    /// The gateway carrying it now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The gateways that may carry it (reach both its host and its storage entity); default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
}

/// The optimizer's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveOutput {
    /// Every input route with its gateway, in input order.
    pub routes: Vec<RouteAssignment>,
    /// `w_var · variance + w_change · changes`.
    pub objective: f64,
    /// Population variance of the gateways' summed traffic.
    pub variance: f64,
    /// Routes whose gateway differs from their current one (routes without one do not count).
    pub changes: u64,
    /// A lower bound on the objective of any map (equal to `objective` when the search proved it optimal).
    pub lower_bound: f64,
    /// `(objective − lower_bound) / objective` (0 when the objective is 0).
    pub gap: f64,
    /// What found the map: `exhaustive`, `greedy`, `current`, `local-search`, `annealing` or `tabu`.
    pub method: String,
}

/// A route and the gateway the map gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteAssignment {
    pub host: String,
    pub storage: String,
    pub gateway: String,
}
