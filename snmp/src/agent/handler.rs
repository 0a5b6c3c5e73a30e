//! The interface between the agent engine and MIB implementations.
//!
//! A [`MibHandler`] owns one OID subtree and never sees wire encoding. SETs are two-phase: the
//! engine asks every involved handler to [`MibHandler::prepare_set`] (validate and stage) before
//! any of them may [`PreparedSet::commit`]; if a commit fails, the engine undoes the commits
//! already done, in reverse order, through the returned [`Undo`] values.

use crate::oid::Oid;
use crate::pdu::{ErrorStatus, VarBind};
use crate::value::Value;

/// Outcome of an exact-instance GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetResult {
    /// The instance exists; its value.
    Value(Value),
    /// The object type (column or scalar) is unknown in this subtree.
    NoSuchObject,
    /// The object type exists, but not this instance (e.g. no such row, or a scalar not ending in .0).
    NoSuchInstance,
}

/// A SET varbind as given to a handler: its 0-based position in the PDU and the binding.
pub type SetItem<'a> = (usize, &'a VarBind);

/// A failed SET phase: which varbind (the 0-based position the handler was given) and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetFailure {
    pub index: usize,
    pub status: ErrorStatus,
}

impl SetFailure {
    pub fn new(index: usize, status: ErrorStatus) -> SetFailure {
        SetFailure { index, status }
    }
}

/// An undo step could not restore the previous state (reported as undoFailed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UndoFailed;

/// Instrumentation for one registered OID subtree.
///
/// Handlers are shared between the agent's worker tasks, so they use their own interior
/// mutability. The engine serialises SET requests (one at a time), but GETs may run concurrently
/// with a SET.
pub trait MibHandler: Send + Sync {
    /// Exact-instance GET of `oid` (always inside this handler's subtree).
    fn get(&self, oid: &Oid) -> GetResult;

    /// The first instance strictly after `oid` in this handler's subtree, with its value, or
    /// `None` when the subtree has nothing after `oid`. `oid` may sort before the subtree (then
    /// the answer is the subtree's first instance). Answers that are not strictly greater than
    /// `oid` or lie outside the subtree are ignored by the engine (treated as `None`).
    fn get_next(&self, oid: &Oid) -> Option<VarBind>;

    /// SET phase 1: validate every varbind of the PDU this handler owns (given together, in PDU
    /// order, so a RowStatus createAndGo sees its sibling columns) and stage the change without
    /// applying it. Return the first failure (wrongType, wrongLength, wrongValue, notWritable,
    /// noCreation, inconsistentValue, resourceUnavailable, inconsistentName, noAccess, ...).
    /// The default refuses everything with notWritable.
    fn prepare_set(&self, varbinds: &[SetItem<'_>]) -> Result<Box<dyn PreparedSet>, SetFailure> {
        Err(SetFailure::new(varbinds.first().map_or(0, |(i, _)| *i), ErrorStatus::NotWritable))
    }
}

/// A validated, staged SET for one handler (phase 2).
pub trait PreparedSet: Send {
    /// Applies the change. On failure, this handler's own state must be as before the call
    /// (report `index` of the varbind that failed; the engine answers commitFailed). On success,
    /// returns how to revert the change if another handler's commit fails afterwards.
    fn commit(self: Box<Self>) -> Result<Box<dyn Undo>, SetFailure>;
}

/// Reverts one committed [`PreparedSet`].
pub trait Undo: Send {
    fn undo(self: Box<Self>) -> Result<(), UndoFailed>;
}

/// An [`Undo`] for changes that need no reverting (or cannot be reverted and are harmless).
#[derive(Debug, Default)]
pub struct NothingToUndo;

impl Undo for NothingToUndo {
    fn undo(self: Box<Self>) -> Result<(), UndoFailed> {
        Ok(())
    }
}

/// A [`PreparedSet`] built from closures, for simple handlers: `commit` applies the change and
/// returns the closure that reverts it.
pub struct FnPreparedSet<C>(pub C);

impl<C, U> PreparedSet for FnPreparedSet<C>
where
    C: FnOnce() -> Result<U, SetFailure> + Send,
    U: FnOnce() -> Result<(), UndoFailed> + Send + 'static,
{
    fn commit(self: Box<Self>) -> Result<Box<dyn Undo>, SetFailure> {
        let undo = (self.0)()?;
        Ok(Box::new(FnUndo(undo)))
    }
}

struct FnUndo<U>(U);

impl<U> Undo for FnUndo<U>
where
    U: FnOnce() -> Result<(), UndoFailed> + Send,
{
    fn undo(self: Box<Self>) -> Result<(), UndoFailed> {
        (self.0)()
    }
}
