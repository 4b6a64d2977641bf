//! What an apply asks of the local PKI before it writes: the CA if there is
//! none, the playbook's client certificates, the one verification presents,
//! and a server certificate for each host, each issued only when missing,
//! about to expire or naming the wrong host.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Outcome, Pair, PkiStore, Waiting, pair_paths_in, read_pair};
use crate::core::input::inventory::Host;
use crate::core::input::playbook::Playbook;
use crate::core::pki::Sans;
use crate::core::roles::TlsMaterial;
use crate::error::{Error, Result};

/// Each host's server pair, and the client certificate verification presents.
pub type Issued = (ServerPairs, Option<Pair>);

/// The hosts' server pairs as [`issue`] left them. Each host's files are
/// read again when it starts, and must be the bytes the store checked (a
/// SHA-256 of both is kept): a fleet of 10,000 hosts holds 32 bytes for
/// each host waiting for its turn, not its PEM (about 1 KB), and reading
/// two small files costs a host some microseconds.
#[derive(Debug, Default)]
pub struct ServerPairs {
    /// The store's `servers` directory.
    servers: PathBuf,
    ca_pem: Option<Arc<[u8]>>,
    checked: HashMap<String, [u8; 32]>,
}

impl ServerPairs {
    /// `host`'s TLS files, read now; `None` when the PKI did not issue for
    /// `host` (not planned, or no PKI). Files that changed since the store
    /// checked them (another run re-issued them, say) are an error for
    /// this host: it is not sent a pair nobody checked.
    pub fn material(&self, host: &str) -> Result<Option<TlsMaterial>> {
        let (Some(digest), Some(ca_pem)) = (self.checked.get(host), &self.ca_pem) else {
            return Ok(None);
        };
        let (cert, key) = pair_paths_in(&self.servers, host);
        match read_pair(&cert, &key)? {
            Some(pair) if digest_of(&pair) == *digest => Ok(Some(TlsMaterial::Ready {
                ca_pem: ca_pem.clone(),
                cert_pem: pair.cert_pem,
                key_pem: pair.key_pem,
            })),
            _ => Err(Error::file(
                cert,
                format!(
                    "the server certificate of {host} or its key changed (or went) after this run checked it, before {host}'s turn: nothing was sent to {host}; run again"
                ),
            )),
        }
    }
}

/// The digest of a pair: the certificate's length, then both files.
fn digest_of(pair: &Pair) -> [u8; 32] {
    let mut sha = Sha256::new();
    sha.update((pair.cert_pem.len() as u64).to_le_bytes());
    sha.update(&pair.cert_pem);
    sha.update(&pair.key_pem);
    sha.finalize().into()
}

/// Issues what is missing for `hosts`, under one lock of the store (waited
/// for as `wait` says); says what it did through `say`. `verifier` names
/// the client certificate verification presents.
pub fn issue(
    store: &PkiStore,
    playbook: &Playbook,
    hosts: &[&Host],
    verifier: &str,
    now: i64,
    say: impl Fn(String),
    wait: &Waiting,
) -> Result<Issued> {
    let locked = store.locked(wait)?;
    if locked.ensure_ca()?.1 {
        say(format!("created the CA in {}", store.dir().display()));
    }
    let clients = playbook.pki.as_ref().map(|p| p.clients.clone());
    for name in clients.unwrap_or_default() {
        if let (_, Outcome::Issued(reason)) = locked.ensure_client(&name, now)? {
            say(format!("issued the client certificate `{name}` ({reason})"));
        }
    }
    let client = Some(locked.ensure_client(verifier, now)?.0);
    let ca_pem: std::sync::Arc<[u8]> = locked.trust_bundle()?.expect("created above").into();
    let mut checked = HashMap::with_capacity(hosts.len());
    let servers = hosts.iter().map(|h| (h.name.as_str(), Sans::of_host(h)));
    locked.ensure_servers(servers, now, |host, pair, outcome| {
        if let Outcome::Issued(reason) = outcome {
            say(format!(
                "issued the server certificate of {host} ({reason})"
            ));
        }
        checked.insert(host.to_string(), digest_of(&pair));
    })?;
    let pairs = ServerPairs {
        servers: store.dir().join("servers"),
        ca_pem: Some(ca_pem),
        checked,
    };
    Ok((pairs, client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::input::inventory::Inventory;
    use crate::core::input::playbook::PkiRole;

    #[test]
    fn each_host_reads_the_pair_the_store_checked_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = PkiStore::new(dir.path().join("pki"), PkiRole::default());
        let inventory = Inventory::parse_own(
            "i.yaml".as_ref(),
            "hosts:\n  web1: { address: 192.0.2.1 }\n  web2: { address: 192.0.2.2 }\n  web3: { address: 192.0.2.3 }\n",
            None,
        )
        .unwrap();
        let playbook = Playbook::parse("p.yaml".as_ref(), "pki: {}\n").unwrap();
        let hosts: Vec<&Host> = inventory.hosts.iter().take(2).collect();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (pairs, client) = issue(
            &store,
            &playbook,
            &hosts,
            "dockhand",
            now,
            |_| {},
            &Waiting::default(),
        )
        .unwrap();
        assert!(client.is_some());
        // A second run reuses both pairs: nothing is said, the digests stay.
        let said = std::cell::RefCell::new(Vec::new());
        let say = |m| said.borrow_mut().push(m);
        let wait = Waiting::default();
        let (again, _) = issue(&store, &playbook, &hosts, "dockhand", now, say, &wait).unwrap();
        assert!(said.borrow().is_empty(), "{said:?}");
        assert_eq!(again.checked, pairs.checked);
        let bad = [(
            "../web9",
            crate::core::pki::Sans::for_host("web9", "192.0.2.9", &[], &[]),
        )];
        let locked = store.locked(&Waiting::default()).unwrap();
        assert!(locked.ensure_servers(bad, now, |_, _, _| {}).is_err());
        drop(locked);

        let Some(TlsMaterial::Ready {
            ca_pem, cert_pem, ..
        }) = pairs.material("web1").unwrap()
        else {
            panic!("web1 was issued for")
        };
        let web1 = dir.path().join("pki/servers/web1/cert.pem");
        assert_eq!(cert_pem, std::fs::read(&web1).unwrap());
        assert_eq!(*ca_pem, *store.trust_bundle().unwrap().unwrap());
        assert_eq!(pairs.material("web3").unwrap(), None, "not issued for");

        // Another run re-issues web2's pair before web2's turn.
        let sans = crate::core::pki::Sans::for_host("web2", "192.0.2.9", &[], &[]);
        assert!(matches!(
            store.ensure_server("web2", &sans, now).unwrap().1,
            Outcome::Issued(_)
        ));
        let err = pairs.material("web2").unwrap_err().to_string();
        assert!(
            err.contains("servers/web2/cert.pem") && err.contains("changed (or went)"),
            "{err}"
        );
        std::fs::remove_file(&web1).unwrap();
        assert!(pairs.material("web1").is_err(), "a pair gone is no pair");
    }
}
