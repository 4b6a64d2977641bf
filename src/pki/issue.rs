//! What an apply asks of the local PKI before it writes: the CA if there is
//! none, the playbook's client certificates, the one verification presents,
//! and a server certificate for each host, each issued only when missing,
//! about to expire or naming the wrong host.

use std::collections::HashMap;

use super::{Outcome, Pair, PkiStore};
use crate::core::input::inventory::Host;
use crate::core::input::playbook::Playbook;
use crate::core::pki::Sans;
use crate::core::roles::TlsMaterial;
use crate::error::Result;

/// Each host's TLS files, and the client certificate verification presents.
pub type Issued = (HashMap<String, TlsMaterial>, Option<Pair>);

/// Issues what is missing for `hosts`; says what it did through `say`.
/// `verifier` names the client certificate verification presents.
pub fn issue(
    store: &PkiStore,
    playbook: &Playbook,
    hosts: &[&Host],
    verifier: &str,
    now: i64,
    say: impl Fn(String),
) -> Result<Issued> {
    if store.ensure_ca()?.1 {
        say(format!("created the CA in {}", store.dir().display()));
    }
    let clients = playbook.pki.as_ref().map(|p| p.clients.clone());
    for name in clients.unwrap_or_default() {
        if let (_, Outcome::Issued(reason)) = store.ensure_client(&name, now)? {
            say(format!("issued the client certificate `{name}` ({reason})"));
        }
    }
    let client = Some(store.ensure_client(verifier, now)?.0);
    let ca_pem: std::sync::Arc<[u8]> = store.trust_bundle()?.expect("created above").into();
    let mut issued = HashMap::new();
    for host in hosts {
        let (pair, outcome) = store.ensure_server(&host.name, &Sans::of_host(host), now)?;
        if let Outcome::Issued(reason) = outcome {
            say(format!(
                "issued the server certificate of {} ({reason})",
                host.name
            ));
        }
        let tls = TlsMaterial::Ready {
            ca_pem: ca_pem.clone(),
            cert_pem: pair.cert_pem,
            key_pem: pair.key_pem,
        };
        issued.insert(host.name.clone(), tls);
    }
    Ok((issued, client))
}
