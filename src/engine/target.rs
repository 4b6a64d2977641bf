//! From an inventory host to a transport target: the inventory's settings
//! first, then `~/.ssh/config` (aliases, HostName, User, Port,
//! IdentityFile, ProxyJump, UserKnownHostsFile, StrictHostKeyChecking,
//! HostKeyAlias, ConnectTimeout), then OpenSSH's defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::shared::Shared;
use crate::core::input::inventory::{Host, HostKeyChecking};
use crate::core::input::ssh_config::{HostSettings, SshConfig};
use crate::error::{Error, Result};
use crate::transport::{HostKeyPolicy, Target};

/// Connect, handshake and authenticate within this, unless told otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds targets with the user's home and ssh configuration.
pub struct Targets {
    home: Option<PathBuf>,
    ssh_config: SshConfig,
    /// The key files OpenSSH tries when nothing names one: the ones of
    /// `~/.ssh` that exist, looked up once for the whole fleet.
    default_identities: Arc<[PathBuf]>,
    /// The known_hosts files OpenSSH reads when nothing names one.
    default_known_hosts: Arc<[PathBuf]>,
    /// The lists of files the targets built so far hold, each once: a
    /// fleet of 10,000 has one or two, not 10,000 copies.
    lists: Shared<[PathBuf]>,
}

impl Targets {
    /// Reads `file` (`-F`, which must exist, as with ssh), else
    /// `~/.ssh/config` if there is one (`DOCKHAND_SSH_CONFIG` points
    /// elsewhere; an empty value means none).
    pub fn from_environment(file: Option<&Path>) -> Result<Targets> {
        let home = home_dir();
        let path = match (file, std::env::var_os("DOCKHAND_SSH_CONFIG")) {
            (Some(file), _) => Some(file.to_path_buf()),
            (None, Some(path)) if path.is_empty() => None,
            (None, Some(path)) => Some(PathBuf::from(path)),
            (None, None) => home.as_ref().map(|h| h.join(".ssh/config")),
        };
        let text = match &path {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.is_none() => {
                    String::new()
                }
                Err(e) => return Err(Error::file(path, e)),
            },
            None => String::new(),
        };
        let include = |pattern: &str| included_files(pattern, home.as_deref());
        let mut config = SshConfig::parse_with(&text, &include);
        if let Some(error) = config.errors.first() {
            let file = path.unwrap_or_default();
            return Err(Error::file(&file, format!("ssh_config: {error}")));
        }
        config.local_user = local_user();
        Ok(Targets::new(home.clone(), config))
    }

    pub fn new(home: Option<PathBuf>, ssh_config: SshConfig) -> Targets {
        let ssh_dir = home.as_ref().map(|h| h.join(".ssh"));
        let default_identities = ssh_dir
            .iter()
            .flat_map(|dir| ["id_ed25519", "id_ecdsa", "id_rsa"].map(|f| dir.join(f)))
            .filter(|path| path.exists())
            .collect();
        let default_known_hosts = ssh_dir
            .iter()
            .map(|dir| dir.join("known_hosts"))
            .chain([PathBuf::from("/etc/ssh/ssh_known_hosts")])
            .collect();
        Targets {
            home,
            ssh_config,
            default_identities,
            default_known_hosts,
            lists: Shared::new(16),
        }
    }

    fn expand(&self, path: &str) -> PathBuf {
        crate::core::input::inventory::expand_home(Path::new(path), self.home.as_deref())
    }

    /// The target for an inventory host.
    pub fn for_host(&self, host: &Host) -> Result<Target> {
        let config = self.ssh_config.resolve(&host.address);
        let mut target = self.build(&host.name, &host.address, &config, host)?;
        let jump = host.ssh.jump.clone().or(config.proxy_jump.clone());
        target.jump = match jump.as_deref() {
            None | Some("none") => None,
            Some(spec) => self.jump_chain(host, spec)?,
        };
        Ok(target)
    }

    fn build(
        &self,
        name: &str,
        given_address: &str,
        config: &HostSettings,
        host: &Host,
    ) -> Result<Target> {
        let ssh = &host.ssh;
        let mut identity_files: Vec<PathBuf> = ssh.identity_file.iter().cloned().collect();
        identity_files.extend(config.identity_files.iter().map(|f| self.expand(f)));
        let identity_files = if identity_files.is_empty() {
            self.default_identities.clone()
        } else {
            self.lists.share(identity_files)
        };
        let known_hosts = match (&ssh.known_hosts, config.known_hosts_files.is_empty()) {
            (Some(file), _) => self.lists.share(vec![file.clone()]),
            (None, false) => self.lists.share(
                config
                    .known_hosts_files
                    .iter()
                    .map(|f| self.expand(f))
                    .collect::<Vec<_>>(),
            ),
            (None, true) => self.default_known_hosts.clone(),
        };
        let policy = match (
            ssh.host_key_checking,
            config.strict_host_key_checking.as_deref(),
        ) {
            (Some(HostKeyChecking::Strict), _) => HostKeyPolicy::Strict,
            (Some(HostKeyChecking::AcceptNew), _) => HostKeyPolicy::AcceptNew,
            // "no" would accept a changed key, which dockhand never does:
            // the nearest safe meaning is to record unknown hosts.
            (None, Some("accept-new" | "no" | "off")) => HostKeyPolicy::AcceptNew,
            (None, _) => HostKeyPolicy::Strict,
        };
        Ok(Target {
            name: name.to_string(),
            address: config
                .host_name
                .clone()
                .unwrap_or_else(|| given_address.to_string()),
            port: ssh.port.or(config.port).unwrap_or(22),
            user: ssh
                .user
                .clone()
                .or(config.user.clone())
                .unwrap_or_else(|| "root".into()),
            identity_files,
            use_agent: true,
            known_hosts,
            host_key_policy: policy,
            host_key_alias: config.host_key_alias.clone(),
            connect_timeout: ssh
                .connect_timeout
                .or(config.connect_timeout)
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            jump: None,
            meter: Default::default(),
        })
    }

    /// `a,b` means: connect to a, through it to b, through b to the host.
    fn jump_chain(&self, host: &Host, spec: &str) -> Result<Option<Box<Target>>> {
        let mut previous: Option<Box<Target>> = None;
        for hop in spec.split(',') {
            let (user, name, port) = parse_jump(hop).map_err(|message| {
                Error::Usage(format!("{}: jump host {hop:?}: {message}", host.name))
            })?;
            let config = self.ssh_config.resolve(&name);
            // The hop is reached with the host's keys and known_hosts, but
            // its own user and port.
            let mut hop_host = host.clone();
            hop_host.ssh.user = user.or(config.user.clone());
            hop_host.ssh.port = port.or(config.port);
            hop_host.ssh.jump = None;
            let mut target = self.build(
                &format!("{} (jump {name})", host.name),
                &name,
                &config,
                &hop_host,
            )?;
            target.jump = previous;
            previous = Some(Box::new(target));
        }
        Ok(previous)
    }
}

