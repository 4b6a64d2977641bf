//! `dockhand pki init | client NAME --out DIR | list`: the local CA and
//! client bundles. A bundle holds the three files the docker CLI reads from
//! `DOCKER_CERT_PATH`: `ca.pem`, `cert.pem` and `key.pem` (0600).

use std::path::Path;

use crate::core::playbook::PkiRole;
use crate::error::{Error, Result};
use crate::pki::{Outcome, PkiStore, write_atomic as write_file};
use crate::report;

use crate::engine::load::{now, playbook as load_playbook};

/// The store, with settings from a playbook's `pki` section if one is given.
pub fn store(playbook: Option<&Path>) -> Result<PkiStore> {
    let settings = match playbook {
        Some(path) => load_playbook(path)?.pki.unwrap_or_default(),
        None => PkiRole::default(),
    };
    let dir = PkiStore::locate(&settings, playbook.unwrap_or(Path::new("./playbook.yaml")));
    Ok(PkiStore::new(dir, settings))
}

pub fn init(playbook: Option<&Path>) -> Result<i32> {
    let store = store(playbook)?;
    let (_, created) = store.ensure_ca()?;
    report::pki_event(&if created {
        format!("created the CA in {}", store.dir().display())
    } else {
        format!("the CA in {} exists; kept", store.dir().display())
    });
    Ok(0)
}

pub fn client(playbook: Option<&Path>, name: &str, out: &Path) -> Result<i32> {
    let store = store(playbook)?;
    let (ca, _) = store.ensure_ca()?;
    let (pair, outcome) = store.ensure_client(name, now())?;
    std::fs::create_dir_all(out).map_err(|e| Error::file(out, e))?;
    write_file(&out.join("key.pem"), &pair.key_pem, 0o600)?;
    write_file(&out.join("cert.pem"), &pair.cert_pem, 0o644)?;
    write_file(&out.join("ca.pem"), &ca.cert_pem, 0o644)?;
    let what = match outcome {
        Outcome::Reused => "reused the client certificate".to_string(),
        Outcome::Issued(reason) => format!("issued a client certificate ({reason})"),
    };
    report::pki_event(&format!("{what} `{name}`; bundle in {}", out.display()));
    report::raw_stdout(&format!(
        "export DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={}\n",
        out.canonicalize()
            .unwrap_or_else(|_| out.to_path_buf())
            .display()
    ));
    Ok(0)
}

pub fn list(playbook: Option<&Path>) -> Result<i32> {
    let store = store(playbook)?;
    let entries = store.list()?;
    if entries.is_empty() {
        report::pki_event(&format!(
            "no CA in {} yet: run `dockhand pki init` or `dockhand apply`",
            store.dir().display()
        ));
        return Ok(0);
    }
    report::pki_list(&entries);
    Ok(0)
}
