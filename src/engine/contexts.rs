//! Docker contexts for the selected hosts, one per host, named
//! `dockhand-HOST`, made with the docker CLI itself.
//!
//! - `access: tls`: the context's endpoint is `tcp://ADDRESS:PORT` with a
//!   client bundle.
//! - `access: ssh`: the endpoint is `ssh://dockhand-HOST`, an alias in
//!   `~/.ssh/dockhand.conf` that carries what dockhand itself connects
//!   with (address, port, user, identity files, the known_hosts it trusts,
//!   jump hosts), and `~/.ssh/config` includes that file. The docker CLI
//!   runs the system's `ssh`, which then needs nothing more.
//!
//! A context dockhand did not make (its description does not start with
//! `dockhand:`) is never changed or removed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::transport::Target;

/// The prefix of the contexts' names and the aliases' names.
pub const PREFIX: &str = "dockhand-";
/// What starts the description of every context dockhand makes.
const DESCRIPTION: &str = "dockhand:";

/// The home the docker CLI keeps its contexts in (and `~/.ssh`).
fn home() -> Result<PathBuf> {
    super::target::home_dir()
        .ok_or_else(|| Error::Usage("HOME is not set: it holds the docker CLI's contexts".into()))
}

/// The ssh alias file, and the line `~/.ssh/config` includes it with.
pub fn alias_file(home: &Path) -> PathBuf {
    home.join(".ssh/dockhand.conf")
}

/// The `Host dockhand-HOST` block (and one per jump host) for a target.
pub fn alias_blocks(host: &str, target: &Target, user: Option<&str>) -> String {
    let mut blocks = String::new();
    let jump = match &target.jump {
        Some(jump) => {
            let name = format!("{PREFIX}{host}-jump");
            blocks += &alias_blocks(&format!("{host}-jump"), jump, None);
            format!("  ProxyJump {name}\n")
        }
        None => String::new(),
    };
    let mut block = format!(
        "Host {PREFIX}{host}\n  HostName {}\n  Port {}\n  User {}\n",
        target.address,
        target.port,
        user.unwrap_or(&target.user)
    );
    for identity in target.identity_files.iter() {
        block += &format!("  IdentityFile \"{}\"\n", identity.display());
    }
    if !target.identity_files.is_empty() && !target.use_agent {
        block += "  IdentitiesOnly yes\n";
    }
    if let Some(known) = target.known_hosts.first() {
        block += &format!("  UserKnownHostsFile \"{}\"\n", known.display());
    }
    if let Some(alias) = &target.host_key_alias {
        block += &format!("  HostKeyAlias {alias}\n");
    }
    block += "  StrictHostKeyChecking yes\n";
    block += &jump;
    blocks + &block
}

/// `text` (the alias file) with the blocks of `host` replaced by `blocks`
/// (removed when empty); other hosts' blocks stay as they were.
pub fn merge_aliases(text: &str, host: &str, blocks: &str) -> String {
    let mine = |line: &str| {
        let name = line.strip_prefix("Host ").unwrap_or("").trim();
        name == format!("{PREFIX}{host}") || name == format!("{PREFIX}{host}-jump")
    };
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with("Host ") {
            skipping = mine(line);
        }
        if !skipping && !line.starts_with("# ") {
            out += line;
            out.push('\n');
        }
    }
    format!("# Written by dockhand (`dockhand context create`): one alias per host.\n{out}{blocks}")
}

/// `~/.ssh/config` with the alias file included first, so its blocks are
/// read whatever the file's own blocks say; unchanged when it is there.
pub fn with_include(config: &str, alias_file: &Path) -> String {
    let line = format!("Include \"{}\"", alias_file.display());
    if config.lines().any(|l| l.trim() == line) {
        return config.to_string();
    }
    format!("# Added by dockhand: the aliases of `dockhand context create`.\n{line}\n\n{config}")
}

