//! dvsan's routing-map optimizer: which of k gateways carries each host → storage-entity route, minimising
//!
//! ```text
//! w_var · var(GatewayTraffic) + w_change · changes
//! ```
//!
//! where GatewayTraffic is the k gateways' summed traffic (population variance) and changes counts the routes
//! whose gateway differs from their current one (a route without a current gateway changes nothing). A route
//! uses only its allowed gateways; with `one_gateway_per_storage` all routes of a storage entity share one.
//! Pure: no I/O, no async; `dvsan-station routes solve` runs it on a file (see [`input`] for the format).
//!
//! # Module map
//!
//! Bottom-up; a module imports only from modules listed before it.
//!
//! 1. [`ids`]: index newtypes (gateway, route, unit of choice).
//! 2. [`input`]: the file formats (serde), problem and answer.
//! 3. [`problem`]: checking a problem file (errors name the entry) and indexing it into units of choice.
//! 4. [`objective`]: the objective from scratch and incrementally (O(1) moves and swaps).
//! 5. [`bound`]: lower bounds (water-filling of partial loads; the prefix-sum bound of a whole problem).
//! 6. [`exhaustive`]: branch-and-bound with gateway symmetry, exact.
//! 7. [`heuristics`]: start maps, local search, simulated annealing, tabu search.
//! 8. [`solve`]: choosing the method, budgets and determinism, the answer.

pub mod bound;
pub mod exhaustive;
pub mod heuristics;
pub mod ids;
pub mod input;
pub mod objective;
pub mod problem;
pub mod solve;

pub use ids::{GatewayId, RouteId, UnitId};
pub use input::{RouteAssignment, RouteInput, RoutesInput, SolveOutput};
pub use problem::{Problem, ProblemError};
pub use solve::{solve, solve_input, Budget, Method, Solution, SolveOptions};
