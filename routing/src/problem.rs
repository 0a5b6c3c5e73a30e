//! A checked routing problem: [`Problem::from_input`] validates a [`RoutesInput`] (every error names the entry it
//! is about) and indexes it into gateways, routes and *units of choice* — one per route, or with
//! `one_gateway_per_storage` one per storage entity (its routes' traffic summed, its allowed gateways the
//! intersection of theirs) — which is what the search places. Builds on [`crate::ids`] and [`crate::input`].

use crate::ids::{GatewayId, RouteId, UnitId};
use crate::input::RoutesInput;
use std::collections::HashMap;
use thiserror::Error;

/// Why a problem file was refused.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ProblemError {
    #[error("no gateways: give at least one name in \"gateways\"")]
    NoGateways,
    #[error("gateways[{index}]: {name:?} is listed twice (first at gateways[{first}])")]
    DuplicateGateway { index: usize, first: usize, name: String },
    #[error("gateways[{index}]: a gateway needs a non-empty name")]
    EmptyGatewayName { index: usize },
    #[error("{name} is {value}: give a finite number ≥ 0")]
    BadWeight { name: &'static str, value: f64 },
    #[error("{route}: traffic is {value}; give a finite number ≥ 0")]
    BadTraffic { route: String, value: f64 },
    #[error("{route}: {field} names unknown gateway {name:?}; the gateways are {known}")]
    UnknownGateway { route: String, field: &'static str, name: String, known: String },
    #[error("{route}: allowed is empty; give at least one of {known} or leave it out")]
    EmptyAllowed { route: String, known: String },
    #[error("{route}: a duplicate of routes[{first}] (each host → storage route once)")]
    DuplicateRoute { route: String, first: usize },
    #[error(
        "storage {storage:?}: with one_gateway_per_storage its routes ({routes}) must share an allowed gateway, \
         and their allowed lists have none in common"
    )]
    NoCommonGateway { storage: String, routes: String },
}

/// A route after checking.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub host: String,
    pub storage: String,
    pub traffic: f64,
    /// The gateway carrying it now.
    pub current: Option<GatewayId>,
    /// `allowed[g]`: gateway g may carry it.
    pub allowed: Vec<bool>,
    /// The unit of choice it belongs to.
    pub unit: UnitId,
}

/// What the search places on a gateway: one route, or all routes of a storage entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// The summed traffic of its routes.
    pub traffic: f64,
    /// `allowed[g]`: gateway g may carry it (for every one of its routes).
    pub allowed: Vec<bool>,
    /// The allowed gateways, ascending.
    pub allowed_list: Vec<GatewayId>,
    /// `changes[g]`: how many of its routes change gateway if it is placed on g.
    pub changes: Vec<u32>,
    /// Its routes, ascending.
    pub routes: Vec<RouteId>,
}

/// The objective's weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub var: f64,
    pub change: f64,
}

/// A checked, indexed routing problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub gateways: Vec<String>,
    pub weights: Weights,
    pub one_gateway_per_storage: bool,
    pub routes: Vec<Route>,
    pub units: Vec<Unit>,
    /// The sum of every route's traffic.
    pub total_traffic: f64,
}

fn route_label(i: usize, host: &str, storage: &str) -> String {
    format!("routes[{i}] ({host} → {storage})")
}

