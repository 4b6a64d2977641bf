//! `dockhand pki client NAME --out DIR [-i INVENTORY [--host H] [--context]]`:
//! a client bundle (the three files the docker CLI reads from
//! `DOCKER_CERT_PATH`: `ca.pem`, `cert.pem` and `key.pem` 0600), the
//! exports that point the docker CLI at a host, and docker contexts.

use std::path::Path;

use crate::error::{Error, Result};
use crate::pki::{Outcome, PkiStore, context};
use crate::report;

use crate::engine::load::playbook as load_playbook;

/// `pki client`: what to write, and for which hosts.
pub struct ClientOptions {
    pub name: String,
    pub out: std::path::PathBuf,
    /// The inventory whose hosts the exports and contexts name.
    pub inventory: Option<std::path::PathBuf>,
    /// The host `DOCKER_HOST` points at.
    pub host: Option<String>,
    /// Create a docker context per host (or for `host`).
    pub context: bool,
}

pub fn client(store: &PkiStore, playbook: Option<&Path>, options: &ClientOptions) -> Result<i32> {
    let (name, out) = (&options.name, &options.out);
    // What the hosts are, checked before anything is written.
    let hosts = match &options.inventory {
        Some(path) => crate::engine::load::inventory(path)?.hosts,
        None if options.host.is_some() || options.context => {
            return Err(Error::Usage(
                "--host and --context need the inventory: add -i INVENTORY".into(),
            ));
        }
        None => Vec::new(),
    };
    let chosen: Vec<_> = match &options.host {
        Some(wanted) => vec![hosts.iter().find(|h| &h.name == wanted).ok_or_else(|| {
            Error::Usage(format!("--host {wanted:?}: no such host in the inventory"))
        })?],
        None => hosts.iter().collect(),
    };
    let port = match playbook {
        Some(path) => match load_playbook(path)?.docker {
            Some(docker) => crate::engine::load::listen_port(&docker.listen)?,
            None => 2376,
        },
        None => 2376,
    };
    let (outcome, bundle) = store.write_client_bundle(name, out)?;
    let what = match outcome {
        Outcome::Reused => "reused the client certificate".to_string(),
        Outcome::Issued(reason) => format!("issued a client certificate ({reason})"),
    };
    report::pki_event(&format!("{what} `{name}`; bundle in {}", out.display()));
    let endpoint = |address: &str| context::endpoint(address, port);
    let docker_host = options.host.as_ref().map(|_| endpoint(&chosen[0].address));
    report::docker_exports(docker_host.as_deref(), &bundle);
    if options.context {
        for host in &chosen {
            let created = context::create(&host.name, &endpoint(&host.address), &bundle)?;
            report::pki_event(&format!(
                "{created} the docker context `{}` ({}): docker --context {} version",
                host.name,
                endpoint(&host.address),
                host.name
            ));
        }
    }
    Ok(0)
}
