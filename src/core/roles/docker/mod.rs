//! The docker role's knowledge: daemon.json (merging, its schema by
//! dockerd release), the systemd unit and the drop-in dockhand writes,
//! dockerd's command-line flags, and what dockerd holds (the workload).

pub mod daemon_json;
pub mod daemon_schema;
pub mod flags;
pub mod override_conf;
pub mod unit;
pub mod workload;
