//! Property tests of the optimizer on many random small instances: the answer equals a plain enumeration of every
//! map (written here, independent of the crate's branch-and-bound), the heuristics alone reach it too, the answer
//! is never worse than keeping the current map, respects the allowed sets and one gateway per storage entity,
//! and is the same for the same seed.

use dvsan_routing::objective::evaluate;
use dvsan_routing::{solve, Budget, GatewayId, Problem, RouteInput, RoutesInput, SolveOptions};
use proptest::prelude::*;

/// Every feasible unit map's best objective, by plain enumeration.
fn brute_force(problem: &Problem) -> f64 {
    let n = problem.units.len();
    let mut pick = vec![0usize; n];
    let mut best = f64::INFINITY;
    loop {
        let assign: Vec<GatewayId> = pick.iter().enumerate().map(|(u, &i)| problem.units[u].allowed_list[i]).collect();
        // Objective computed here from the definition, not with the crate's evaluator.
        let k = problem.k();
        let mut loads = vec![0.0; k];
        let mut changes = 0u64;
        for (u, g) in assign.iter().enumerate() {
            for r in &problem.units[u].routes {
                let route = &problem.routes[r.index()];
                loads[g.index()] += route.traffic;
                changes += u64::from(route.current.is_some_and(|c| c != *g));
            }
        }
        let mean = loads.iter().sum::<f64>() / k as f64;
        let var = loads.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / k as f64;
        best = best.min(problem.weights.var * var + problem.weights.change * changes as f64);
        let mut u = 0;
        loop {
            if u == n {
                return best;
            }
            pick[u] += 1;
            if pick[u] < problem.units[u].allowed_list.len() {
                break;
            }
            pick[u] = 0;
            u += 1;
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-7 * a.abs().max(b.abs()).max(1.0)
}

prop_compose! {
    /// 1–4 gateways, 1–7 routes over 3 hosts × 3 storage entities, traffic 0–1000 (some equal), optional
    /// current gateways and allowed lists.
    fn instance()(k in 1usize..=4, n in 1usize..=7, w_change in prop_oneof![Just(0.0), 0.0f64..5000.0],
                  per_storage in any::<bool>(), seed in any::<u64>()) -> RoutesInput {
        let mut rng = fastrand_like(seed);
        let gateways: Vec<String> = (1..=k).map(|g| format!("g{g}")).collect();
        let mut pairs: Vec<(usize, usize)> = (0..3).flat_map(|h| (0..3).map(move |s| (h, s))).collect();
        let mut routes = Vec::new();
        for _ in 0..n.min(pairs.len()) {
            let (h, s) = pairs.swap_remove((rng() % pairs.len() as u64) as usize);
            let traffic = if rng().is_multiple_of(4) { 100.0 } else { (rng() % 100_000) as f64 / 100.0 };
            let gateway = (!rng().is_multiple_of(3)).then(|| gateways[(rng() % k as u64) as usize].clone());
            // A storage entity's routes share gateway 1 in their allowed lists, so the intersection is never empty.
            let allowed = (rng().is_multiple_of(2)).then(|| {
                let mut list: Vec<String> = gateways.iter().filter(|_| rng().is_multiple_of(2)).cloned().collect();
                if !list.contains(&gateways[0]) {
                    list.push(gateways[0].clone());
                }
                list
            });
            routes.push(RouteInput { host: format!("h{h}"), storage: format!("s{s}"), traffic, gateway, allowed });
        }
        RoutesInput { gateways, w_var: 1.0, w_change, one_gateway_per_storage: per_storage, routes }
    }
}

/// A tiny xorshift for shaping instances inside one proptest case.
fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn iterations(seed: u64) -> SolveOptions {
    SolveOptions { seed, budget: Budget::Iterations(20_000), exhaustive_limit: 1_000_000, proof_nodes: 10_000 }
}

fn respects_constraints(problem: &Problem, routes: &[GatewayId]) {
    for (route, g) in problem.routes.iter().zip(routes) {
        assert!(route.allowed[g.index()], "{} → {} on a gateway it may not use", route.host, route.storage);
    }
    if problem.one_gateway_per_storage {
        for (a, ga) in problem.routes.iter().zip(routes) {
            for (b, gb) in problem.routes.iter().zip(routes) {
                assert!(a.storage != b.storage || ga == gb, "storage {} on two gateways", a.storage);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn exhaustive_answer_is_optimal(input in instance(), seed in any::<u64>()) {
        let problem = Problem::from_input(&input).expect("generated instances are valid");
        let solution = solve(&problem, &iterations(seed));
        let best = brute_force(&problem);
        prop_assert!(solution.optimal);
        prop_assert!(close(solution.score.objective, best), "{} vs brute force {best}", solution.score.objective);
        prop_assert!(close(solution.score.objective, evaluate(&problem, &solution.units).objective));
        prop_assert!(solution.lower_bound <= solution.score.objective + 1e-9);
        respects_constraints(&problem, &solution.routes);
    }

    #[test]
    fn heuristics_alone_reach_the_optimum(input in instance(), seed in any::<u64>()) {
        let problem = Problem::from_input(&input).expect("generated instances are valid");
        let options = SolveOptions { exhaustive_limit: 0, proof_nodes: 0, ..iterations(seed) };
        let solution = solve(&problem, &options);
        let best = brute_force(&problem);
        prop_assert!(!solution.optimal || problem.k() == 1, "one gateway is the only case decided without search");
        prop_assert!(close(solution.score.objective, best), "{} ({}) vs brute force {best}",
            solution.score.objective, solution.method.as_str());
        prop_assert!(bound_holds(&problem, best), "lower bound above the optimum");
        respects_constraints(&problem, &solution.routes);
    }

    #[test]
    fn never_worse_than_the_current_map(mut input in instance(), seed in any::<u64>(), heuristics in any::<bool>()) {
        // Give every route a current gateway it may use, one per storage entity in address mode.
        for i in 0..input.routes.len() {
            let gateway = if input.one_gateway_per_storage { input.gateways[0].clone() } else {
                input.routes[i].allowed.as_ref().map_or(input.gateways[i % input.gateways.len()].clone(), |a| a[0].clone())
            };
            input.routes[i].gateway = Some(gateway);
        }
        let problem = Problem::from_input(&input).expect("valid");
        let current: Vec<GatewayId> = problem.units.iter()
            .map(|u| problem.routes[u.routes[0].index()].current.expect("set above")).collect();
        let keep = evaluate(&problem, &current);
        prop_assert_eq!(keep.changes, 0);
        let options = SolveOptions {
            exhaustive_limit: if heuristics { 0 } else { 1_000_000 },
            proof_nodes: if heuristics { 0 } else { 10_000 },
            ..iterations(seed)
        };
        let solution = solve(&problem, &options);
        prop_assert!(solution.score.objective <= keep.objective + 1e-9 * keep.objective.max(1.0));
        respects_constraints(&problem, &solution.routes);
    }

    #[test]
    fn deterministic_for_a_seed(input in instance(), seed in any::<u64>()) {
        let problem = Problem::from_input(&input).expect("valid");
        let options = SolveOptions { exhaustive_limit: 0, proof_nodes: 0, ..iterations(seed) };
        let a = solve(&problem, &options);
        let b = solve(&problem, &options);
        prop_assert_eq!(a, b);
    }
}

fn bound_holds(problem: &Problem, optimum: f64) -> bool {
    dvsan_routing::bound::lower_bound(problem) <= optimum + 1e-7 * optimum.abs().max(1.0)
}

/// Larger instances than enumeration can check: the heuristics with a fixed number of steps give the same map
/// for the same seed, respect the constraints and are never worse than greedy.
#[test]
fn larger_instances_are_deterministic_and_beat_greedy() {
    for seed in 0..5u64 {
        let mut next = fastrand_like(seed + 11);
        let gateways: Vec<String> = (1..=5).map(|g| format!("g{g}")).collect();
        let routes = (0..200)
            .map(|i| RouteInput {
                host: format!("h{}", i / 20),
                storage: format!("s{}", i % 20),
                traffic: (next() % 10_000) as f64,
                gateway: (i % 3 == 0).then(|| gateways[i % 5].clone()),
                allowed: (i % 4 == 0).then(|| vec![gateways[i % 5].clone(), gateways[(i + 2) % 5].clone()]),
            })
            .collect();
        let input = RoutesInput { gateways, w_var: 1.0, w_change: 1000.0, one_gateway_per_storage: false, routes };
        let problem = Problem::from_input(&input).expect("valid");
        let options =
            SolveOptions { seed, budget: Budget::Iterations(50_000), exhaustive_limit: 1_000_000, proof_nodes: 20_000 };
        let a = solve(&problem, &options);
        assert_eq!(a, solve(&problem, &options));
        let greedy = evaluate(&problem, &dvsan_routing::heuristics::greedy(&problem));
        assert!(a.score.objective <= greedy.objective, "{} > greedy {}", a.score.objective, greedy.objective);
        assert!(a.lower_bound <= a.score.objective);
        respects_constraints(&problem, &a.routes);
    }
}

/// Beyond the exhaustive limit, branch-and-bound from the heuristics' best start proves mid-size problems: the
/// answer is then marked optimal, its lower bound is its objective, and it matches an unlimited branch-and-bound.
#[test]
fn proof_by_branch_and_bound_matches_a_full_search() {
    let mut proved = 0;
    for seed in 0..6u64 {
        let mut next = fastrand_like(seed + 101);
        let gateways: Vec<String> = (1..=3).map(|g| format!("g{g}")).collect();
        let routes = (0..14)
            .map(|i| RouteInput {
                host: format!("h{}", i / 4),
                storage: format!("s{}", i % 4),
                traffic: (next() % 1000) as f64,
                gateway: (i % 2 == 0).then(|| gateways[i % 3].clone()),
                allowed: None,
            })
            .collect();
        let input = RoutesInput { gateways, w_var: 1.0, w_change: 2000.0, one_gateway_per_storage: false, routes };
        let problem = Problem::from_input(&input).expect("valid");
        let options =
            SolveOptions { seed, budget: Budget::Iterations(5_000), exhaustive_limit: 1000, proof_nodes: 2_000_000 };
        let solution = solve(&problem, &options);
        let full = dvsan_routing::exhaustive::branch_and_bound(&problem, None, u64::MAX, &mut || false);
        assert!(full.complete);
        assert!(close(solution.score.objective, full.objective), "{} vs {}", solution.score.objective, full.objective);
        if solution.optimal {
            proved += 1;
            assert_eq!(solution.lower_bound, solution.score.objective);
        }
    }
    assert!(proved > 0, "branch-and-bound proved none of the instances");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random sequences of allowed moves and swaps: the incrementally kept objective, loads and Σ L² agree with
    /// evaluating the map from scratch after every step.
    #[test]
    fn incremental_updates_match_scratch(input in instance(), steps in proptest::collection::vec((any::<bool>(), any::<u16>(), any::<u16>()), 1..60)) {
        use dvsan_routing::objective::{loads, SearchState};
        use dvsan_routing::UnitId;
        let problem = Problem::from_input(&input).expect("valid");
        let start: Vec<GatewayId> = problem.units.iter().map(|u| u.allowed_list[0]).collect();
        let mut state = SearchState::new(&problem, start);
        let n = problem.units.len();
        for (is_move, a, b) in steps {
            let u = UnitId::from_index(usize::from(a) % n);
            let before = state.objective;
            let delta = if is_move {
                let allowed = &problem.units[u.index()].allowed_list;
                let g = allowed[usize::from(b) % allowed.len()];
                let d = state.delta_move(u, g);
                state.apply_move(u, g);
                d
            } else {
                let v = UnitId::from_index(usize::from(b) % n);
                if !state.swap_allowed(u, v) {
                    continue;
                }
                let d = state.delta_swap(u, v);
                state.apply_swap(u, v);
                d
            };
            let scratch = evaluate(&problem, &state.assign).objective;
            // Σ L²/k − mean² cancels: allow rounding on the scale of the squared total.
            let slack = 1e-10 * problem.total_traffic.powi(2) + 1e-7 * scratch.abs().max(1.0);
            prop_assert!((before + delta - scratch).abs() <= slack, "{before} + {delta} != {scratch}");
            prop_assert!((state.objective_from_sums() - scratch).abs() <= slack);
            for (kept, fresh) in state.loads.iter().zip(loads(&problem, &state.assign)) {
                prop_assert!(close(*kept, fresh));
            }
            for (u, g) in state.assign.iter().enumerate() {
                prop_assert!(problem.units[u].allowed[g.index()]);
            }
        }
    }
}
