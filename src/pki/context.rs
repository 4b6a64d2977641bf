//! Docker contexts for the hosts dockhand secured: one per host, made with
//! the docker CLI itself (`docker context create`), so `docker --context
//! HOST …` reaches the host over mutual TLS with a client bundle.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// The docker CLI's address of a daemon listening on TCP `port`.
pub fn endpoint(address: &str, port: u16) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("tcp://[{v6}]:{port}"),
        _ => format!("tcp://{address}:{port}"),
    }
}

/// Creates the context `name`, or updates it when it exists; returns what
/// was done ("created" or "updated").
pub fn create(name: &str, endpoint: &str, bundle: &Path) -> Result<&'static str> {
    let docker = which("docker").ok_or_else(|| {
        Error::Usage(
            "--context needs the docker CLI, which is not installed here; the bundle and the exports above work without it"
                .into(),
        )
    })?;
    let file = |f: &str| bundle.join(f).display().to_string();
    let endpoint = format!(
        "host={endpoint},ca={},cert={},key={}",
        file("ca.pem"),
        file("cert.pem"),
        file("key.pem")
    );
    let exists = Command::new(&docker)
        .args(["context", "inspect", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let action = if exists { "update" } else { "create" };
    let output = Command::new(&docker)
        .args(["context", action, name])
        .args(["--description", &format!("dockhand: {name}")])
        .args(["--docker", &endpoint])
        .output()
        .map_err(|e| Error::Usage(format!("cannot run the docker CLI: {e}")))?;
    if !output.status.success() {
        return Err(Error::Usage(format!(
            "docker context {action} {name}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(if exists { "updated" } else { "created" })
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
