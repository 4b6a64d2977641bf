//! daemon.json as dockerd reads it: every key dockerd 20.10 (Debian 12)
//! and 26.1 (Debian 13) takes on Linux, and the JSON type of its value. A
//! key no dockerd of the host's family knows, or a value of the wrong
//! type, makes dockerd refuse to start; plan finds it first, for every
//! release, before anything is written. Keys dockerd accepts but ignores
//! (singular flag names such as `label`) are warnings. Pure.
//!
//! The table was read from moby's sources at v20.10.24 and v26.1.5 and
//! checked by running both daemons on such files.

use serde_json::{Map, Value};

/// The JSON type a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Text,
    /// A JSON integer (`1500`, not `1500.0` nor `1e3`).
    Int,
    TextList,
    TextMap,
    Object,
    ObjectList,
}

/// Which dockerd versions take a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Since {
    Both,
    Only20,
    Only26,
}

/// The dockerd a host runs, as far as daemon.json is concerned: 23.0 and
/// later (`--validate` exists) read it as 26.1 does; older as 20.10 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Legacy,
    Modern,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Legacy => "dockerd 20.10",
            Family::Modern => "dockerd 23 and later",
        }
    }
}

const KEYS: &[(&str, Kind, Since)] = &[
    (
        "allow-nondistributable-artifacts",
        Kind::TextList,
        Since::Both,
    ),
    ("api-cors-header", Kind::Text, Since::Both),
    ("authorization-plugins", Kind::TextList, Since::Both),
    ("bip", Kind::Text, Since::Both),
    ("bridge", Kind::Text, Since::Both),
    ("builder", Kind::Object, Since::Both),
    ("cdi-spec-dirs", Kind::TextList, Since::Only26),
    ("cgroup-parent", Kind::Text, Since::Both),
    ("cluster-advertise", Kind::Text, Since::Only20),
    ("cluster-store", Kind::Text, Since::Only20),
    ("cluster-store-opts", Kind::TextMap, Since::Only20),
    ("containerd", Kind::Text, Since::Both),
    ("containerd-namespace", Kind::Text, Since::Both),
    ("cpu-rt-period", Kind::Int, Since::Both),
    ("cpu-rt-runtime", Kind::Int, Since::Both),
    ("cri-containerd", Kind::Bool, Since::Both),
    ("data-root", Kind::Text, Since::Both),
    ("debug", Kind::Bool, Since::Both),
    ("default-address-pools", Kind::ObjectList, Since::Both),
    ("default-cgroupns-mode", Kind::Text, Since::Both),
    ("default-gateway", Kind::Text, Since::Both),
    ("default-gateway-v6", Kind::Text, Since::Both),
    ("default-ipc-mode", Kind::Text, Since::Both),
    ("default-network-opts", Kind::Object, Since::Only26),
    ("default-runtime", Kind::Text, Since::Both),
    ("default-shm-size", Kind::Text, Since::Both),
    ("default-ulimits", Kind::Object, Since::Both),
    ("deprecated-key-path", Kind::Text, Since::Both),
    ("dns", Kind::TextList, Since::Both),
    ("dns-opts", Kind::TextList, Since::Both),
    ("dns-search", Kind::TextList, Since::Both),
    ("exec-opts", Kind::TextList, Since::Both),
    ("exec-root", Kind::Text, Since::Both),
    ("experimental", Kind::Bool, Since::Both),
    ("features", Kind::Object, Since::Both),
    ("fixed-cidr", Kind::Text, Since::Both),
    ("fixed-cidr-v6", Kind::Text, Since::Both),
    ("graph", Kind::Text, Since::Only20),
    ("group", Kind::Text, Since::Both),
    ("host-gateway-ip", Kind::Text, Since::Both),
    ("hosts", Kind::TextList, Since::Both),
    ("icc", Kind::Bool, Since::Both),
    ("init", Kind::Bool, Since::Both),
    ("init-path", Kind::Text, Since::Both),
    ("insecure-registries", Kind::TextList, Since::Both),
    ("ip", Kind::Text, Since::Both),
    ("ip-forward", Kind::Bool, Since::Both),
    ("ip-masq", Kind::Bool, Since::Both),
    ("ip6tables", Kind::Bool, Since::Both),
    ("iptables", Kind::Bool, Since::Both),
    ("ipv6", Kind::Bool, Since::Both),
    ("labels", Kind::TextList, Since::Both),
    ("live-restore", Kind::Bool, Since::Both),
    ("log-driver", Kind::Text, Since::Both),
    ("log-format", Kind::Text, Since::Only26),
    ("log-level", Kind::Text, Since::Both),
    ("log-opts", Kind::TextMap, Since::Both),
    ("max-concurrent-downloads", Kind::Int, Since::Both),
    ("max-concurrent-uploads", Kind::Int, Since::Both),
    ("max-download-attempts", Kind::Int, Since::Both),
    ("metrics-addr", Kind::Text, Since::Both),
    ("mtu", Kind::Int, Since::Both),
    ("network-control-plane-mtu", Kind::Int, Since::Both),
    ("network-diagnostic-port", Kind::Int, Since::Both),
    ("no-new-privileges", Kind::Bool, Since::Both),
    ("node-generic-resources", Kind::TextList, Since::Both),
    ("oom-score-adjust", Kind::Int, Since::Only20),
    ("pidfile", Kind::Text, Since::Both),
    ("proxies", Kind::Object, Since::Only26),
    ("raw-logs", Kind::Bool, Since::Both),
    ("registry-mirrors", Kind::TextList, Since::Both),
    ("rootless", Kind::Bool, Since::Both),
    ("runtimes", Kind::Object, Since::Both),
    ("seccomp-profile", Kind::Text, Since::Both),
    ("selinux-enabled", Kind::Bool, Since::Both),
    ("shutdown-timeout", Kind::Int, Since::Both),
    ("storage-driver", Kind::Text, Since::Both),
    ("storage-opts", Kind::TextList, Since::Both),
    ("swarm-default-advertise-addr", Kind::Text, Since::Both),
    ("tls", Kind::Bool, Since::Both),
    ("tlscacert", Kind::Text, Since::Both),
    ("tlscert", Kind::Text, Since::Both),
    ("tlskey", Kind::Text, Since::Both),
    ("tlsverify", Kind::Bool, Since::Both),
    ("userland-proxy", Kind::Bool, Since::Both),
    ("userland-proxy-path", Kind::Text, Since::Both),
    ("userns-remap", Kind::Text, Since::Both),
];

