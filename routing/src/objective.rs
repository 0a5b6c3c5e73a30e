//! The objective `w_var · var(GatewayTraffic) + w_change · changes`, evaluated from scratch
//! ([`evaluate`], two-pass variance) and incrementally ([`SearchState`]: O(1) deltas for moving one unit or
//! swapping two, kept as Σ load² so that `var = Σ L²/k − (T/k)²`). Builds on [`crate::problem`].

use crate::ids::{GatewayId, UnitId};
use crate::problem::Problem;

/// Objective, variance and changes of one map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub objective: f64,
    pub variance: f64,
    pub changes: u64,
}

/// Population variance of `loads`.
pub fn variance(loads: &[f64]) -> f64 {
    if loads.is_empty() {
        return 0.0;
    }
    let k = loads.len() as f64;
    let mean = loads.iter().sum::<f64>() / k;
    loads.iter().map(|l| (l - mean) * (l - mean)).sum::<f64>() / k
}

/// The gateways' loads under `assign` (unit → gateway).
pub fn loads(problem: &Problem, assign: &[GatewayId]) -> Vec<f64> {
    let mut loads = vec![0.0; problem.k()];
    for (unit, g) in problem.units.iter().zip(assign) {
        loads[g.index()] += unit.traffic;
    }
    loads
}

/// Scores `assign` (unit → gateway) from scratch.
pub fn evaluate(problem: &Problem, assign: &[GatewayId]) -> Score {
    let variance = variance(&loads(problem, assign));
    let changes: u64 = problem.units.iter().zip(assign).map(|(u, g)| u64::from(u.changes[g.index()])).sum();
    let w = problem.weights;
    Score { objective: w.var * variance + w.change * changes as f64, variance, changes }
}

/// A complete map under search with its loads and objective, updated in O(1) per move or swap.
#[derive(Debug, Clone)]
pub struct SearchState<'p> {
    problem: &'p Problem,
    /// Unit → gateway.
    pub assign: Vec<GatewayId>,
    /// Gateway → summed traffic.
    pub loads: Vec<f64>,
    /// Units on each gateway.
    pub counts: Vec<u32>,
    sum_sq: f64,
    changes: u64,
    /// The objective, kept incrementally (see [`SearchState::resync`]).
    pub objective: f64,
}

impl<'p> SearchState<'p> {
    /// The state of the complete map `assign`.
    pub fn new(problem: &'p Problem, assign: Vec<GatewayId>) -> Self {
        let mut state = SearchState {
            problem,
            assign,
            loads: Vec::new(),
            counts: Vec::new(),
            sum_sq: 0.0,
            changes: 0,
            objective: 0.0,
        };
        state.resync();
        state
    }

    /// Recomputes everything from the map (removes rounding drift of the incremental updates).
    pub fn resync(&mut self) {
        let p = self.problem;
        self.loads = loads(p, &self.assign);
        self.counts = vec![0; p.k()];
        for g in &self.assign {
            self.counts[g.index()] += 1;
        }
        self.sum_sq = self.loads.iter().map(|l| l * l).sum();
        self.changes = p.units.iter().zip(&self.assign).map(|(u, g)| u64::from(u.changes[g.index()])).sum();
        self.objective = evaluate(p, &self.assign).objective;
    }

    fn var_scale(&self) -> f64 {
        self.problem.weights.var / self.problem.k() as f64
    }

    /// The change of the objective if unit `u` moved to gateway `to`.
    pub fn delta_move(&self, u: UnitId, to: GatewayId) -> f64 {
        let unit = &self.problem.units[u.index()];
        let from = self.assign[u.index()];
        if from == to {
            return 0.0;
        }
        let t = unit.traffic;
        let d_sq = 2.0 * t * (self.loads[to.index()] - self.loads[from.index()] + t);
        let d_changes = f64::from(unit.changes[to.index()]) - f64::from(unit.changes[from.index()]);
        self.var_scale() * d_sq + self.problem.weights.change * d_changes
    }

    /// Moves unit `u` to gateway `to`.
    pub fn apply_move(&mut self, u: UnitId, to: GatewayId) {
        let delta = self.delta_move(u, to);
        let unit = &self.problem.units[u.index()];
        let from = self.assign[u.index()];
        if from == to {
            return;
        }
        let t = unit.traffic;
        self.sum_sq += 2.0 * t * (self.loads[to.index()] - self.loads[from.index()] + t);
        self.loads[from.index()] -= t;
        self.loads[to.index()] += t;
        self.counts[from.index()] -= 1;
        self.counts[to.index()] += 1;
        self.changes = self.changes + u64::from(unit.changes[to.index()]) - u64::from(unit.changes[from.index()]);
        self.assign[u.index()] = to;
        self.objective += delta;
    }