/// `[user@]host[:port]`.
pub fn parse_jump(
    spec: &str,
) -> std::result::Result<(Option<String>, String, Option<u16>), String> {
    let spec = spec.trim();
    let (user, rest) = match spec.rsplit_once('@') {
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, spec),
    };
    let (name, port) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let (name, after) = bracketed.split_once(']').ok_or("unclosed [")?;
            (name, after.strip_prefix(':'))
        }
        None => match rest.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') => (name, Some(port)),
            _ => (rest, None),
        },
    };
    if name.is_empty() {
        return Err("no host name".into());
    }
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| format!("bad port {p:?}")))
        .transpose()?;
    Ok((user, name.to_string(), port))
}

/// The texts of the files an ssh_config `Include` pattern names, in name
/// order: `~` is the home, and the last component may hold `*`, `?` and
/// `[…]` globs, as OpenSSH's glob(3) takes them. Files that cannot be read
/// are passed over, as OpenSSH passes over a pattern that matches nothing.
fn included_files(pattern: &str, home: Option<&Path>) -> Vec<String> {
    let path = crate::core::input::inventory::expand_home(Path::new(pattern), home);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let Ok(glob) = globset::GlobBuilder::new(&name.to_string_lossy())
        .literal_separator(true)
        .build()
    else {
        return Vec::new();
    };
    let matcher = glob.compile_matcher();
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().is_some_and(|n| matcher.is_match(n)))
            // glob(3): a wildcard never matches a leading dot.
            .filter(|p| {
                name.to_string_lossy().starts_with('.')
                    || !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// The account running dockhand (`Match localuser` in ssh_config).
fn local_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            if rustix::process::getuid().is_root() {
                "root".into()
            } else {
                rustix::process::getuid().as_raw().to_string()
            }
        })
}

