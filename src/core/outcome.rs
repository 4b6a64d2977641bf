//! How apply (and ping) ended on a host, as the engine reports it and `report`
//! renders it: plain data, so the terminal side depends on the core alone.

use crate::core::input::playbook::Handler;

/// How apply ended on a host that did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Unchanged,
    Changed {
        changes: usize,
        handlers: Vec<Handler>,
    },
}

/// One host's answer to `ping`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PingReply {
    pub hostname: String,
    pub user: String,
    pub docker: String,
    pub sudo: Option<String>,
}
