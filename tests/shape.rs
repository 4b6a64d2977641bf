//! The shape of the code, held by tests so it stays as the architecture
//! says (docs/ARCHITECTURE.md): commands hold no flow, the core has no
//! function a reader cannot take in at once, and every shell script run on
//! a host is built in `engine::remote` alone.

use std::path::{Path, PathBuf};

/// The `.rs` files under `dir`, recursively, in a stable order.
fn sources(dir: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn commands_are_options_one_engine_call_and_a_report() {
    for path in sources("src/commands") {
        let text = read(&path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let lines = text.lines().count();
        assert!(lines < 150, "{name}: {lines} lines");
        assert!(
            !text.contains("crate::transport"),
            "{name} reaches the transport"
        );
        if name != "pki.rs" {
            assert!(!text.contains("crate::pki"), "{name} reaches the PKI");
        }
    }
}

/// Every `fn` in `text` with its length in lines (to its closing brace
/// at the same indentation).
fn functions(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let signature = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
            .iter()
            .find_map(|prefix| trimmed.strip_prefix(prefix));
        let Some(rest) = signature else { continue };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[at + 1..].iter().position(|l| *l == close) {
            found.push((name, end + 2));
        }
    }
    found
}

#[test]
fn no_function_in_the_core_is_over_100_lines() {
    let mut long = Vec::new();
    for path in sources("src/core") {
        for (name, lines) in functions(&read(&path)) {
            if lines > 100 {
                long.push(format!("{}: {name} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn the_counter_counts() {
    let text = "fn short() {\n    1\n}\n\n    pub fn inner() {\n        2\n    }\n";
    assert_eq!(
        functions(text),
        [("short".to_string(), 3), ("inner".to_string(), 3)]
    );
}

/// Shell on a host is built in one module: outside it, no string holds
/// the marks of a shell script.
#[test]
fn shell_is_built_in_engine_remote_alone() {
    let marks = ["2>/dev/null", "sh -c", "; then", "; do ", "$(", "sudo -n"];
    // Test code holds hostile input (`$(touch …)`) on purpose.
    let test_only = ["fake.rs", "fleet_tests.rs"];
    let mut found = Vec::new();
    for path in sources("src") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.components().any(|c| c.as_os_str() == "remote")
            || test_only.contains(&name.as_str())
        {
            continue;
        }
        let text = read(&path);
        let code = text.split("\nmod tests {").next().unwrap();
        for (number, line) in code.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || !code.contains('"') {
                continue;
            }
            if let Some(mark) = marks.iter().find(|m| code.contains(*m)) {
                found.push(format!("{}:{}: {mark}", path.display(), number + 1));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
