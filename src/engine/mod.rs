//! The engine: per-host pipelines over the transport: gather the actual
//! state in one round trip, apply a plan atomically with its handlers, and
//! finish or roll back after verification.

pub mod apply;
pub mod contexts;
pub mod deploy;
#[cfg(any(test, feature = "simulation"))]
pub mod fake;
pub mod fleet;
pub mod gather;
pub mod inspect;
pub mod load;
pub mod pipeline;
pub mod remote;
pub mod runtime;
mod shared;
#[cfg(any(test, feature = "simulation"))]
mod sim;
mod target;
pub mod work;