/// Writes the aliases of `host` and makes sure `~/.ssh/config` includes them.
pub fn write_alias(home: &Path, host: &str, blocks: &str) -> Result<()> {
    let ssh = home.join(".ssh");
    if !ssh.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&ssh)
            .map_err(|e| Error::file(&ssh, e))?;
    }
    let file = alias_file(home);
    let old = std::fs::read_to_string(&file).unwrap_or_default();
    crate::pki::write_atomic(&file, merge_aliases(&old, host, blocks).as_bytes(), 0o600)?;
    let config = ssh.join("config");
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    let included = with_include(&text, &file);
    if included != text {
        crate::pki::write_atomic(&config, included.as_bytes(), 0o600)?;
    }
    Ok(())
}

/// What became of a context.
#[derive(Debug, PartialEq)]
pub enum Done {
    Created,
    Updated,
    Removed,
    /// It exists and dockhand did not make it.
    LeftAlone,
    Absent,
}

/// Creates or updates the context `name` with this `--docker` endpoint.
pub fn create(name: &str, docker_endpoint: &str) -> Result<Done> {
    let docker = docker_cli()?;
    let exists = match description(&docker, name) {
        Some(d) if !d.starts_with(DESCRIPTION) => return Ok(Done::LeftAlone),
        found => found.is_some(),
    };
    let action = if exists { "update" } else { "create" };
    run(
        Command::new(&docker)
            .args(["context", action, name])
            .args(["--description", &format!("{DESCRIPTION} {name}")])
            .args(["--docker", docker_endpoint]),
        &format!("docker context {action} {name}"),
    )?;
    Ok(if exists { Done::Updated } else { Done::Created })
}

/// Removes the context `name` if dockhand made it.
pub fn remove(name: &str) -> Result<Done> {
    let docker = docker_cli()?;
    match description(&docker, name) {
        None => Ok(Done::Absent),
        Some(d) if !d.starts_with(DESCRIPTION) => Ok(Done::LeftAlone),
        Some(_) => {
            run(
                Command::new(&docker).args(["context", "rm", "--force", name]),
                &format!("docker context rm {name}"),
            )?;
            Ok(Done::Removed)
        }
    }
}

