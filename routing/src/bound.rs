//! Lower bounds on the objective, from relaxations that ignore the allowed sets.
//!
//! * [`waterfill_variance`]: the least variance reachable from partial loads when the remaining traffic may be
//!   split freely (poured onto the least-loaded gateways); the exhaustive search (branch-and-bound) uses it.
//! * [`lower_bound`]: for a whole problem. Whatever the map, the j busiest gateways carry at least the j largest
//!   units' traffic (j < k) and all of them carry the total; the sorted load vector least spread under these
//!   prefix-sum floors is the slope sequence of the upper concave hull of the points (j, P_j), which gives the
//!   bound on the variance (for j = 1 this is the familiar max(total/k, largest unit)). Changes add the routes
//!   whose current gateway their unit may not use at all. Builds on [`crate::problem`] and [`crate::objective`].

use crate::problem::Problem;

/// The least population variance of loads `partial[g] + x[g]` with `x ≥ 0` and `Σ x = remaining` (over all
/// `k = partial.len()` gateways).
pub fn waterfill_variance(partial: &[f64], remaining: f64, scratch: &mut Vec<f64>) -> f64 {
    let k = partial.len();
    scratch.clear();
    scratch.extend_from_slice(partial);
    scratch.sort_by(f64::total_cmp);
    // Raise the lowest j loads to a common level λ ≤ the (j+1)-th load.
    let mut level = scratch[0];
    let mut left = remaining;
    let mut filled = 1;
    while filled < k {
        let step = (scratch[filled] - level) * filled as f64;
        if step >= left {
            break;
        }
        left -= step;
        level = scratch[filled];
        filled += 1;
    }
    level += left / filled as f64;
    for load in scratch.iter_mut().take(filled) {
        *load = level;
    }
    crate::objective::variance(scratch)
}

/// The variance floor from the prefix-sum argument: `largest` sorted descending (units' traffic), `total` their sum.
pub fn variance_floor(largest_desc: &[f64], total: f64, k: usize) -> f64 {
    // Points (j, P_j) for j = 0..k with P_k = total; P_j capped at total.
    let mut points = Vec::with_capacity(k + 1);
    let mut prefix = 0.0;
    points.push((0usize, 0.0f64));
    for j in 1..k {
        prefix += largest_desc.get(j - 1).copied().unwrap_or(0.0);
        points.push((j, prefix.min(total)));
    }
    points.push((k, total));
    // Upper concave hull (monotone chain).
    let mut hull: Vec<(usize, f64)> = Vec::with_capacity(points.len());
    for p in points {
        while hull.len() >= 2 {
            let (a, b) = (hull[hull.len() - 2], hull[hull.len() - 1]);
            // Drop b if it lies on or below the segment a → p.
            let cross = (b.0 as f64 - a.0 as f64) * (p.1 - a.1) - (b.1 - a.1) * (p.0 as f64 - a.0 as f64);
            if cross >= 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(p);
    }
    let mut loads = Vec::with_capacity(k);
    for pair in hull.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let slope = (b.1 - a.1) / (b.0 - a.0) as f64;
        loads.extend(std::iter::repeat_n(slope, b.0 - a.0));
    }
    crate::objective::variance(&loads)
}

/// A lower bound on the objective of every feasible map of `problem`.
pub fn lower_bound(problem: &Problem) -> f64 {
    let k = problem.k();
    let mut traffic: Vec<f64> = problem.units.iter().map(|u| u.traffic).collect();
    traffic.sort_by(|a, b| b.total_cmp(a));
    traffic.truncate(k);
    let var = variance_floor(&traffic, problem.total_traffic, k);
    let forced: u64 = problem
        .units
        .iter()
        .map(|u| u64::from(u.allowed_list.iter().map(|g| u.changes[g.index()]).min().unwrap_or(0)))
        .sum();
    problem.weights.var * var + problem.weights.change * forced as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waterfill_levels_the_lowest() {
        let mut s = Vec::new();
        // 10, 0, 0 + 10 → 10, 5, 5.
        let v = waterfill_variance(&[10.0, 0.0, 0.0], 10.0, &mut s);
        assert!((v - crate::objective::variance(&[10.0, 5.0, 5.0])).abs() < 1e-12);
        // Enough to level everything: 10, 0, 0 + 20 → 10, 10, 10.
        assert!(waterfill_variance(&[10.0, 0.0, 0.0], 20.0, &mut s).abs() < 1e-12);
    }

    #[test]
    fn floor_is_max_of_mean_and_largest() {
        // Units 9, 1, 1, 1 on k = 2: the busiest carries ≥ 9, so loads 9, 3.
        let v = variance_floor(&[9.0, 1.0], 12.0, 2);
        assert!((v - 9.0).abs() < 1e-12, "{v}");
        // Units 5, 5, 2 on k = 3: P1 = 5, P2 = 10, total 12 → loads 5, 5, 2.
        let v = variance_floor(&[5.0, 5.0, 2.0], 12.0, 3);
        assert!((v - crate::objective::variance(&[5.0, 5.0, 2.0])).abs() < 1e-12, "{v}");
        // Many small units: the mean.
        assert!(variance_floor(&[1.0, 1.0], 100.0, 3).abs() < 1e-12);
    }
}