/// Keys dockerd accepts and then ignores, with the key that was meant.
const IGNORED: &[(&str, &str)] = &[
    ("label", "labels"),
    ("host", "hosts"),
    ("log-opt", "log-opts"),
    ("storage-opt", "storage-opts"),
    ("exec-opt", "exec-opts"),
    ("dns-opt", "dns-opts"),
    ("registry-mirror", "registry-mirrors"),
    ("insecure-registry", "insecure-registries"),
    ("authorization-plugin", "authorization-plugins"),
    ("default-ulimit", "default-ulimits"),
    ("add-runtime", "runtimes"),
    ("default-address-pool", "default-address-pools"),
    ("node-generic-resource", "node-generic-resources"),
    ("cdi-spec-dir", "cdi-spec-dirs"),
    ("default-network-opt", "default-network-opts"),
    ("containerd-plugins-namespace", "containerd-namespace"),
    ("http-proxy", "proxies.http-proxy"),
    ("https-proxy", "proxies.https-proxy"),
    ("no-proxy", "proxies.no-proxy"),
];

/// What is wrong with a daemon.json for a dockerd of `family`: errors
/// (dockerd would refuse to start) and warnings (it would ignore a key).
/// `origin(key)` says where a key comes from, for the message.
pub fn check(
    document: &Map<String, Value>,
    family: Family,
    origin: &dyn Fn(&str) -> String,
) -> (Vec<String>, Vec<String>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for (key, value) in document {
        if let Some((_, meant)) = IGNORED.iter().find(|(k, _)| k == key) {
            warnings.push(format!(
                "{} `{key}`, which dockerd accepts and ignores: did you mean `{meant}`?",
                origin(key)
            ));
            continue;
        }
        let known = KEYS
            .iter()
            .find(|(k, ..)| k == key)
            .filter(|(_, _, since)| {
                matches!(
                    (since, family),
                    (Since::Both, _)
                        | (Since::Only20, Family::Legacy)
                        | (Since::Only26, Family::Modern)
                )
            });
        let Some((_, kind, _)) = known else {
            errors.push(format!(
                "{} `{key}`, which {} does not know: it would refuse to start",
                origin(key),
                family.name()
            ));
            continue;
        };
        if let Some(problem) = type_problem(key, *kind, value) {
            errors.push(format!(
                "{} `{key}: {value}`: {problem}, so {} would refuse to start",
                origin(key),
                family.name()
            ));
        }
    }
    (errors, warnings)
}

