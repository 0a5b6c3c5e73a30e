//! The station's task enumerations as Rust enums: which operation a task runs ([`TaskOperation`],
//! dvsanStationTaskOperation) and where it is ([`TaskState`], dvsanStationTaskState).
//!
//! One definition for the station, which serves them, and the console, which reads and writes them. Their values
//! are the generated [`crate::dvsan_station_task_operation`] and [`crate::dvsan_station_task_state`] constants and
//! their labels the MIB's; the tests check every variant against the generated module so neither can drift.

use crate::dvsan_station_task_operation as op;
use crate::dvsan_station_task_state as state;
use std::fmt;
use std::str::FromStr;

/// An enumerated MIB syntax as a Rust enum: its values and labels.
pub trait MibEnum: Copy + Eq + 'static {
    /// Every variant, in the MIB's order.
    const ALL: &'static [Self];
    /// What [`FromStr`] says for a label that is none of these, e.g. `operation`.
    const WHAT: &'static str;
    /// The MIB's enumeration value.
    fn mib_value(self) -> i32;
    /// The MIB's label, e.g. `createVolume`.
    fn as_str(self) -> &'static str;

    /// The variant whose MIB value is `value`.
    fn from_mib(value: i32) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.mib_value() == value)
    }

    /// The variant whose MIB label is `label`, or an error naming the valid ones.
    fn from_label(label: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == label)
            .ok_or_else(|| format!("unknown {} {label:?}", Self::WHAT))
    }
}

/// Declares a [`MibEnum`] with its variants, MIB labels and generated values, plus `Display`, `FromStr`,
/// `serde::Serialize` (as the label) and inherent `ALL`, `as_str`, `mib_value`, `from_mib`.
macro_rules! mib_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($variant:ident = $label:literal => $value:path,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The MIB's label.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// The MIB's enumeration value.
            pub fn mib_value(self) -> i32 {
                match self {
                    $($name::$variant => $value,)+
                }
            }

            /// The variant whose MIB value is `value`.
            pub fn from_mib(value: i32) -> Option<$name> {
                <$name as MibEnum>::from_mib(value)
            }
        }

        impl MibEnum for $name {
            const ALL: &'static [$name] = $name::ALL;
            const WHAT: &'static str = $what;
            fn mib_value(self) -> i32 {
                $name::mib_value(self)
            }
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$name as MibEnum>::from_label(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

mib_enum! {
    /// Which operation a task runs (dvsanStationTaskOperation).
    TaskOperation, "operation" {
        CreateVolume = "createVolume" => op::CREATE_VOLUME,
        DestroyVolume = "destroyVolume" => op::DESTROY_VOLUME,
        CreatePartition = "createPartition" => op::CREATE_PARTITION,
        DestroyPartition = "destroyPartition" => op::DESTROY_PARTITION,
        AssignVolume = "assignVolume" => op::ASSIGN_VOLUME,
        UnassignVolume = "unassignVolume" => op::UNASSIGN_VOLUME,
        Allocate = "allocate" => op::ALLOCATE,
        RescanUnit = "rescanUnit" => op::RESCAN_UNIT,
        AddUnit = "addUnit" => op::ADD_UNIT,
        RemoveUnit = "removeUnit" => op::REMOVE_UNIT,
        RemoveUnitForce = "removeUnitForce" => op::REMOVE_UNIT_FORCE,
        ApproveUnit = "approveUnit" => op::APPROVE_UNIT,
        RejectUnit = "rejectUnit" => op::REJECT_UNIT,
        ClearVolume = "clearVolume" => op::CLEAR_VOLUME,
    }
}

mib_enum! {
    /// Where a task is (dvsanStationTaskState).
    TaskState, "task state" {
        Pending = "pending" => state::PENDING,
        Running = "running" => state::RUNNING,
        Done = "done" => state::DONE,
        Failed = "failed" => state::FAILED,
        Cancelled = "cancelled" => state::CANCELLED,
    }
}

impl TaskState {
    /// Done, failed or cancelled: the task will not change any more.
    pub fn is_ended(self) -> bool {
        matches!(self, TaskState::Done | TaskState::Failed | TaskState::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated constants' doc comments carry the MIB's `label(value)`: every variant must be one of them,
    /// and every one of them a variant.
    fn generated(module: &str) -> Vec<(String, i32)> {
        let source = include_str!("generated.rs");
        let start = source.find(&format!("pub mod {module} {{")).expect("module in generated.rs");
        let body = &source[start..start + source[start..].find("\n}").expect("module end")];
        body.lines()
            .filter_map(|line| line.trim().strip_prefix("/// "))
            .filter_map(|doc| {
                let (label, value) = doc.strip_suffix(')')?.split_once('(')?;
                Some((label.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    fn ours<T: MibEnum>() -> Vec<(String, i32)> {
        T::ALL.iter().map(|v| (v.as_str().to_string(), v.mib_value())).collect()
    }

    #[test]
    fn operations_are_the_mibs() {
        assert_eq!(ours::<TaskOperation>(), generated("dvsan_station_task_operation"));
        assert_eq!(ours::<TaskOperation>().len(), 14);
    }

    #[test]
    fn states_are_the_mibs() {
        assert_eq!(ours::<TaskState>(), generated("dvsan_station_task_state"));
        assert_eq!(ours::<TaskState>().len(), 5);
    }

    #[test]
    fn values_and_labels_round_trip() {
        for &kind in TaskOperation::ALL {
            assert_eq!(TaskOperation::from_mib(kind.mib_value()), Some(kind));
            assert_eq!(kind.as_str().parse::<TaskOperation>(), Ok(kind));
        }
        for &s in TaskState::ALL {
            assert_eq!(TaskState::from_mib(s.mib_value()), Some(s));
            assert_eq!(s.to_string().parse::<TaskState>(), Ok(s));
        }
        assert_eq!(TaskOperation::from_mib(0), None);
        assert_eq!(TaskOperation::from_mib(15), None);
        assert_eq!(TaskState::from_mib(6), None);
        assert_eq!("frob".parse::<TaskOperation>(), Err("unknown operation \"frob\"".to_string()));
        assert_eq!("frob".parse::<TaskState>(), Err("unknown task state \"frob\"".to_string()));
        let ended: Vec<bool> = TaskState::ALL.iter().map(|s| s.is_ended()).collect();
        assert_eq!(ended, [false, false, true, true, true]);
    }
}
