//! Exact search: depth-first branch-and-bound over the units (largest first), each placed on each of its allowed
//! gateways (least-loaded first). A node is cut when the water-filled variance of its partial loads plus the
//! changes it has made and those the remaining units cannot avoid is no better than the best map so far.
//! Gateways that are interchangeable (same allowed column and same change costs for every unit) are tried only
//! once while empty, which removes the k! relabellings of the same map. Builds on [`crate::objective`] and
//! [`crate::bound`].

use crate::bound::waterfill_variance;
use crate::ids::GatewayId;
use crate::objective::evaluate;
use crate::problem::Problem;

/// The result of an exact search.
#[derive(Debug, Clone, PartialEq)]
pub struct Exact {
    /// The best map found (unit → gateway).
    pub assign: Vec<GatewayId>,
    pub objective: f64,
    /// Whether the search finished, which proves `assign` optimal.
    pub complete: bool,
    /// Nodes visited.
    pub nodes: u64,
}

struct Search<'p> {
    problem: &'p Problem,
    order: Vec<usize>,
    /// remaining[i]: traffic of the units order[i..].
    remaining: Vec<f64>,
    /// forced[i]: least changes the units order[i..] must make.
    forced: Vec<f64>,
    class: Vec<usize>,
    loads: Vec<f64>,
    counts: Vec<u32>,
    assign: Vec<GatewayId>,
    best: Vec<GatewayId>,
    best_objective: f64,
    nodes: u64,
    node_limit: u64,
    aborted: bool,
    scratch: Vec<f64>,
    stop: &'p mut dyn FnMut() -> bool,
}

/// Searches `problem` exactly, starting from the bound `incumbent` (a known map, or `None`), visiting at most
/// `node_limit` nodes and asking `stop` every 4096 nodes whether to give up.
pub fn branch_and_bound(
    problem: &Problem,
    incumbent: Option<&[GatewayId]>,
    node_limit: u64,
    stop: &mut dyn FnMut() -> bool,
) -> Exact {
    let n = problem.units.len();
    let k = problem.k();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| problem.units[b].traffic.total_cmp(&problem.units[a].traffic).then(a.cmp(&b)));
    let mut remaining = vec![0.0; n + 1];
    let mut forced = vec![0.0; n + 1];
    for i in (0..n).rev() {
        let u = &problem.units[order[i]];
        remaining[i] = remaining[i + 1] + u.traffic;
        let least = u.allowed_list.iter().map(|g| u.changes[g.index()]).min().unwrap_or(0);
        forced[i] = forced[i + 1] + f64::from(least);
    }
    // Interchangeable gateways: equal (allowed, changes) columns.
    let column =
        |g: usize| -> Vec<(bool, u32)> { problem.units.iter().map(|u| (u.allowed[g], u.changes[g])).collect() };
    let columns: Vec<Vec<(bool, u32)>> = (0..k).map(column).collect();
    let class: Vec<usize> = (0..k).map(|g| (0..=g).find(|&h| columns[h] == columns[g]).unwrap_or(g)).collect();
    let (best, best_objective) = match incumbent {
        Some(map) => (map.to_vec(), evaluate(problem, map).objective),
        None => (Vec::new(), f64::INFINITY),
    };
    let mut search = Search {
        problem,
        order,
        remaining,
        forced,
        class,
        loads: vec![0.0; k],
        counts: vec![0; k],
        assign: vec![GatewayId(0); n],
        best,
        best_objective,
        nodes: 0,
        node_limit,
        aborted: false,
        scratch: Vec::with_capacity(k),
        stop,
    };
    search.visit(0, 0.0);
    let objective = if search.best.is_empty() { f64::INFINITY } else { evaluate(problem, &search.best).objective };
    Exact { assign: search.best, objective, complete: !search.aborted, nodes: search.nodes }
}

impl Search<'_> {
    fn tolerance(&self) -> f64 {
        1e-12 * self.best_objective.abs().max(1.0)
    }

    fn visit(&mut self, depth: usize, changes: f64) {
        if self.aborted {
            return;
        }
        self.nodes += 1;
        if self.nodes > self.node_limit || (self.nodes.is_multiple_of(4096) && (self.stop)()) {
            self.aborted = true;
            return;
        }
        let w = self.problem.weights;
        if depth == self.order.len() {
            let objective = w.var * crate::objective::variance(&self.loads) + w.change * changes;
            if objective < self.best_objective - self.tolerance() || self.best.is_empty() {
                self.best_objective = objective;
                self.best = self.assign.clone();
            }
            return;
        }
        let bound = w.var * waterfill_variance(&self.loads, self.remaining[depth], &mut self.scratch)
            + w.change * (changes + self.forced[depth]);
        if bound >= self.best_objective - self.tolerance() {
            return;
        }
        let u = self.order[depth];
        let unit = &self.problem.units[u];
        let mut choices: Vec<GatewayId> = Vec::with_capacity(unit.allowed_list.len());
        for &g in &unit.allowed_list {
            let gi = g.index();
            // An empty gateway stands for every empty gateway of its class: try the first one only.
            if self.counts[gi] == 0
                && choices.iter().any(|c| self.counts[c.index()] == 0 && self.class[c.index()] == self.class[gi])
            {
                continue;
            }
            choices.push(g);
        }
        choices.sort_by(|a, b| self.loads[a.index()].total_cmp(&self.loads[b.index()]).then(a.cmp(b)));
        for g in choices {
            let gi = g.index();
            self.loads[gi] += unit.traffic;
            self.counts[gi] += 1;
            self.assign[u] = g;
            self.visit(depth + 1, changes + f64::from(unit.changes[gi]));
            self.loads[gi] -= unit.traffic;
            self.counts[gi] -= 1;
            if self.aborted {
                return;
            }
        }
    }
}
