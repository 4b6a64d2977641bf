//! dockhand: a declarative provisioning engine, applied over SSH, that
//! secures Docker daemons across a fleet.
//!
//! The layers follow `DESIGN.md`: `cli` (clap, sealed) → `commands` (one
//! file per subcommand) → `core` (pure) / `transport` (SSH) / `lab`
//! (disposable hosts), with `report` the only place that writes to the
//! terminal besides `main`.

pub mod cli;
pub mod commands;
pub mod core;
pub mod engine;
pub mod error;
pub mod lab;
pub mod pki;
pub mod random;
pub mod report;
pub mod transport;
pub mod verify;
