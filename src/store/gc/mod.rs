//! Garbage collection of ownerReferences, as kube-apiserver's generic store and
//! kube-controller-manager's garbage collector share it: a DELETE's propagation policy becomes
//! the `orphan` or `foregroundDeletion` finalizer here (policy.rs), and a collector thread of
//! the store (collector.rs) deletes dependents whose owners are gone, holds a foreground
//! owner until its blocking dependents are gone, and orphans dependents of an owner that
//! asked for it.

mod collector;
mod policy;

pub use collector::start;
pub use policy::{deletion_finalizers, Propagation};

/// The finalizer of an owner whose dependents are orphaned before it goes (metav1's
/// FinalizerOrphanDependents).
pub const ORPHAN: &str = "orphan";
/// The finalizer of an owner that waits for its blocking dependents (metav1's
/// FinalizerDeleteDependents).
pub const FOREGROUND: &str = "foregroundDeletion";
