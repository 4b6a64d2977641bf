//! `/etc/docker/daemon.json`: merging the managed keys into what a host
//! has, and describing the difference key by key.
//!
//! Keys a user set by hand and the playbook does not manage are kept, in
//! their place; managed keys are set; with `own_daemon_json` the file is
//! exactly the managed keys. Files that say the same thing are equal,
//! however they are formatted, so a re-run does not rewrite them.

use serde::Serialize;
use serde_json::{Map, Value};

/// The document a host should have.
pub fn desired(
    actual: Option<&[u8]>,
    managed: &Map<String, Value>,
    own_whole_file: bool,
) -> Result<Map<String, Value>, String> {
    if own_whole_file {
        return Ok(managed.clone());
    }
    let mut document = match actual {
        None => Map::new(),
        Some(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
        Some(bytes) => parse(bytes)?,
    };
    for (key, value) in managed {
        document.insert(key.clone(), value.clone());
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