/// A context's description; None when there is no such context. Read
/// from the JSON: docker 28's `--format` cannot reach into `Metadata`.
fn description(docker: &Path, name: &str) -> Option<String> {
    let output = Command::new(docker)
        .args(["context", "inspect", name])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let contexts: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    Some(
        contexts[0]["Metadata"]["Description"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .map_err(|e| Error::Usage(format!("cannot run the docker CLI: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{what}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn docker_cli() -> Result<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("docker"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            Error::Usage("docker contexts need the docker CLI, which is not installed here".into())
        })
}

/// One host's context: its name, what became of it, and its endpoint.
pub type Outcome = (String, Done, String);

/// `context create`: a context for every selected host, with `client`'s
/// bundle (`access: tls`) or an ssh alias logging in as `user` (`access:
/// ssh`; default: the user dockhand logs in as).
pub fn create_all(
    loaded: &super::load::Loaded,
    client: &str,
    user: Option<&str>,
) -> Result<Vec<Outcome>> {
    let home = &home()?;
    use crate::core::input::playbook::Access;
    let docker = loaded.playbook.docker.as_ref().ok_or_else(|| {
        Error::Usage(
            "the playbook has no docker role: there is no daemon to make contexts for".into(),
        )
    })?;
    if let Some(user) = user.filter(|u| {
        u.is_empty()
            || !u
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    }) {
        return Err(Error::Usage(format!(
            "--user {user:?}: not a user name (letters, digits, `.`, `_`, `-`)"
        )));
    }
    let mut out = Vec::new();
    if docker.access == Access::Ssh {
        for (host, target) in &loaded.hosts {
            write_alias(home, &host.name, &alias_blocks(&host.name, target, user))?;
            let name = format!("{PREFIX}{}", host.name);
            let endpoint = format!("ssh://{name}");
            let done = create(&name, &format!("host={endpoint}"))?;
            out.push((name, done, endpoint));
        }
        return Ok(out);
    }
    let store = loaded.store.as_ref().ok_or_else(|| {
        Error::Usage("`access: tls` needs the playbook's pki role, for the client bundle".into())
    })?;
    let (_, bundle) =
        store.write_client_bundle(client, &home.join(".docker/dockhand").join(client))?;
    let port = super::load::listen_port(&docker.listen)?;
    let file = |f: &str| bundle.join(f).display().to_string();
    for (host, _) in &loaded.hosts {
        let name = format!("{PREFIX}{}", host.name);
        let endpoint = crate::pki::context::endpoint(&host.address, port);
        let docker = format!(
            "host={endpoint},ca={},cert={},key={}",
            file("ca.pem"),
            file("cert.pem"),
            file("key.pem")
        );
        out.push((name.clone(), create(&name, &docker)?, endpoint));
    }
    Ok(out)
}

/// `context rm`: the selected hosts' contexts and aliases, where dockhand
/// made them.
pub fn remove_all(loaded: &super::load::Loaded) -> Result<Vec<Outcome>> {
    let home = &home()?;
    let mut out = Vec::new();
    let file = alias_file(home);
    for (host, _) in &loaded.hosts {
        let name = format!("{PREFIX}{}", host.name);
        let done = remove(&name)?;
        if done != Done::LeftAlone
            && let Ok(text) = std::fs::read_to_string(&file)
        {
            crate::pki::write_atomic(
                &file,
                merge_aliases(&text, &host.name, "").as_bytes(),
                0o600,
            )?;
        }
        out.push((name, done, String::new()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::HostKeyPolicy;
    use std::time::Duration;

    fn target(address: &str, jump: Option<Target>) -> Target {
        Target {
            name: "web1".into(),
            address: address.into(),
            port: 2222,
            user: "deploy".into(),
            identity_files: vec!["/keys/lab key".into()].into(),
            use_agent: false,
            known_hosts: vec!["/state/known_hosts".into()].into(),
            host_key_policy: HostKeyPolicy::Strict,
            host_key_alias: None,
            connect_timeout: Duration::from_secs(10),
            jump: jump.map(Box::new),
            meter: Default::default(),
        }
    }

    #[test]
    fn an_alias_carries_what_dockhand_connects_with_and_replaces_only_its_own() {
        let blocks = alias_blocks(
            "web1",
            &target("198.18.0.2", Some(target("198.18.0.1", None))),
            None,
        );
        assert_eq!(
            blocks,
            "Host dockhand-web1-jump\n  HostName 198.18.0.1\n  Port 2222\n  User deploy\n  IdentityFile \"/keys/lab key\"\n  IdentitiesOnly yes\n  UserKnownHostsFile \"/state/known_hosts\"\n  StrictHostKeyChecking yes\n\
             Host dockhand-web1\n  HostName 198.18.0.2\n  Port 2222\n  User deploy\n  IdentityFile \"/keys/lab key\"\n  IdentitiesOnly yes\n  UserKnownHostsFile \"/state/known_hosts\"\n  StrictHostKeyChecking yes\n  ProxyJump dockhand-web1-jump\n"
        );
        let first = merge_aliases("", "web1", &blocks);
        let both = merge_aliases(&first, "db1", "Host dockhand-db1\n  HostName 198.18.0.3\n");
        let again = merge_aliases(
            &both,
            "web1",
            &alias_blocks("web1", &target("198.18.0.9", None), Some("ops")),
        );
        assert_eq!(again.matches("Host dockhand-db1\n").count(), 1, "{again}");
        assert_eq!(again.matches("Host dockhand-web1\n").count(), 1, "{again}");
        assert!(!again.contains("dockhand-web1-jump"), "{again}");
        assert!(
            again.contains("HostName 198.18.0.9\n  Port 2222\n  User ops\n"),
            "{again}"
        );
        assert!(!merge_aliases(&again, "web1", "").contains("dockhand-web1"));
        // `~/.ssh/config` gains the Include once, before its own blocks.
        let config = with_include(
            "Host *\n  User me\n",
            Path::new("/home/u/.ssh/dockhand.conf"),
        );
        assert!(
            config.contains("Include \"/home/u/.ssh/dockhand.conf\"\n\nHost *\n"),
            "{config}"
        );
        assert_eq!(
            with_include(&config, Path::new("/home/u/.ssh/dockhand.conf")),
            config
        );
    }
}
