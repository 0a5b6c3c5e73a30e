//! Heuristic search for problems too large to enumerate: start maps ([`greedy`], [`from_current`],
//! [`objective_greedy`]), a descent ([`local_search`]: every improving move, then for each pair of gateways the
//! best swap found by binary search near the swap that would level the pair), simulated annealing
//! ([`anneal`]) and tabu search ([`tabu`]). Every random choice comes from the caller's seeded
//! [`fastrand::Rng`]; the only other input is the caller's `stop` closure (the time budget). Builds on
//! [`crate::objective`].

use crate::ids::{GatewayId, UnitId};
use crate::objective::SearchState;
use crate::problem::Problem;

/// Units by traffic, largest first (ties by index).
fn largest_first(problem: &Problem) -> Vec<usize> {
    let mut order: Vec<usize> = (0..problem.units.len()).collect();
    order.sort_by(|&a, &b| problem.units[b].traffic.total_cmp(&problem.units[a].traffic).then(a.cmp(&b)));
    order
}

fn least_loaded(loads: &[f64], allowed: &[GatewayId]) -> GatewayId {
    let mut best = allowed[0];
    for &g in &allowed[1..] {
        if loads[g.index()] < loads[best.index()] {
            best = g;
        }
    }
    best
}

/// Largest unit first onto the least-loaded allowed gateway (ties: the lowest index).
pub fn greedy(problem: &Problem) -> Vec<GatewayId> {
    let mut loads = vec![0.0; problem.k()];
    let mut assign = vec![GatewayId(0); problem.units.len()];
    for u in largest_first(problem) {
        let unit = &problem.units[u];
        let g = least_loaded(&loads, &unit.allowed_list);
        loads[g.index()] += unit.traffic;
        assign[u] = g;
    }
    assign
}

/// Place the largest units first on the gateway that adds least to `w_var·Σ L²/k + w_change·changes`; units
/// listed in `fixed` keep the gateway given there.
fn place_rest(problem: &Problem, fixed: &[Option<GatewayId>]) -> Vec<GatewayId> {
    let k = problem.k() as f64;
    let w = problem.weights;
    let mut loads = vec![0.0; problem.k()];
    let mut assign = vec![GatewayId(0); problem.units.len()];
    for (u, g) in fixed.iter().enumerate() {
        if let Some(g) = g {
            loads[g.index()] += problem.units[u].traffic;
            assign[u] = *g;
        }
    }
    for u in largest_first(problem) {
        if fixed[u].is_some() {
            continue;
        }
        let unit = &problem.units[u];
        let cost = |g: GatewayId| {
            let l = loads[g.index()];
            w.var * ((l + unit.traffic) * (l + unit.traffic) - l * l) / k
                + w.change * f64::from(unit.changes[g.index()])
        };
        let mut best = unit.allowed_list[0];
        for &g in &unit.allowed_list[1..] {
            if cost(g) < cost(best) {
                best = g;
            }
        }
        loads[best.index()] += unit.traffic;
        assign[u] = best;
    }
    assign
}

/// Like [`greedy`] but each unit goes where it adds least to the objective, changes included.
pub fn objective_greedy(problem: &Problem) -> Vec<GatewayId> {
    place_rest(problem, &vec![None; problem.units.len()])
}

/// The current map where it is usable: each unit on the allowed gateway where fewest of its routes change, if
/// any of its routes has a current gateway; the others placed as by [`objective_greedy`]. `None` when no route
/// has a current gateway.
pub fn from_current(problem: &Problem) -> Option<Vec<GatewayId>> {
    let mut any = false;
    let fixed: Vec<Option<GatewayId>> = problem
        .units
        .iter()
        .map(|unit| {
            let has_current = unit.routes.iter().any(|r| problem.routes[r.index()].current.is_some());
            any |= has_current;
            has_current.then(|| {
                let mut best = unit.allowed_list[0];
                for &g in &unit.allowed_list[1..] {
                    if unit.changes[g.index()] < unit.changes[best.index()] {
                        best = g;
                    }
                }
                best
            })
        })
        .collect();
    any.then(|| place_rest(problem, &fixed))
}

/// Improvements smaller than this (relative to the objective's scale) are not taken.
fn epsilon(state: &SearchState<'_>) -> f64 {
    1e-12 * state.objective.abs().max(1.0)
}

/// Passes of [`local_search`] at most (each improves the map; this only bounds the work without a clock).
pub const MAX_PASSES: u32 = 500;

