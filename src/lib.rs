//! dockhand: a declarative provisioning engine, applied over SSH, that
//! secures Docker daemons across a fleet.
//!
//! The layers are mapped in `docs/ARCHITECTURE.md`: `cli` (clap, sealed)
//! → `commands` (one file per subcommand) → `engine` (loading, the fleet
//! runner, one host's pipeline) → `core` (pure) / `transport` (SSH), with
//! `lab` for disposable hosts and `report` the only place that writes to
//! the terminal besides `main`.

pub mod cli;
pub mod commands;
pub mod core;
pub mod engine;
pub mod error;
pub mod lab;
pub mod pki;
pub mod random;
pub mod report;
pub mod secret;
pub mod transport;
pub mod verify;

#[cfg(test)]
mod fuzz_tests;