    /// The change of the objective if units `u` and `v` (on different gateways) exchanged gateways.
    pub fn delta_swap(&self, u: UnitId, v: UnitId) -> f64 {
        let (pu, pv) = (&self.problem.units[u.index()], &self.problem.units[v.index()]);
        let (a, b) = (self.assign[u.index()], self.assign[v.index()]);
        if a == b {
            return 0.0;
        }
        // Gateway a gains d, b loses d.
        let d = pv.traffic - pu.traffic;
        let d_sq = 2.0 * d * (self.loads[a.index()] - self.loads[b.index()]) + 2.0 * d * d;
        let d_changes = f64::from(pu.changes[b.index()]) + f64::from(pv.changes[a.index()])
            - f64::from(pu.changes[a.index()])
            - f64::from(pv.changes[b.index()]);
        self.var_scale() * d_sq + self.problem.weights.change * d_changes
    }

    /// Whether `u` and `v` may exchange gateways (each allowed on the other's).
    pub fn swap_allowed(&self, u: UnitId, v: UnitId) -> bool {
        let (a, b) = (self.assign[u.index()], self.assign[v.index()]);
        a != b && self.problem.units[u.index()].allowed[b.index()] && self.problem.units[v.index()].allowed[a.index()]
    }

    /// Exchanges the gateways of `u` and `v`.
    pub fn apply_swap(&mut self, u: UnitId, v: UnitId) {
        let (a, b) = (self.assign[u.index()], self.assign[v.index()]);
        if a == b {
            return;
        }
        let delta = self.delta_swap(u, v);
        let (pu, pv) = (&self.problem.units[u.index()], &self.problem.units[v.index()]);
        let d = pv.traffic - pu.traffic;
        self.sum_sq += 2.0 * d * (self.loads[a.index()] - self.loads[b.index()]) + 2.0 * d * d;
        self.loads[a.index()] += d;
        self.loads[b.index()] -= d;
        self.changes = self.changes + u64::from(pu.changes[b.index()]) + u64::from(pv.changes[a.index()])
            - u64::from(pu.changes[a.index()])
            - u64::from(pv.changes[b.index()]);
        self.assign[u.index()] = b;
        self.assign[v.index()] = a;
        self.objective += delta;
    }

    /// The objective from the incremental sums (`Σ L²/k − mean²`), for checking the deltas.
    pub fn objective_from_sums(&self) -> f64 {
        let k = self.problem.k() as f64;
        let mean = self.problem.total_traffic / k;
        self.problem.weights.var * (self.sum_sq / k - mean * mean) + self.problem.weights.change * self.changes as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{RouteInput, RoutesInput};

    fn problem() -> Problem {
        let route = |h: &str, s: &str, t: f64, g: Option<&str>| RouteInput {
            host: h.into(),
            storage: s.into(),
            traffic: t,
            gateway: g.map(Into::into),
            allowed: None,
        };
        Problem::from_input(&RoutesInput {
            gateways: vec!["g1".into(), "g2".into(), "g3".into()],
            w_var: 1.0,
            w_change: 10.0,
            one_gateway_per_storage: false,
            routes: vec![
                route("h1", "s1", 10.0, Some("g1")),
                route("h1", "s2", 20.0, Some("g1")),
                route("h2", "s1", 30.0, None),
                route("h2", "s2", 5.0, Some("g3")),
            ],
        })
        .expect("valid")
    }

    #[test]
    fn evaluate_by_hand() {
        let p = problem();
        let g = GatewayId;
        // Loads 30, 30, 5: mean 65/3, variance = ((25/3)² · 2 + (50/3)²)/3 = 3750/27.
        let score = evaluate(&p, &[g(0), g(0), g(1), g(2)]);
        assert!((score.variance - 3750.0 / 27.0).abs() < 1e-9, "{score:?}");
        assert_eq!(score.changes, 0);
        let moved = evaluate(&p, &[g(1), g(0), g(1), g(0)]);
        assert_eq!(moved.changes, 2);
        assert!((moved.objective - (variance(&[25.0, 40.0, 0.0]) + 20.0)).abs() < 1e-9);
    }

    #[test]
    fn incremental_moves_and_swaps_match_scratch() {
        let p = problem();
        let g = GatewayId;
        let mut state = SearchState::new(&p, vec![g(0), g(0), g(1), g(2)]);
        let steps: [(bool, u32, u32); 6] =
            [(true, 0, 2), (false, 1, 3), (true, 2, 0), (false, 0, 2), (true, 3, 0), (true, 1, 1)];
        for (is_move, a, b) in steps {
            let before = state.objective;
            let delta = if is_move {
                let d = state.delta_move(UnitId(a), g(b));
                state.apply_move(UnitId(a), g(b));
                d
            } else {
                let d = state.delta_swap(UnitId(a), UnitId(b));
                state.apply_swap(UnitId(a), UnitId(b));
                d
            };
            let scratch = evaluate(&p, &state.assign).objective;
            assert!((before + delta - scratch).abs() < 1e-9, "step {is_move} {a} {b}: {before} + {delta} != {scratch}");
            assert!((state.objective_from_sums() - scratch).abs() < 1e-9);
            assert_eq!(state.loads, loads(&p, &state.assign));
        }
    }
}
