//! dockerd's command-line flags, as far as dockhand must understand them:
//! which take a value, and which daemon.json key each one clashes with.
//! dockerd refuses to start ("the following directives are specified both
//! as a flag and in the configuration file") when a flag and a daemon.json
//! key set the same thing, so every flag dockhand keeps on the command line
//! is checked against the keys of the daemon.json it writes.
//!
//! The table is the union of the flags of dockerd 20.10 (Debian 12) and
//! 26.1 (Debian 13), hidden and deprecated ones included; list and map
//! flags clash with their plural key (dockerd's "named options"). Only a
//! flag's presence counts: `--icc=false` clashes with `"icc": false`.

/// `(long name, short name, takes a value, daemon.json key if different)`.
const FLAGS: &[(&str, Option<char>, bool, Option<&str>)] = &[
    // dockerd never counts `runtimes` as a clash (it merges them).
    ("add-runtime", None, true, Some("")),
    ("allow-nondistributable-artifacts", None, true, None),
    ("api-cors-header", None, true, None),
    (
        "authorization-plugin",
        None,
        true,
        Some("authorization-plugins"),
    ),
    ("bip", None, true, None),
    ("bridge", Some('b'), true, None),
    ("cdi-spec-dir", None, true, Some("cdi-spec-dirs")),
    ("cgroup-parent", None, true, None),
    ("cluster-advertise", None, true, None),
    ("cluster-store", None, true, None),
    ("cluster-store-opt", None, true, Some("cluster-store-opts")),
    ("config-file", None, true, Some("")),
    ("containerd", None, true, None),
    ("containerd-namespace", None, true, None),
    ("containerd-plugins-namespace", None, true, None),
    ("cpu-rt-period", None, true, None),
    ("cpu-rt-runtime", None, true, None),
    ("cri-containerd", None, false, None),
    ("data-root", None, true, None),
    ("debug", Some('D'), false, None),
    (
        "default-address-pool",
        None,
        true,
        Some("default-address-pools"),
    ),
    ("default-cgroupns-mode", None, true, None),
    ("default-gateway", None, true, None),
    ("default-gateway-v6", None, true, None),
    ("default-ipc-mode", None, true, None),
    (
        "default-network-opt",
        None,
        true,
        Some("default-network-opts"),
    ),
    ("default-runtime", None, true, None),
    ("default-shm-size", None, true, None),
    ("default-ulimit", None, true, Some("default-ulimits")),
    ("dns", None, true, None),
    ("dns-opt", None, true, Some("dns-opts")),
    ("dns-search", None, true, None),
    ("exec-opt", None, true, Some("exec-opts")),
    ("exec-root", None, true, None),
    ("experimental", None, false, None),
    ("fixed-cidr", None, true, None),
    ("fixed-cidr-v6", None, true, None),
    ("graph", Some('g'), true, None),
    ("group", Some('G'), true, None),
    ("host", Some('H'), true, Some("hosts")),
    ("host-gateway-ip", None, true, None),
    ("http-proxy", None, true, None),
    ("https-proxy", None, true, None),
    ("icc", None, false, None),
    ("init", None, false, None),
    ("init-path", None, true, None),
    ("insecure-registry", None, true, Some("insecure-registries")),
    ("ip", None, true, None),
    ("ip-forward", None, false, None),
    ("ip-masq", None, false, None),
    ("ip6tables", None, false, None),
    ("iptables", None, false, None),
    ("ipv6", None, false, None),
    ("label", None, true, Some("labels")),
    ("live-restore", None, false, None),
    ("log-driver", None, true, None),
    ("log-format", None, true, None),
    ("log-level", Some('l'), true, None),
    ("log-opt", None, true, Some("log-opts")),
    ("max-concurrent-downloads", None, true, None),
    ("max-concurrent-uploads", None, true, None),
    ("max-download-attempts", None, true, None),
    ("metrics-addr", None, true, None),
    ("mtu", None, true, None),
    ("network-control-plane-mtu", None, true, None),
    ("no-new-privileges", None, false, None),
    ("no-proxy", None, true, None),
    (
        "node-generic-resource",
        None,
        true,
        Some("node-generic-resources"),
    ),
    ("oom-score-adjust", None, true, None),
    ("pidfile", Some('p'), true, None),
    ("raw-logs", None, false, None),
    ("registry-mirror", None, true, Some("registry-mirrors")),
    ("restart", None, false, None),
    ("rootless", None, false, None),
    ("seccomp-profile", None, true, None),
    ("selinux-enabled", None, false, None),
    ("shutdown-timeout", None, true, None),
    ("storage-driver", Some('s'), true, None),
    ("storage-opt", None, true, Some("storage-opts")),
    ("swarm-default-advertise-addr", None, true, None),
    ("tls", None, false, None),
    ("tlscacert", None, true, None),
    ("tlscert", None, true, None),
    ("tlskey", None, true, None),
    ("tlsverify", None, false, None),
    ("userland-proxy", None, false, None),
    ("userland-proxy-path", None, true, None),
    ("userns-remap", None, true, None),
];

/// One option of a command line: the flag and the words that belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerdOption {
    /// The flag's long name without dashes (`dns`), or the word as written
    /// for a flag dockhand does not know.
    pub name: String,
    /// The words as they appear: `["--dns", "192.0.2.53"]`, `["--icc=false"]`.
    pub words: Vec<String>,
    /// Index of the first word in the list given to [`options`].
    pub first: usize,
}