/// The user's home, where `~` in an inventory and ssh_config points.
pub(super) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::input::inventory::Inventory;

    fn host(yaml: &str) -> Host {
        Inventory::parse("i.yaml".as_ref(), yaml, Some(Path::new("/home/u")))
            .unwrap()
            .hosts
            .remove(0)
    }

    #[test]
    fn jump_specs() {
        let cases = [
            ("bastion", Ok((None, "bastion".to_string(), None))),
            (
                "ops@bastion:2222",
                Ok((Some("ops".to_string()), "bastion".to_string(), Some(2222))),
            ),
            (
                "[2001:db8::1]:22",
                Ok((None, "2001:db8::1".to_string(), Some(22))),
            ),
            ("2001:db8::1", Ok((None, "2001:db8::1".to_string(), None))),
            ("bastion:x", Err("bad port \"x\"".to_string())),
        ];
        for (spec, expected) in cases {
            assert_eq!(parse_jump(spec), expected, "{spec}");
        }
    }

    #[test]
    fn inventory_beats_ssh_config_which_beats_defaults() {
        let config = SshConfig::parse(
            "Host web1\n  HostName 192.0.2.10\n  User cfguser\n  Port 2200\n  IdentityFile ~/.ssh/web\n  ProxyJump ops@bastion\n\
             Host bastion\n  HostName 192.0.2.1\n  Port 2022\n",
        );
        let targets = Targets::new(Some("/home/u".into()), config);
        let plain = targets.for_host(&host("hosts:\n  web1:\n")).unwrap();
        assert_eq!(
            (plain.address.as_str(), plain.port, plain.user.as_str()),
            ("192.0.2.10", 2200, "cfguser")
        );
        assert_eq!(*plain.identity_files, [PathBuf::from("/home/u/.ssh/web")]);
        assert_eq!(
            plain.known_hosts[0],
            PathBuf::from("/home/u/.ssh/known_hosts")
        );
        let jump = plain.jump.as_ref().unwrap();
        assert_eq!(
            (jump.address.as_str(), jump.port, jump.user.as_str()),
            ("192.0.2.1", 2022, "ops")
        );

        let explicit = targets
            .for_host(&host(
                "hosts:\n  web1:\n    ssh: { user: me, port: 22, identity_file: /k, jump: none }\n",
            ))
            .unwrap();
        assert_eq!((explicit.port, explicit.user.as_str()), (22, "me"));
        assert_eq!(explicit.identity_files[0], PathBuf::from("/k"));
        assert!(explicit.jump.is_none());
    }

    #[test]
    fn targets_with_the_same_files_share_one_list() {
        let targets = Targets::new(Some("/home/u".into()), SshConfig::parse(""));
        let inventory = Inventory::parse(
            "i.yaml".as_ref(),
            "defaults:\n  ssh: { identity_file: /keys/fleet, known_hosts: /state/known_hosts }\n\
             hosts:\n  a:\n  b:\n  c:\n    ssh: { identity_file: /keys/c }\n",
            None,
        )
        .unwrap();
        let built: Vec<Target> = inventory
            .hosts
            .iter()
            .map(|h| targets.for_host(h).unwrap())
            .collect();
        let [a, b, c] = &built[..] else { panic!() };
        assert!(Arc::ptr_eq(&a.identity_files, &b.identity_files));
        assert!(Arc::ptr_eq(&a.known_hosts, &c.known_hosts));
        assert_eq!(*c.identity_files, [PathBuf::from("/keys/c")]);
        assert_eq!(*a.identity_files, [PathBuf::from("/keys/fleet")]);
        assert_eq!(*b.known_hosts, [PathBuf::from("/state/known_hosts")]);
    }

    #[test]
    fn chains_go_through_each_hop_in_order() {
        let targets = Targets::new(None, SshConfig::default());
        let target = targets
            .for_host(&host(
                "hosts:\n  web1:\n    ssh: { jump: \"a@first,second:2222\" }\n",
            ))
            .unwrap();
        let second = target.jump.as_ref().unwrap();
        let first = second.jump.as_ref().unwrap();
        assert_eq!((second.address.as_str(), second.port), ("second", 2222));
        assert_eq!(
            (first.address.as_str(), first.user.as_str()),
            ("first", "a")
        );
        assert!(first.jump.is_none());
        let err = targets
            .for_host(&host("hosts:\n  web1:\n    ssh: { jump: \"x:y\" }\n"))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("web1: jump host \"x:y\": bad port"),
            "{err}"
        );
    }

    /// What dockhand makes of a corpus of ssh_configs with `Include`s
    /// (globs, nested, inside a Host or a Match block, after which the
    /// including block goes on) is what `ssh -G` makes of them, name by
    /// name.
    #[test]
    fn included_configs_resolve_as_ssh_g_resolves_them() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).display().to_string();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        let files = [
            (
                "config",
                format!(
                    "Include {conf}/*.conf\nHost web*\n  Include {web}\n  Port 2200\n\
                     Match originalhost alias2\n  HostName 192.0.2.51\n\
                     Match host *.internal user root\n  Port 2022\n\
                     Match localuser root host db* !originalhost db2\n  User dbadmin\n\
                     Match originalhost cache*\n  Include {cache}\n\
                     Match originalhost matchweb* user {me}\n  Include {matched}\n  IdentityFile /keys/matched\n\
                     Host *\n  User fallback\n",
                    conf = at("conf.d"),
                    web = at("web.inc"),
                    cache = at("cache.inc"),
                    matched = at("matched.inc"),
                    me = local_user()
                ),
            ),
            (
                "conf.d/10-alias.conf",
                "Host alias\n  HostName 192.0.2.50\n  User aliased\n  IdentityFile /keys/alias\n"
                    .into(),
            ),
            (
                "conf.d/20-nested.conf",
                format!("Include {}\nHost db?\n  Port 5432\n", at("nested.inc")),
            ),
            ("conf.d/.hidden.conf", "Host alias\n  User hidden\n".into()),
            (
                "nested.inc",
                "Host db1\n  HostName db1.internal\n  ProxyJump jump@bastion\n".into(),
            ),
            // The file sets User, after which the Match that included it
            // still holds: OpenSSH evaluates a Match once, where it stands.
            (
                "matched.inc",
                "User deploy\nHost matchweb1\n  Port 2222\n".into(),
            ),
            (
                "cache.inc",
                "User cacheuser\nHost cache2\n  HostName 192.0.2.60\n  Port 6379\n".into(),
            ),
            (
                "web.inc",
                "User webuser\nHost web1\n  HostName web1.internal\n".into(),
            ),
        ];
        for (name, text) in &files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let main = std::fs::read_to_string(dir.path().join("config")).unwrap();
        let mut config = SshConfig::parse_with(&main, &|p: &str| included_files(p, None));
        assert!(config.errors.is_empty(), "{:?}", config.errors);
        config.local_user = local_user();
        for name in [
            "alias",
            "alias2",
            "db1",
            "db2",
            "web1",
            "web2",
            "other",
            "x.internal",
            "cache1",
            "cache2",
            "matchweb1",
            "matchweb2",
        ] {
            let output = std::process::Command::new("ssh")
                .args(["-G", "-F"])
                .arg(dir.path().join("config"))
                .arg(name)
                .output()
                .expect("ssh (scripts/setup-machine installs openssh-client)");
            assert!(output.status.success(), "{output:?}");
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            let first = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key} ")))
                    .unwrap_or("")
                    .to_string()
            };
            let ours = config.resolve(name);
            assert_eq!(
                ours.host_name.unwrap_or(name.into()),
                first("hostname"),
                "{name}: hostname"
            );
            assert_eq!(
                ours.port.unwrap_or(22).to_string(),
                first("port"),
                "{name}: port"
            );
            if let Some(user) = &ours.user {
                assert_eq!(user, &first("user"), "{name}: user");
            }
            assert_eq!(
                ours.proxy_jump.unwrap_or_default(),
                first("proxyjump"),
                "{name}: proxyjump"
            );
            if let Some(identity) = ours.identity_files.first() {
                assert_eq!(identity, &first("identityfile"), "{name}: identityfile");
            }
        }
        let alias = config.resolve("alias");
        assert_eq!(
            (alias.host_name.as_deref(), alias.user.as_deref()),
            (Some("192.0.2.50"), Some("aliased"))
        );
        assert_eq!(config.resolve("web2").user.as_deref(), Some("webuser"));
        assert_eq!(config.resolve("other").user.as_deref(), Some("fallback"));
    }
}
