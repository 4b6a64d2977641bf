//! What happened to a host, as the engine reports it and `report` renders
//! it: plain data, so the terminal side depends on the core alone.

use super::playbook::Handler;

/// A step of one host's pipeline.
#[derive(Debug, Clone)]
pub enum Step {
    Connected { user: String, seconds: f64 },
    Gathered { paths: usize, seconds: f64 },
    Written { files: usize, directories: usize },
    HandlersRan { handlers: Vec<Handler> },
    Verified { checks: Vec<String> },
    RolledBack { reason: String },
}

/// How apply ended on a host that did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Unchanged,
    Changed {
        changes: usize,
        handlers: Vec<Handler>,
    },
}