impl DockerdOption {
    /// The daemon.json key this option clashes with (None: no key, such
    /// as `--config-file`, or a flag dockhand does not know).
    pub fn daemon_key(&self) -> Option<&str> {
        let (_, _, _, key) = FLAGS.iter().find(|(long, ..)| *long == self.name)?;
        match key {
            Some("") => None,
            Some(key) => Some(key),
            None => Some(self.name.as_str()),
        }
    }

    /// The value given (`tcp://0.0.0.0:2375` of `-H tcp://0.0.0.0:2375`,
    /// `-Htcp://…` or `--host=tcp://…`).
    pub fn value(&self) -> Option<&str> {
        let first = &self.words[0];
        if let Some((_, value)) = first.split_once('=') {
            return Some(value);
        }
        // `-Hvalue`: what follows the flag's one letter, whatever the
        // letter's width in bytes (`-é` is no flag, but a host may say it).
        if let Some(short) = first.strip_prefix('-').filter(|s| !s.starts_with('-'))
            && let Some((at, _)) = short.char_indices().nth(1)
        {
            return Some(&short[at..]);
        }
        self.words.get(1).map(String::as_str)
    }

    pub fn text(&self) -> String {
        self.words.join(" ")
    }
}

/// Groups dockerd's arguments (without the program) into options. A word
/// that does not start with `-` belongs to the flag before it (dockerd
/// takes no positional arguments); a flag known to take a value takes the
/// next word whatever it looks like.
pub fn options(args: &[String]) -> Vec<DockerdOption> {
    let mut out: Vec<DockerdOption> = Vec::new();
    let mut owed_value = false;
    for (index, word) in args.iter().enumerate() {
        if owed_value || (!word.starts_with('-') && !out.is_empty()) {
            if let Some(last) = out.last_mut() {
                last.words.push(word.clone());
            }
            owed_value = false;
            continue;
        }
        let (name, inline_value) = flag_name(word);
        owed_value = !inline_value
            && FLAGS
                .iter()
                .any(|(long, _, takes_value, _)| *long == name && *takes_value);
        out.push(DockerdOption {
            name,
            words: vec![word.clone()],
            first: index,
        });
    }
    out
}

/// The long name of a flag word, and whether the word carries its value
/// (`--dns=…`, `-Htcp://…`).
fn flag_name(word: &str) -> (String, bool) {
    if let Some(long) = word.strip_prefix("--") {
        return match long.split_once('=') {
            Some((name, _)) => (name.to_string(), true),
            None => (long.to_string(), false),
        };
    }
    if let Some(short) = word.strip_prefix('-')
        && let Some(c) = short.chars().next()
        && let Some((long, ..)) = FLAGS.iter().find(|(_, s, ..)| *s == Some(c))
    {
        return (long.to_string(), short.len() > 1);
    }
    (word.to_string(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    #[test]
    fn options_group_flags_with_their_values() {
        let args = words(
            "-H tcp://0.0.0.0:2375 -Hunix:///s --host=fd:// --dns 192.0.2.53 --icc=false -D --tlsverify --label a=b --log-opt -x --unknown v",
        );
        let found: Vec<(String, String, Option<String>)> = options(&args)
            .iter()
            .map(|o| (o.name.clone(), o.text(), o.daemon_key().map(str::to_string)))
            .collect();
        let row = |n: &str, t: &str, k: Option<&str>| {
            (n.to_string(), t.to_string(), k.map(str::to_string))
        };
        assert_eq!(
            found,
            vec![
                row("host", "-H tcp://0.0.0.0:2375", Some("hosts")),
                row("host", "-Hunix:///s", Some("hosts")),
                row("host", "--host=fd://", Some("hosts")),
                row("dns", "--dns 192.0.2.53", Some("dns")),
                row("icc", "--icc=false", Some("icc")),
                row("debug", "-D", Some("debug")),
                row("tlsverify", "--tlsverify", Some("tlsverify")),
                row("label", "--label a=b", Some("labels")),
                row("log-opt", "--log-opt -x", Some("log-opts")),
                row("unknown", "--unknown v", None),
            ]
        );
        let grouped = options(&args);
        let values: Vec<Option<&str>> = grouped[..3].iter().map(|o| o.value()).collect();
        assert_eq!(
            values,
            vec![Some("tcp://0.0.0.0:2375"), Some("unix:///s"), Some("fd://")]
        );
    }

    #[test]
    fn words_a_host_may_say_give_values_or_nothing_never_a_panic() {
        // DOCKER_OPTS="-é --dns 192.0.2.9", and letters wider than a byte.
        let cases: &[(&str, Option<&str>)] = &[
            ("-é", None),
            ("-éx", Some("x")),
            ("-Hé", Some("é")),
            ("-😀😀", Some("😀")),
            ("-", None),
            ("--=", Some("")),
        ];
        for (word, value) in cases {
            let found = options(&words(word));
            assert_eq!(found[0].value(), *value, "{word}");
        }
    }

    #[test]
    fn the_config_file_flag_clashes_with_no_key() {
        let found = options(&words("--config-file /etc/docker/daemon.json"));
        assert_eq!(found[0].daemon_key(), None);
        assert_eq!(found[0].words.len(), 2);
    }
}