/// Descends to a local optimum of moves and swaps (or [`MAX_PASSES`] passes). Returns whether it improved
/// anything.
pub fn local_search(problem: &Problem, state: &mut SearchState<'_>, stop: &mut dyn FnMut() -> bool) -> bool {
    let n = problem.units.len();
    let k = problem.k();
    let mut improved_any = false;
    for _ in 0..MAX_PASSES {
        let mut improved = false;
        // Moves: each unit to its best allowed gateway.
        for u in (0..n).map(UnitId::from_index) {
            let mut best = (0.0, None);
            for &g in &problem.units[u.index()].allowed_list {
                let d = state.delta_move(u, g);
                if d < best.0 - epsilon(state) {
                    best = (d, Some(g));
                }
            }
            if let Some(g) = best.1 {
                state.apply_move(u, g);
                improved = true;
            }
        }
        // Swaps: for each pair of gateways (a busier than b), units of b sorted by traffic; for each unit of a,
        // the units of b nearest the traffic that would level the pair.
        let mut members: Vec<Vec<UnitId>> = vec![Vec::new(); k];
        let rebuild = |state: &SearchState<'_>, g: usize, list: &mut Vec<UnitId>| {
            list.clear();
            list.extend((0..n).filter(|&u| state.assign[u].index() == g).map(UnitId::from_index));
            list.sort_by(|x, y| problem.units[x.index()].traffic.total_cmp(&problem.units[y.index()].traffic));
        };
        for (g, list) in members.iter_mut().enumerate() {
            rebuild(state, g, list);
        }
        for a in 0..k {
            for b in 0..k {
                if a == b || state.loads[a] <= state.loads[b] {
                    continue;
                }
                let gap = state.loads[a] - state.loads[b];
                let mut best: (f64, Option<(UnitId, UnitId)>) = (0.0, None);
                for &u in &members[a] {
                    let target = problem.units[u.index()].traffic - gap / 2.0;
                    let list = &members[b];
                    let at = list.partition_point(|v| problem.units[v.index()].traffic < target);
                    for &v in &list[at.saturating_sub(2)..(at + 2).min(list.len())] {
                        if state.swap_allowed(u, v) {
                            let d = state.delta_swap(u, v);
                            if d < best.0 - epsilon(state) {
                                best = (d, Some((u, v)));
                            }
                        }
                    }
                }
                if let Some((u, v)) = best.1 {
                    state.apply_swap(u, v);
                    improved = true;
                    let (mut la, mut lb) = (std::mem::take(&mut members[a]), std::mem::take(&mut members[b]));
                    rebuild(state, a, &mut la);
                    rebuild(state, b, &mut lb);
                    members[a] = la;
                    members[b] = lb;
                }
            }
        }
        state.resync();
        improved_any |= improved;
        if !improved || stop() {
            break;
        }
    }
    improved_any
}

/// A random neighbour: a move (unit, gateway) or a swap (unit, unit); `None` when the draw found none allowed.
#[derive(Debug, Clone, Copy)]
enum Step {
    Move(UnitId, GatewayId),
    Swap(UnitId, UnitId),
}

fn random_step(problem: &Problem, state: &SearchState<'_>, rng: &mut fastrand::Rng) -> Option<Step> {
    let n = problem.units.len();
    let u = UnitId::from_index(rng.usize(..n));
    if rng.bool() {
        let allowed = &problem.units[u.index()].allowed_list;
        let g = allowed[rng.usize(..allowed.len())];
        (g != state.assign[u.index()]).then_some(Step::Move(u, g))
    } else {
        let v = UnitId::from_index(rng.usize(..n));
        state.swap_allowed(u, v).then_some(Step::Swap(u, v))
    }
}

fn delta(state: &SearchState<'_>, step: Step) -> f64 {
    match step {
        Step::Move(u, g) => state.delta_move(u, g),
        Step::Swap(u, v) => state.delta_swap(u, v),
    }
}

fn apply(state: &mut SearchState<'_>, step: Step) {
    match step {
        Step::Move(u, g) => state.apply_move(u, g),
        Step::Swap(u, v) => state.apply_swap(u, v),
    }
}

