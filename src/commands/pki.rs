//! `dockhand pki init [--encrypt] | import | list | rotate`: the local CA
//! (`pki client`, the bundles, is in `pki_client`).

use std::path::{Path, PathBuf};

use crate::core::input::playbook::PkiRole;
use crate::error::{Error, Result};
use crate::pki::{Initialized, PkiStore};
use crate::report;

use crate::engine::load::{now, playbook as load_playbook};

/// The store, with settings from a playbook's `pki` section if one is
/// given, and the CA key's passphrase from `passphrase_file` if one is.
pub fn store(playbook: Option<&Path>, passphrase_file: Option<PathBuf>) -> Result<PkiStore> {
    let settings = match playbook {
        Some(path) => load_playbook(path)?.pki.unwrap_or_default(),
        None => PkiRole::default(),
    };
    let dir = PkiStore::locate(&settings, playbook.unwrap_or(Path::new("./playbook.yaml")));
    Ok(
        PkiStore::new(dir, settings)
            .with_passphrase(crate::pki::passphrase_source(passphrase_file)),
    )
}

pub fn init(store: &PkiStore, encrypt: bool) -> Result<i32> {
    let dir = store.dir().display();
    let sealed = |encrypted: bool| {
        if encrypted {
            " (its key encrypted)"
        } else {
            ""
        }
    };
    report::pki_event(&match store.init(encrypt)? {
        Initialized::Created { encrypted } => {
            format!("created the CA in {dir}{}", sealed(encrypted))
        }
        Initialized::Kept { encrypted } => {
            format!("the CA in {dir} exists; kept{}", sealed(encrypted))
        }
        Initialized::Encrypted => format!("the CA in {dir} exists; its key is now encrypted"),
    });
    Ok(0)
}

/// `pki import --ca-cert FILE --ca-key FILE`: adopts a CA made elsewhere.
pub fn import(store: &PkiStore, cert: &Path, key: &Path) -> Result<i32> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| Error::file(path, e));
    let imported = store.import(&read(cert)?, &read(key)?, now())?;
    report::pki_event(&format!(
        "imported the CA {} (SHA-256 {}), valid for {} more day(s), into {}; its key is kept encrypted{}. \
         Hosts that trust it keep their clients; `dockhand apply` issues their server certificates from it",
        imported.subject,
        imported.fingerprint,
        imported.days_left,
        store.dir().display(),
        if imported.came_encrypted {
            " under the same passphrase"
        } else {
            ""
        },
    ));
    Ok(0)
}

/// `pki rotate start|switch|finish`: a CA rotation in three steps, each
/// followed by an apply, with every host reachable throughout.
pub fn rotate(store: &PkiStore, step: &str) -> Result<i32> {
    let said = match step {
        "start" => {
            store.rotate_start()?;
            "started a CA rotation: a new CA is trusted beside the current one from the next apply on. \
             Next: `dockhand apply`, then `dockhand pki client` for every client bundle (its ca.pem now \
             holds both CAs), then `dockhand pki rotate switch`"
        }
        "switch" => {
            store.rotate_switch()?;
            "switched: the new CA issues from now on, the old one is still trusted. Next: `dockhand apply` \
             (every server certificate is reissued), `dockhand pki client` again, then `dockhand pki rotate finish`"
        }
        _ => {
            store.rotate_finish()?;
            "finished: the old CA is no longer trusted and its key is deleted. Next: `dockhand apply`, \
             after which only certificates of the new CA are accepted"
        }
    };
    report::pki_event(said);
    Ok(0)
}

pub fn list(store: &PkiStore, format: report::Format) -> Result<i32> {
    let entries = store.list(now())?;
    if entries.is_empty() && format == report::Format::Human {
        report::pki_event(&format!(
            "no CA in {} yet: run `dockhand pki init` or `dockhand apply`",
            store.dir().display()
        ));
        return Ok(0);
    }
    report::pki_list(&entries, format);
    Ok(0)
}
