//! The CA's key: kept encrypted at rest (`pki init --encrypt`, `pki
//! import`), opened only when it signs, and a CA the user made elsewhere
//! adopted as it is, so every client it signed keeps working.

use std::path::Path;

use rcgen::KeyPair;

use super::{Pair, PkiStore, keys, write_pair};
use crate::core::pki;
use crate::error::{Error, Result};
use crate::secret::SecretSource;

/// The environment variable that may hold the CA key's passphrase.
pub const PASSPHRASE_ENV: &str = "DOCKHAND_CA_PASSPHRASE";

/// Where the CA key's passphrase comes from: `file` (`--passphrase-file`),
/// else `DOCKHAND_CA_PASSPHRASE`, else a prompt on the terminal.
pub fn passphrase_source(file: Option<std::path::PathBuf>) -> SecretSource {
    SecretSource::new(
        "the CA key's passphrase",
        "--passphrase-file",
        PASSPHRASE_ENV,
    )
    .with_file(file)
}

/// What `pki init` did.
#[derive(Debug, PartialEq)]
pub enum Initialized {
    Created {
        encrypted: bool,
    },
    Kept {
        encrypted: bool,
    },
    /// The CA existed with a plain key, now encrypted (`--encrypt`).
    Encrypted,
}

/// The CA `pki import` adopted.
#[derive(Debug)]
pub struct Imported {
    pub subject: String,
    pub fingerprint: String,
    pub days_left: i64,
    /// Whether the key came encrypted (else it was encrypted on import).
    pub came_encrypted: bool,
}

impl PkiStore {
    /// Whether the CA key is kept encrypted.
    pub fn is_sealed(&self) -> bool {
        std::fs::read(self.ca_paths().1).is_ok_and(|pem| keys::is_encrypted(&pem))
    }

    /// `pki init [--encrypt]`: the CA, created if missing; with `encrypt`,
    /// its key encrypted (a plain key that exists is encrypted in place).
    pub fn init(&self, encrypt: bool) -> Result<Initialized> {
        let _lock = self.lock()?;
        if let Some(stage) = self.rotation().filter(|_| encrypt) {
            // The next or old CA's key would stay in the clear, and
            // become the current one at `switch`.
            return Err(Error::Usage(format!(
                "a CA rotation is {stage}: finish it (`dockhand pki rotate …`) before encrypting the CA key"
            )));
        }
        match self.ca()? {
            Some(ca) if encrypt && !keys::is_encrypted(&ca.key_pem) => {
                let (cert, key) = self.ca_paths();
                self.write_ca(&cert, &key, &ca, true)?;
                Ok(Initialized::Encrypted)
            }
            Some(ca) => Ok(Initialized::Kept {
                encrypted: keys::is_encrypted(&ca.key_pem),
            }),
            None => {
                let pair = self.new_ca()?;
                let (cert, key) = self.ca_paths();
                self.write_ca(&cert, &key, &pair, encrypt)?;
                Ok(Initialized::Created { encrypted: encrypt })
            }
        }
    }

