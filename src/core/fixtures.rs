//! What the core's tests (and the engine's) build hosts and resources
//! from: one helper for each, so a test says only what is particular to it.

use super::input::playbook::Handler;
use super::plan::sha256_hex;
use super::roles::{Content, DirectoryResource, FileResource};
use super::state::{ActualPath, ActualState, Facts, PathKind};

/// A Debian host's facts as the packaged docker.io leaves them.
pub fn debian_facts() -> Facts {
    Facts {
        dockerd_path: Some("/usr/sbin/dockerd".into()),
        nft_path: Some("/usr/sbin/nft".into()),
        docker_exec_start: vec![
            "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS"
                .split(' ')
                .map(String::from)
                .collect(),
        ],
        ..Facts::default()
    }
}

/// A host with these facts and no managed path yet.
pub fn state(facts: Facts) -> ActualState {
    ActualState {
        facts,
        ..ActualState::default()
    }
}

/// A directory of root's, 0755.
pub fn dir(path: &str) -> DirectoryResource {
    DirectoryResource {
        path: path.into(),
        mode: 0o755,
        owner: "root".into(),
        group: "root".into(),
    }
}

/// A file of root's.
pub fn file(
    path: &str,
    content: Content,
    mode: u32,
    secret: bool,
    notify: Vec<Handler>,
) -> FileResource {
    FileResource {
        secret,
        ..FileResource::root_owned(path, content, mode, notify)
    }
}

/// A regular file of root's as the gather reports it, content shown.
pub fn present(content: &[u8], mode: u32) -> ActualPath {
    ActualPath {
        exists: true,
        kind: Some(PathKind::File),
        mode,
        owner: "root".into(),
        group: "root".into(),
        size: content.len() as u64,
        sha256: Some(sha256_hex(content)),
        content: Some(content.to_vec()),
    }
}

/// A directory of root's as the gather reports it.
pub fn present_dir(mode: u32) -> ActualPath {
    ActualPath {
        exists: true,
        kind: Some(PathKind::Directory),
        mode,
        owner: "root".into(),
        group: "root".into(),
        ..ActualPath::default()
    }
}

/// A self-signed CA named `name`, as PEM: a CA made by someone else.
pub fn foreign_ca(name: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem().into_bytes()
}
