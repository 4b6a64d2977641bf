//! The engine: per-host pipelines over the transport (gather today;
//! apply, handlers and rollback next), many hosts at once.

pub mod gather;
