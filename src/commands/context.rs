//! `dockhand context create|rm -i INVENTORY PLAYBOOK [--limit P]
//! [--client NAME] [--user U]`: one docker context per selected host,
//! `dockhand-HOST` (`engine::contexts`): over mutual TLS with a client
//! bundle, or over SSH through an alias dockhand writes. Contexts dockhand
//! did not make are left alone.

use crate::engine::contexts::{self, Done};
use crate::engine::load::{self, Selection};
use crate::error::Result;
use crate::report;

pub struct Options {
    pub selection: Selection,
    /// The client certificate of `access: tls` contexts.
    pub client: String,
    /// The login of `access: ssh` contexts (default: dockhand's own).
    pub user: Option<String>,
    pub remove: bool,
}

pub fn run(options: &Options) -> Result<i32> {
    let loaded = load::load(&options.selection)?;
    let outcomes = if options.remove {
        contexts::remove_all(&loaded)?
    } else {
        contexts::create_all(&loaded, &options.client, options.user.as_deref())?
    };
    let mut left_alone = 0;
    for (name, done, endpoint) in &outcomes {
        let said = match done {
            Done::Created => format!(
                "created the docker context `{name}` ({endpoint}): docker --context {name} version"
            ),
            Done::Updated => format!("updated the docker context `{name}` ({endpoint})"),
            Done::Removed => format!("removed the docker context `{name}` and its ssh alias"),
            Done::Absent => format!("no docker context `{name}`"),
            Done::LeftAlone => {
                left_alone += 1;
                format!("the docker context `{name}` was not made by dockhand: left alone")
            }
        };
        report::pki_event(&said);
    }
    Ok(if left_alone > 0 { 1 } else { 0 })
}
