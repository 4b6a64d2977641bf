//! Hosts' TLS files read for plan, a host at a time: the CA and the
//! trust bundle once for the run.

use std::sync::{Arc, OnceLock};

use super::{Pair, PkiStore};
use crate::core::pki::Sans;
use crate::core::roles::TlsMaterial;
use crate::error::Result;

/// Hosts' TLS files as plan reads them, a host at a time when its turn
/// comes: the CA and the trust bundle are read, and the CA's key checked
/// against its certificate, once for the run (by the first host), not
/// once per host. A store without a CA is looked at again by each host.
pub struct TlsReader {
    store: Arc<PkiStore>,
    ca: OnceLock<(Pair, Arc<[u8]>)>,
}

impl TlsReader {
    pub fn new(store: Arc<PkiStore>) -> TlsReader {
        TlsReader {
            store,
            ca: OnceLock::new(),
        }
    }

    /// [`PkiStore::tls_for_host`], the CA read once.
    pub fn tls_for_host(&self, host: &str, sans: &Sans, now: i64) -> Result<TlsMaterial> {
        let ca = match self.ca.get() {
            Some(ca) => Some(ca),
            None => self
                .store
                .ca_and_bundle()?
                .map(|read| self.ca.get_or_init(|| read)),
        };
        self.store.tls_with(ca, host, sans, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::input::playbook::PkiRole;

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_reader_answers_as_the_store_does_and_reads_the_ca_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(PkiStore::new(dir.path().to_path_buf(), PkiRole::default()));
        let reader = TlsReader::new(store.clone());
        let sans = |host: &str| Sans::for_host(host, "192.0.2.1", &[], &[]);
        // No CA yet: pending, and looked at again by the next host.
        assert_eq!(
            reader.tls_for_host("web1", &sans("web1"), now()).unwrap(),
            TlsMaterial::CaPending
        );
        store.ensure_server("web1", &sans("web1"), now()).unwrap();
        store.rotate_start().unwrap();
        for host in ["web1", "web2"] {
            let read = reader.tls_for_host(host, &sans(host), now()).unwrap();
            assert_eq!(read, store.tls_for_host(host, &sans(host), now()).unwrap());
            let (TlsMaterial::Ready { ca_pem, .. } | TlsMaterial::CertPending { ca_pem, .. }) =
                read
            else {
                panic!("{host}: {read:?}");
            };
            assert_eq!(*ca_pem, *store.trust_bundle().unwrap().unwrap(), "{host}");
        }
        // The run's CA was read once: the reader keeps the bundle it read
        // (a plan is one snapshot of the store), the store reads it again.
        store.rotate_switch().unwrap();
        let TlsMaterial::CertPending { ca_pem, .. } =
            reader.tls_for_host("web2", &sans("web2"), now()).unwrap()
        else {
            panic!("web2 has no pair");
        };
        assert_ne!(*ca_pem, *store.trust_bundle().unwrap().unwrap());
    }
}
