//! Index newtypes: a gateway, a route and a unit of choice are all small integers inside the optimizer; giving
//! each its own type keeps a route index from being used as a gateway index. They sit at the bottom of the crate
//! and import nothing.

use std::fmt;

/// A gateway: its position in the input's `gateways` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GatewayId(pub u32);

/// A route (host → storage entity): its position in the input's `routes` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId(pub u32);

/// A unit of choice: one route, or with `one_gateway_per_storage` all routes of one storage entity, which the
/// optimizer places on one gateway together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId(pub u32);

macro_rules! index_type {
    ($t:ident, $prefix:literal) => {
        impl $t {
            /// The index as a `usize`, for indexing slices.
            pub fn index(self) -> usize {
                self.0 as usize
            }

            /// The id of slice position `i` (the optimizer's inputs have far fewer than 2^32 entries).
            pub fn from_index(i: usize) -> Self {
                Self(u32::try_from(i).expect("index fits in u32"))
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

index_type!(GatewayId, "gateway#");
index_type!(RouteId, "route#");
index_type!(UnitId, "unit#");
