//! The operator's commands beside `serve`: what an administrator needs on
//! the host itself, without the API — the first user, a forgotten
//! password, a backup, a master-key rotation, and a check that the
//! configuration can reach everything it names.
//!
//! Each reads the same configuration as `serve` (the `AICARPOOL_*`
//! variables), prints what it did, and fails with a message that says
//! what to fix.

pub mod backup;
pub mod check;
pub mod rotate;
pub mod users;
