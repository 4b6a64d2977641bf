//! `/etc/docker/daemon.json`: merging the managed keys into what a host
//! has, and describing the difference key by key.
//!
//! Keys a user set by hand and the playbook does not manage are kept, in
//! their place; managed keys are set; with `own_daemon_json` the file is
//! exactly the managed keys. Files that say the same thing are equal,
//! however they are formatted, so a re-run does not rewrite them.

use serde::Serialize;
use serde_json::{Map, Value};

/// daemon.json keys the docker role sets from `listen` and `tls_dir`.
pub const TLS_KEYS: &[&str] = &[
    "hosts",
    "tls",
    "tlsverify",
    "tlscacert",
    "tlscert",
    "tlskey",
];

/// The document a host should have.
pub fn desired(
    actual: Option<&[u8]>,
    managed: &Map<String, Value>,
    own_whole_file: bool,
) -> Result<Map<String, Value>, String> {
    // A managed key set to null is one the role removes.
    let set = managed.iter().filter(|(_, value)| !value.is_null());
    if own_whole_file {
        return Ok(set.map(|(k, v)| (k.clone(), v.clone())).collect());
    }
    let mut document = match actual {
        None => Map::new(),
        Some(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
        Some(bytes) => parse(bytes)?,
    };
    for (key, value) in managed {
        if value.is_null() {
            document.remove(key);
        } else {
            document.insert(key.clone(), value.clone());
        }
    }
    Ok(document)
}

/// Parses a daemon.json; the error gives dockerd's own reading of it.
pub fn parse(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("it is valid JSON but not an object".into()),
        Err(e) => Err(format!(
            "it is not valid JSON (line {} column {}: {e})",
            e.line(),
            e.column()
        )),
    }
}

/// The file as dockhand writes it: pretty-printed, newline-terminated.
pub fn render(document: &Map<String, Value>) -> String {
    serde_json::to_string_pretty(document).expect("JSON map serialises") + "\n"
}

/// One key's change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum KeyChange {
    Added { key: String, value: Value },
    Changed { key: String, from: Value, to: Value },
    Removed { key: String, value: Value },
}

/// Key-by-key difference between two documents, in the order of `after`
/// (removed keys last).
pub fn key_changes(before: &Map<String, Value>, after: &Map<String, Value>) -> Vec<KeyChange> {
    let mut changes: Vec<KeyChange> = after
        .iter()
        .filter_map(|(key, value)| match before.get(key) {
            None => Some(KeyChange::Added {
                key: key.clone(),
                value: value.clone(),
            }),
            Some(old) if old != value => Some(KeyChange::Changed {
                key: key.clone(),
                from: old.clone(),
                to: value.clone(),
            }),
            Some(_) => None,
        })
        .collect();
    changes.extend(
        before
            .iter()
            .filter(|(key, _)| !after.contains_key(*key))
            .map(|(key, value)| KeyChange::Removed {
                key: key.clone(),
                value: value.clone(),
            }),
    );
    changes
}

/// The keys dockerd compares with its flags: the top-level keys, and the
/// keys inside `proxies`, which it reads as if they were top-level
/// (`--http-proxy` clashes with `"proxies": {"http-proxy": …}`).
pub fn clash_keys(document: &Map<String, Value>) -> std::collections::BTreeSet<String> {
    let mut keys: std::collections::BTreeSet<String> = document.keys().cloned().collect();
    if let Some(Value::Object(proxies)) = document.get("proxies") {
        keys.extend(proxies.keys().cloned());
    }
    keys
}

/// Settings of a daemon.json that undo part of what the docker role
/// secures, each as a sentence saying where it comes from (`managed`: the
/// keys the playbook sets; any other key was set by hand and is kept).
pub fn weakening(document: &Map<String, Value>, managed: &Map<String, Value>) -> Vec<String> {
    let origin = |key: &str| {
        if managed.contains_key(key) {
            "the playbook sets"
        } else {
            "daemon.json keeps the hand-set"
        }
    };
    let hint = |key: &str| {
        if managed.contains_key(key) {
            format!("change `{key}` in the playbook's docker.daemon")
        } else {
            "remove it, or set `own_daemon_json: true` so dockhand owns the whole file".to_string()
        }
    };
    let is = |key: &str, value: Value| document.get(key) == Some(&value);
    let mut out = Vec::new();
    let mut say = |key: &str, why: &str| {
        let value = document.get(key).map(Value::to_string).unwrap_or_default();
        out.push(format!(
            "{} `{key}: {value}`: {why} ({})",
            origin(key),
            hint(key)
        ));
    };
    if document
        .get("insecure-registries")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        say(
            "insecure-registries",
            "images from those registries are pulled without TLS verification",
        );
    }
    if is("tls", Value::Bool(false)) {
        say("tls", "the daemon's TCP listeners serve without TLS");
    }
    if is("tlsverify", Value::Bool(false)) {
        say(
            "tlsverify",
            "clients are not asked for a certificate, so anyone who reaches the port is root on the host",
        );
    }
    let verified = is("tlsverify", Value::Bool(true));
    if !verified
        && document
            .get("hosts")
            .and_then(Value::as_array)
            .is_some_and(|h| {
                h.iter()
                    .any(|v| v.as_str().is_some_and(|s| s.starts_with("tcp://")))
            })
    {
        say(
            "hosts",
            "a TCP listener without client verification lets anyone who reaches it control dockerd",
        );
    }
    if is("icc", Value::Bool(true)) {
        say(
            "icc",
            "containers on the default bridge can reach each other",
        );
    }
    if is("userland-proxy", Value::Bool(true)) {
        say(
            "userland-proxy",
            "published ports go through docker-proxy, a userland process, instead of iptables rules",
        );
    }
    if is("no-new-privileges", Value::Bool(false)) {
        say(
            "no-new-privileges",
            "containers may gain privileges through setuid binaries",
        );
    }
    out
}