    /// `pki import`: adopts a CA made elsewhere into an empty store. The
    /// certificate must be a CA that has not expired, the key must be its
    /// own; the key is kept encrypted under the same passphrase (asked for
    /// when the key came in the clear).
    pub fn import(&self, cert_pem: &[u8], key_pem: &[u8], now: i64) -> Result<Imported> {
        let _lock = self.lock()?;
        let (cert_path, key_path) = self.ca_paths();
        if cert_path.exists() || key_path.exists() {
            return Err(Error::Usage(format!(
                "the store {} already has a CA: import only into an empty store (to move to another CA with every host reachable, use `dockhand pki rotate`)",
                self.dir.display()
            )));
        }
        let info = pki::read_certificate(cert_pem, None)
            .map_err(|e| Error::Usage(format!("--ca-cert: {e}")))?;
        if !info.is_ca {
            return Err(Error::Usage(format!(
                "--ca-cert: {} is not a CA certificate (its basicConstraints do not say CA:TRUE)",
                info.subject
            )));
        }
        let days_left = (info.not_after - now).div_euclid(86_400);
        if info.not_after <= now {
            return Err(Error::Usage(format!(
                "--ca-cert: the CA {} has expired: every certificate it signed is refused already",
                info.subject
            )));
        }
        let came_encrypted = keys::is_encrypted(key_pem);
        let der = keys::read(key_pem, || self.passphrase.get())
            .map_err(|e| Error::Usage(format!("--ca-key: {e}")))?;
        let key = KeyPair::try_from(der.as_slice())
            .map_err(|e| Error::Usage(format!("--ca-key: the key cannot sign: {e}")))?;
        super::key_pair_matches(cert_pem, &key).map_err(|e| {
            Error::Usage(format!(
                "--ca-key does not belong to --ca-cert ({}): {e}",
                info.subject
            ))
        })?;
        let sealed = keys::encrypt(&der, &self.passphrase.get_new().map_err(Error::Usage)?)
            .map_err(|e| self.error("encrypt the CA key", e))?;
        let pair = Pair {
            cert_pem: cert_pem.to_vec(),
            key_pem: sealed.as_bytes().to_vec(),
        };
        write_pair(&cert_path, &key_path, &pair)?;
        Ok(Imported {
            subject: info.subject,
            fingerprint: info.fingerprint,
            days_left,
            came_encrypted,
        })
    }

    /// The CA's key, ready to sign: an encrypted key is opened with the
    /// passphrase (once per run) and checked against the certificate.
    pub(super) fn signing_key(&self, ca: &Pair, wait: &super::Waiting) -> Result<KeyPair> {
        if !keys::is_encrypted(&ca.key_pem) {
            return KeyPair::from_pem(&String::from_utf8_lossy(&ca.key_pem))
                .map_err(|e| self.error("read the CA key", e));
        }
        let mut unsealed = self.unsealed.lock().expect("not poisoned");
        let der = match unsealed.as_ref() {
            Some((cert, der)) if *cert == ca.cert_pem => der.clone(),
            _ => {
                let get = || self.passphrase.get_until(&|| wait.cancelled());
                // Only a prompt holds the run's output: a passphrase
                // given in a file or the environment is read unseen.
                let asked = || {
                    if self.passphrase.is_given() {
                        get()
                    } else {
                        wait.at_prompt(get)
                    }
                };
                let der = keys::read(&ca.key_pem, asked).map_err(|e| {
                    Error::file(self.ca_paths().1, format!("cannot open the CA key: {e}"))
                })?;
                *unsealed = Some((ca.cert_pem.clone(), der.clone()));
                der
            }
        };
        let key =
            KeyPair::try_from(der.as_slice()).map_err(|e| self.error("read the CA key", e))?;
        super::key_pair_matches(&ca.cert_pem, &key).map_err(|reason| {
            Error::file(
                &self.dir,
                format!(
                    "the CA is broken: {reason}. Restore ca.pem and ca-key.pem from your backup"
                ),
            )
        })?;
        Ok(key)
    }

    /// Writes a CA; with `sealed`, its key encrypted under the passphrase.
    pub(super) fn write_ca(
        &self,
        cert: &Path,
        key: &Path,
        pair: &Pair,
        sealed: bool,
    ) -> Result<()> {
        if !sealed || keys::is_encrypted(&pair.key_pem) {
            return write_pair(cert, key, pair);
        }
        let der = keys::read(&pair.key_pem, || Err("a plain key".into()))
            .map_err(|e| self.error("read the CA key", e))?;
        let passphrase = self.passphrase.get_new().map_err(Error::Usage)?;
        let pem =
            keys::encrypt(&der, &passphrase).map_err(|e| self.error("encrypt the CA key", e))?;
        let sealed = Pair {
            cert_pem: pair.cert_pem.clone(),
            key_pem: pem.as_bytes().to_vec(),
        };
        write_pair(cert, key, &sealed)
    }
}

#[cfg(test)]
#[path = "ca_tests.rs"]
mod tests;