fn type_problem(key: &str, kind: Kind, value: &Value) -> Option<String> {
    if value.is_null() {
        // dockerd ignores null for every key but these two.
        return ["default-shm-size", "proxies"]
            .contains(&key)
            .then(|| "null is not accepted here".to_string());
    }
    let ok = match kind {
        Kind::Bool => value.is_boolean(),
        Kind::Text => value.is_string(),
        Kind::Int => value.is_i64() || value.is_u64(),
        Kind::TextList => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string)),
        Kind::TextMap => value
            .as_object()
            .is_some_and(|map| map.values().all(Value::is_string)),
        Kind::Object => value.is_object(),
        Kind::ObjectList => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_object)),
    };
    if !ok {
        return Some(format!("expected {}", describe(kind)));
    }
    if key == "proxies" {
        let unknown: Vec<&String> = value
            .as_object()
            .map(|m| {
                m.keys()
                    .filter(|k| !["http-proxy", "https-proxy", "no-proxy"].contains(&k.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        if !unknown.is_empty() {
            return Some(format!(
                "`proxies` takes http-proxy, https-proxy and no-proxy, not {}",
                unknown
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    None
}

fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "true or false",
        Kind::Text => "a string",
        Kind::Int => "a whole number",
        Kind::TextList => "a list of strings",
        Kind::TextMap => "an object of strings",
        Kind::Object => "an object",
        Kind::ObjectList => "a list of objects",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(document: Value, family: Family) -> (Vec<String>, Vec<String>) {
        check(document.as_object().unwrap(), family, &|_| {
            "the playbook sets".to_string()
        })
    }

    #[test]
    fn the_role_s_settings_pass_on_both_families() {
        let document = json!({
            "hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"],
            "tls": true, "tlsverify": true, "tlscacert": "/a", "tlscert": "/b", "tlskey": "/c",
            "icc": false, "userns-remap": "default", "live-restore": true,
            "no-new-privileges": true, "userland-proxy": false, "log-level": "info",
            "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"},
            "mtu": 1500, "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 2, "Soft": 1}},
            "dns": null,
        });
        for family in [Family::Legacy, Family::Modern] {
            assert_eq!(
                run(document.clone(), family),
                (vec![], vec![]),
                "{family:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors_with_their_origin() {
        let cases = [
            (
                json!({"no-such-option": 1}),
                Family::Modern,
                "the playbook sets `no-such-option`, which dockerd 23 and later does not know",
            ),
            (
                json!({"Debug": true}),
                Family::Legacy,
                "`Debug`, which dockerd 20.10 does not know",
            ),
            (
                json!({"icc": "false"}),
                Family::Modern,
                "`icc: \"false\"`: expected true or false",
            ),
            (
                json!({"log-level": 1}),
                Family::Legacy,
                "`log-level: 1`: expected a string",
            ),
            (
                json!({"mtu": 1500.0}),
                Family::Modern,
                "`mtu: 1500.0`: expected a whole number",
            ),
            (
                json!({"log-opts": {"max-file": 3}}),
                Family::Modern,
                "expected an object of strings",
            ),
            (
                json!({"insecure-registries": "r:5000"}),
                Family::Legacy,
                "expected a list of strings",
            ),
            (
                json!({"default-shm-size": 67108864}),
                Family::Modern,
                "expected a string",
            ),
            (
                json!({"proxies": {"http-proxy": "x", "ftp": "y"}}),
                Family::Modern,
                "not `ftp`",
            ),
            (
                json!({"proxies": {}}),
                Family::Legacy,
                "`proxies`, which dockerd 20.10 does not know",
            ),
            (
                json!({"graph": "/srv"}),
                Family::Modern,
                "`graph`, which dockerd 23 and later does not know",
            ),
        ];
        for (document, family, needle) in cases {
            let (errors, _) = run(document.clone(), family);
            assert_eq!(errors.len(), 1, "{document}: {errors:?}");
            assert!(errors[0].contains(needle), "{document}: {}", errors[0]);
        }
    }

    #[test]
    fn keys_dockerd_ignores_are_warnings() {
        let (errors, warnings) = run(json!({"label": ["a=b"]}), Family::Modern);
        assert!(errors.is_empty());
        assert!(
            warnings[0]
                .contains("`label`, which dockerd accepts and ignores: did you mean `labels`?"),
            "{warnings:?}"
        );
    }
}