/// Plain-TCP listeners (`tcp://…` in `hosts` without `tlsverify`) that
/// `before` had and `after` no longer has.
pub fn closed_plain_listeners(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Vec<String> {
    if before.get("tlsverify") == Some(&Value::Bool(true)) {
        return Vec::new();
    }
    let listeners = |doc: &Map<String, Value>| -> Vec<String> {
        doc.get("hosts")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let now = listeners(after);
    listeners(before)
        .into_iter()
        .filter(|h| h.starts_with("tcp://") && !now.contains(h))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn merge_keeps_hand_set_keys_and_sets_managed_ones() {
        let managed = map(json!({"icc": false, "tls": true}));
        let actual = br#"{"debug": true, "icc": true}"#;
        let merged = desired(Some(actual), &managed, false).unwrap();
        assert_eq!(
            merged,
            map(json!({"debug": true, "icc": false, "tls": true}))
        );
        // The hand-set key keeps its place.
        assert_eq!(merged.keys().next().unwrap(), "debug");
        let owned = desired(Some(actual), &managed, true).unwrap();
        assert_eq!(owned, managed);
        assert_eq!(desired(None, &managed, false).unwrap(), managed);
        assert_eq!(desired(Some(b"  \n"), &managed, false).unwrap(), managed);
    }

    #[test]
    fn weakening_settings_are_named_with_their_origin() {
        let managed = map(json!({"tlsverify": true, "icc": true, "hosts": ["tcp://0.0.0.0:2376"]}));
        let document = map(json!({
            "insecure-registries": ["registry.invalid:5000"],
            "userland-proxy": true,
            "tlsverify": true,
            "icc": true,
            "hosts": ["tcp://0.0.0.0:2376"],
            "no-new-privileges": false,
        }));
        let found = weakening(&document, &managed);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with("daemon.json keeps the hand-set `insecure-registries: [\"registry.invalid:5000\"]`: images"));
        assert!(found[0].contains("own_daemon_json"));
        assert!(found[1].starts_with("the playbook sets `icc: true`"));
        assert!(found.iter().any(|w| w.contains("`userland-proxy: true`")));
        assert!(
            found
                .iter()
                .any(|w| w.contains("`no-new-privileges: false`"))
        );
        let plain = map(json!({"hosts": ["tcp://0.0.0.0:2375"], "tls": false}));
        let found = weakening(&plain, &Map::new());
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(weakening(&managed_secure(), &managed_secure()).is_empty());
    }

    fn managed_secure() -> Map<String, Value> {
        map(
            json!({"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"], "tls": true, "tlsverify": true, "icc": false, "userland-proxy": false}),
        )
    }

    #[test]
    fn closed_plain_listeners_are_found() {
        let before = map(json!({"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2375"]}));
        assert_eq!(
            closed_plain_listeners(&before, &managed_secure()),
            ["tcp://0.0.0.0:2375"]
        );
        assert!(closed_plain_listeners(&managed_secure(), &managed_secure()).is_empty());
    }

    #[test]
    fn broken_files_are_reported_not_merged() {
        let managed = map(json!({"icc": false}));
        let err = desired(Some(b"{\"icc\": tru"), &managed, false).unwrap_err();
        assert!(err.contains("not valid JSON (line 1"), "{err}");
        let err = desired(Some(b"[1, 2]"), &managed, false).unwrap_err();
        assert!(err.contains("not an object"), "{err}");
    }

    #[test]
    fn formatting_alone_is_no_difference() {
        let a = parse(b"{\"a\":1,\"b\":[1,2]}").unwrap();
        let b = parse(b"{\n  \"b\": [1, 2],\n  \"a\": 1\n}\n").unwrap();
        assert_eq!(a, b);
        assert!(key_changes(&a, &b).is_empty());
    }

    #[test]
    fn key_changes_list_added_changed_removed() {
        let before = map(json!({"a": 1, "b": 2, "gone": true}));
        let after = map(json!({"a": 1, "b": 3, "new": "x"}));
        assert_eq!(
            key_changes(&before, &after),
            vec![
                KeyChange::Changed {
                    key: "b".into(),
                    from: json!(2),
                    to: json!(3)
                },
                KeyChange::Added {
                    key: "new".into(),
                    value: json!("x")
                },
                KeyChange::Removed {
                    key: "gone".into(),
                    value: json!(true)
                },
            ]
        );
    }
}