impl Problem {
    /// Checks `input` and indexes it.
    pub fn from_input(input: &RoutesInput) -> Result<Problem, ProblemError> {
        if input.gateways.is_empty() {
            return Err(ProblemError::NoGateways);
        }
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for (index, name) in input.gateways.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(ProblemError::EmptyGatewayName { index });
            }
            if let Some(&first) = by_name.get(name.as_str()) {
                return Err(ProblemError::DuplicateGateway { index, first, name: name.clone() });
            }
            by_name.insert(name, index);
        }
        for (name, value) in [("w_var", input.w_var), ("w_change", input.w_change)] {
            if !value.is_finite() || value < 0.0 {
                return Err(ProblemError::BadWeight { name, value });
            }
        }
        let k = input.gateways.len();
        let known = input.gateways.join(", ");
        let lookup = |route: &str, field: &'static str, name: &str| {
            by_name.get(name).map(|&g| GatewayId::from_index(g)).ok_or_else(|| ProblemError::UnknownGateway {
                route: route.to_string(),
                field,
                name: name.to_string(),
                known: known.clone(),
            })
        };
        let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
        let mut routes = Vec::with_capacity(input.routes.len());
        // Unit of each storage entity (address mode), in order of first appearance.
        let mut storage_unit: HashMap<&str, usize> = HashMap::new();
        let mut unit_routes: Vec<Vec<usize>> = Vec::new();
        for (i, r) in input.routes.iter().enumerate() {
            let label = route_label(i, &r.host, &r.storage);
            if !r.traffic.is_finite() || r.traffic < 0.0 {
                return Err(ProblemError::BadTraffic { route: label, value: r.traffic });
            }
            if let Some(&first) = seen.get(&(r.host.as_str(), r.storage.as_str())) {
                return Err(ProblemError::DuplicateRoute { route: label, first });
            }
            seen.insert((&r.host, &r.storage), i);
            let current = r.gateway.as_deref().map(|g| lookup(&label, "gateway", g)).transpose()?;
            let allowed = match &r.allowed {
                None => vec![true; k],
                Some(list) if list.is_empty() => {
                    return Err(ProblemError::EmptyAllowed { route: label, known: known.clone() })
                }
                Some(list) => {
                    let mut allowed = vec![false; k];
                    for name in list {
                        allowed[lookup(&label, "allowed", name)?.index()] = true;
                    }
                    allowed
                }
            };
            let unit = if input.one_gateway_per_storage {
                *storage_unit.entry(&r.storage).or_insert_with(|| {
                    unit_routes.push(Vec::new());
                    unit_routes.len() - 1
                })
            } else {
                unit_routes.push(Vec::new());
                unit_routes.len() - 1
            };
            unit_routes[unit].push(i);
            routes.push(Route {
                host: r.host.clone(),
                storage: r.storage.clone(),
                traffic: r.traffic,
                current,
                allowed,
                unit: UnitId::from_index(unit),
            });
        }
        let mut units = Vec::with_capacity(unit_routes.len());
        for members in &unit_routes {
            let mut allowed = vec![true; k];
            let mut changes = vec![0u32; k];
            let mut traffic = 0.0;
            for &r in members {
                let route = &routes[r];
                traffic += route.traffic;
                for g in 0..k {
                    allowed[g] &= route.allowed[g];
                    if route.current.is_some_and(|c| c.index() != g) {
                        changes[g] += 1;
                    }
                }
            }
            let allowed_list: Vec<GatewayId> = (0..k).filter(|&g| allowed[g]).map(GatewayId::from_index).collect();
            if allowed_list.is_empty() {
                let first = &routes[members[0]];
                let names: Vec<String> =
                    members.iter().map(|&r| route_label(r, &routes[r].host, &routes[r].storage)).collect();
                return Err(ProblemError::NoCommonGateway { storage: first.storage.clone(), routes: names.join(", ") });
            }
            units.push(Unit {
                traffic,
                allowed,
                allowed_list,
                changes,
                routes: members.iter().map(|&r| RouteId::from_index(r)).collect(),
            });
        }
        let total_traffic = routes.iter().map(|r| r.traffic).sum();
        Ok(Problem {
            gateways: input.gateways.clone(),
            weights: Weights { var: input.w_var, change: input.w_change },
            one_gateway_per_storage: input.one_gateway_per_storage,
            routes,
            units,
            total_traffic,
        })
    }

    /// The number of gateways, k.
    pub fn k(&self) -> usize {
        self.gateways.len()
    }
}