/// Simulated annealing from `state`, geometric cooling from a temperature at which a typical worsening step is
/// accepted with probability ~0.3 down to 10⁻⁴ of it. `clock(i)`, asked every 256 steps, says how far the run
/// is (0 → 1) or `None` to stop. Returns the best map seen and its objective (the search state ends wherever
/// the walk ended).
pub fn anneal(
    problem: &Problem,
    state: &mut SearchState<'_>,
    rng: &mut fastrand::Rng,
    clock: &mut dyn FnMut(u64) -> Option<f64>,
) -> (Vec<GatewayId>, f64) {
    let mut best = (state.assign.clone(), state.objective);
    if problem.units.is_empty() || problem.k() < 2 {
        return best;
    }
    // Temperature scale: mean worsening of a few random steps.
    let (mut sum, mut count) = (0.0, 0u32);
    for _ in 0..200 {
        if let Some(step) = random_step(problem, state, rng) {
            let d = delta(state, step);
            if d > 0.0 {
                sum += d;
                count += 1;
            }
        }
    }
    if count == 0 {
        return best;
    }
    let t0 = sum / f64::from(count) / 1.2;
    let t_end = t0 * 1e-4;
    let mut temperature = t0;
    for i in 0u64.. {
        if i.is_multiple_of(256) {
            let Some(progress) = clock(i) else { break };
            temperature = t0 * (t_end / t0).powf(progress.clamp(0.0, 1.0));
        }
        let Some(step) = random_step(problem, state, rng) else { continue };
        let d = delta(state, step);
        if d <= 0.0 || rng.f64() < (-d / temperature).exp() {
            apply(state, step);
            if state.objective < best.1 - epsilon(state) {
                best = (state.assign.clone(), state.objective);
            }
        }
        if i % 65536 == 65535 {
            state.resync();
        }
    }
    state.resync();
    best
}

/// Tabu search from `state` for `iterations` steps (or until `stop`): each step takes the best of a sample of
/// moves (including every move off the busiest gateway onto the least-loaded one) and swaps that is not tabu —
/// a unit may not go back to a gateway it left for `tenure` steps — unless it beats the best map. Returns the
/// best map seen and its objective.
pub fn tabu(
    problem: &Problem,
    state: &mut SearchState<'_>,
    iterations: u64,
    rng: &mut fastrand::Rng,
    stop: &mut dyn FnMut() -> bool,
) -> (Vec<GatewayId>, f64) {
    let n = problem.units.len();
    let k = problem.k();
    let mut best = (state.assign.clone(), state.objective);
    if n == 0 || k < 2 {
        return best;
    }
    // tabu_until[u * k + g]: step until which unit u may not go to g.
    let mut tabu_until = vec![0u64; n * k];
    let tenure = 5 + (n as u64 / 8).min(20);
    let sample = 48.min(n * k);
    let mut candidates: Vec<Step> = Vec::with_capacity(2 * sample + 16);
    for step_no in 1..=iterations {
        if step_no.is_multiple_of(256) && stop() {
            break;
        }
        candidates.clear();
        let busiest = (0..k).max_by(|&a, &b| state.loads[a].total_cmp(&state.loads[b])).unwrap_or(0);
        let idlest =
            GatewayId::from_index((0..k).min_by(|&a, &b| state.loads[a].total_cmp(&state.loads[b])).unwrap_or(0));
        for _ in 0..sample {
            let u = rng.usize(..n);
            if state.assign[u].index() == busiest && problem.units[u].allowed[idlest.index()] {
                candidates.push(Step::Move(UnitId::from_index(u), idlest));
            }
            if let Some(step) = random_step(problem, state, rng) {
                candidates.push(step);
            }
        }
        let is_tabu = |step: Step| match step {
            Step::Move(u, g) => tabu_until[u.index() * k + g.index()] >= step_no,
            Step::Swap(u, v) => {
                tabu_until[u.index() * k + state.assign[v.index()].index()] >= step_no
                    || tabu_until[v.index() * k + state.assign[u.index()].index()] >= step_no
            }
        };
        let mut chosen: Option<(f64, Step)> = None;
        for &step in &candidates {
            let d = delta(state, step);
            let aspires = state.objective + d < best.1 - epsilon(state);
            if (aspires || !is_tabu(step)) && chosen.is_none_or(|(cd, _)| d < cd) {
                chosen = Some((d, step));
            }
        }
        let Some((_, step)) = chosen else { continue };
        let until = step_no + tenure + rng.u64(..=tenure);
        match step {
            Step::Move(u, _) => tabu_until[u.index() * k + state.assign[u.index()].index()] = until,
            Step::Swap(u, v) => {
                tabu_until[u.index() * k + state.assign[u.index()].index()] = until;
                tabu_until[v.index() * k + state.assign[v.index()].index()] = until;
            }
        }
        apply(state, step);
        if state.objective < best.1 - epsilon(state) {
            best = (state.assign.clone(), state.objective);
        }
        if step_no.is_multiple_of(65536) {
            state.resync();
        }
    }
    state.resync();
    best
}
