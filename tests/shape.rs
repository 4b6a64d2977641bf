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
        if !name.starts_with("pki") {
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

/// A source file's module path: `src/core/plan.rs` → `core::plan`,
/// `src/core/roles/mod.rs` → `core::roles`, `src/lib.rs` → ``.
fn module_of(relative: &str) -> String {
    let path = relative.trim_end_matches(".rs");
    let path = path
        .strip_suffix("/mod")
        .or_else(|| path.strip_suffix("lib"))
        .unwrap_or(path);
    path.trim_end_matches('/').replace('/', "::")
}

/// The modules `text` (of module `module`) names: `crate::…` paths, and
/// `super::…` ones resolved, with `{…}` groups expanded one level. Test
/// modules are left out: tests may reach anywhere.
fn named_modules(module: &str, text: &str) -> Vec<String> {
    let code = text.split("\nmod tests {").next().unwrap_or("");
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut found = Vec::new();
    for (prefix, base) in [("crate::", String::new()), ("super::", parent.to_string())] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let path = path.trim_end_matches(':');
            let join = |tail: &str| {
                [base.as_str(), tail]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("::")
            };
            let after = &rest[path.len()..];
            if let Some(group) = after
                .strip_prefix("::{")
                .or_else(|| after.strip_prefix('{'))
            {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    let item = item.trim().split(" as ").next().unwrap_or("").trim();
                    if item == "self" || item.is_empty() {
                        found.push(join(path));
                    } else if path.is_empty() {
                        found.push(join(item));
                    } else {
                        found.push(join(&format!("{path}::{item}")));
                    }
                }
            } else {
                found.push(join(path));
            }
        }
    }
    found
}

/// The import circles among `files` (module path → text): each circle as
/// its modules in order. A module naming one of its own ancestors (a child
/// taking its parent's types) is no circle.
fn import_circles(files: &[(String, String)]) -> Vec<Vec<String>> {
    let modules: Vec<&str> = files.iter().map(|(m, _)| m.as_str()).collect();
    // The longest module that a named path starts with.
    let resolve = |path: &str| {
        modules
            .iter()
            .filter(|m| !m.is_empty() && (path == **m || path.starts_with(&format!("{m}::"))))
            .max_by_key(|m| m.len())
            .map(|m| m.to_string())
    };
    let edges: Vec<(String, Vec<String>)> = files
        .iter()
        .map(|(module, text)| {
            let mut to: Vec<String> = named_modules(module, text)
                .iter()
                .filter_map(|p| resolve(p))
                .filter(|t| t != module && !module.starts_with(&format!("{t}::")))
                .collect();
            to.sort();
            to.dedup();
            (module.clone(), to)
        })
        .collect();
    let mut circles = Vec::new();
    for (start, _) in &edges {
        // Depth-first from each module, looking for a way back to it.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = std::collections::BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            let next = edges.iter().find(|(m, _)| *m == at).map(|(_, t)| t);
            for to in next.into_iter().flatten() {
                if to == start {
                    let mut circle = path.clone();
                    circle.sort();
                    if !circles.contains(&circle) {
                        circles.push(circle);
                    }
                } else if seen.insert(to.clone()) {
                    let mut longer = path.clone();
                    longer.push(to.clone());
                    stack.push((to.clone(), longer));
                }
            }
        }
    }
    circles
}

#[test]
fn no_two_files_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files: Vec<(String, String)> = sources("src")
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name != "fake.rs"
                && name != "fleet_tests.rs"
                && name != "fuzz_tests.rs"
                && name != "main.rs"
        })
        .map(|p| {
            let relative = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (module_of(&relative), read(&p))
        })
        .collect();
    let circles = import_circles(&files);
    assert!(circles.is_empty(), "{circles:#?}");
    // The finder reads the real files: the pipeline names what it uses.
    let (_, pipeline) = files.iter().find(|(m, _)| m == "engine::pipeline").unwrap();
    let named = named_modules("engine::pipeline", pipeline);
    for used in ["engine::remote", "engine::work", "core::roles", "transport"] {
        assert!(
            named.iter().any(|n| n.starts_with(used)),
            "{used} not in {named:?}"
        );
    }
}

#[test]
fn the_circle_finder_finds_circles() {
    let files = |texts: &[(&str, &str)]| -> Vec<(String, String)> {
        texts
            .iter()
            .map(|(m, t)| (m.to_string(), t.to_string()))
            .collect()
    };
    // The two the code once had: over one constant, and over a helper.
    let circle = files(&[
        ("core", "pub mod playbook;"),
        (
            "core::playbook",
            "use crate::core::resources::DOCKER_TLS_KEYS;",
        ),
        (
            "core::resources",
            "use super::playbook::{DockerRole, Handler};",
        ),
        ("engine::load", "use super::target::Targets;"),
        ("engine::target", "let home = super::load::home_dir();"),
    ]);
    let mut found = import_circles(&circle);
    found.sort();
    assert_eq!(
        found,
        [
            vec!["core::playbook".to_string(), "core::resources".to_string()],
            vec!["engine::load".to_string(), "engine::target".to_string()],
        ]
    );
    // A child taking its parent's types, a test module: no circle.
    let fine = files(&[
        (
            "core::roles",
            "pub mod docker;\nfn f() { docker::expand() }\nuse crate::core::roles::docker::TLS;",
        ),
        (
            "core::roles::docker",
            "use super::{Check, Resources};\nmod tests {\nuse crate::core::roles::x;\n}",
        ),
    ]);
    assert!(import_circles(&fine).is_empty());
    assert_eq!(module_of("core/roles/mod.rs"), "core::roles");
    assert_eq!(module_of("lib.rs"), "");
}
