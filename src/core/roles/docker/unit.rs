//! How systemd will start dockerd on a host, read from the files it reads:
//! the unit file, its drop-ins in systemd's order, and the environment
//! files they name. Pure: the engine gathers the files' text.
//!
//! dockhand replaces the command line with its own drop-in, so it must know
//! what the command line would be *without* that drop-in (the "base"), and
//! where each part came from, to keep what a user configured and say in
//! words what it replaces.

/// A unit file or drop-in and its text, in the order systemd reads them.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct UnitFile {
    pub path: String,
    pub text: String,
}

/// A value and the file it was set in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: String,
}

/// The `[Service]` settings dockhand cares about, after every file was
/// applied in order (an empty assignment resets a list, as in systemd).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSettings {
    /// The last ExecStart command line, as written (variables unexpanded,
    /// prefixes such as `-` removed), split into words.
    pub exec_start: Option<Sourced<Vec<String>>>,
    /// `Environment=` assignments, in order.
    pub environment: Vec<Sourced<(String, String)>>,
    /// `EnvironmentFile=` paths, in order; `true` when missing is allowed.
    pub environment_files: Vec<Sourced<(String, bool)>>,
}

impl ServiceSettings {
    /// Reads `files` in order.
    pub fn read(files: &[&UnitFile]) -> ServiceSettings {
        let mut out = ServiceSettings::default();
        for file in files {
            for (key, value) in service_assignments(&file.text) {
                let sourced = |value| Sourced {
                    value,
                    source: file.path.clone(),
                };
                match key.as_str() {
                    "ExecStart" if value.is_empty() => out.exec_start = None,
                    "ExecStart" => {
                        let command = value.trim_start_matches(['-', '@', ':', '+', '!']);
                        let words = split_words(command);
                        // `ExecStart=-` names no program: systemd logs it and
                        // ignores the line, and so does this.
                        if !words.is_empty() {
                            out.exec_start = Some(sourced(words));
                        }
                    }
                    "Environment" if value.is_empty() => out.environment.clear(),
                    "Environment" => {
                        for word in split_words(&value) {
                            if let Some((name, value)) = word.split_once('=') {
                                out.environment.push(Sourced {
                                    value: (name.to_string(), value.to_string()),
                                    source: file.path.clone(),
                                });
                            }
                        }
                    }
                    "EnvironmentFile" if value.is_empty() => out.environment_files.clear(),
                    "EnvironmentFile" => {
                        let (optional, path) = match value.strip_prefix('-') {
                            Some(path) => (true, path),
                            None => (false, value.as_str()),
                        };
                        out.environment_files.push(Sourced {
                            value: (path.trim().to_string(), optional),
                            source: file.path.clone(),
                        });
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// Every variable the service's command line sees, with the file that
    /// set it last. Environment files override `Environment=` (systemd's
    /// rule); `env_files` gives each file's text (None: missing).
    pub fn variables(
        &self,
        env_files: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<Sourced<(String, String)>> {
        let mut out: Vec<Sourced<(String, String)>> = Vec::new();
        let mut set = |name: String, value: String, source: String| {
            out.retain(|v| v.value.0 != name);
            out.push(Sourced {
                value: (name, value),
                source,
            });
        };
        for assignment in &self.environment {
            set(
                assignment.value.0.clone(),
                assignment.value.1.clone(),
                assignment.source.clone(),
            );
        }
        for file in &self.environment_files {
            let path = &file.value.0;
            if let Some(text) = env_files(path) {
                for (name, value) in parse_env_file(&text) {
                    set(name, value, path.clone());
                }
            }
        }
        out
    }
}

/// `(key, value)` of every assignment in the `[Service]` section, with
/// continuation lines joined and comments skipped.
pub fn service_assignments(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        // A comment line is skipped even inside a continued line (systemd.syntax).
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let line = std::mem::take(&mut pending);
        let line = line.trim();
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].trim().to_string();
            continue;
        }
        if section != "Service" {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            out.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// Splits a command line or assignment list into words the way systemd
/// does: whitespace separates, single and double quotes group, a
/// backslash escapes the next character.
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `NAME=value` lines of an environment file (`/etc/default/docker`), as
/// systemd reads them: comments and blank lines skipped, one pair of
/// quotes around the value removed. A line systemd would not take (an
/// `export NAME=…` left from the sysvinit days, a bad name) is skipped:
/// dockerd never saw it either.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            let name = name.trim();
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            valid.then(|| (name.to_string(), unquote(value.trim())))
        })
        .collect()
}

fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return value[1..value.len() - 1].to_string();
        }
    }
    value.to_string()
}

/// One word of a command line after variable expansion: its text, and the
/// variable it came from (None: written in the command line itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandedWord {
    pub text: String,
    pub variable: Option<String>,
    /// Index of the word of the command line it came from.
    pub source: usize,
}

/// Expands `$NAME` (a whole word: split into several words as systemd
/// splits them, quotes respected, none when empty) and `${NAME}` (kept as
/// one word), as systemd does for ExecStart.
pub fn expand(words: &[String], variables: &[Sourced<(String, String)>]) -> Vec<ExpandedWord> {
    let lookup = |name: &str| {
        variables
            .iter()
            .find(|v| v.value.0 == name)
            .map(|v| v.value.1.clone())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for (source, word) in words.iter().enumerate() {
        if let Some(name) = whole_variable(word) {
            out.extend(
                split_words(&lookup(name))
                    .into_iter()
                    .map(|w| ExpandedWord {
                        text: w,
                        variable: Some(name.to_string()),
                        source,
                    }),
            );
        } else if let Some(name) = braced_variable(word) {
            out.push(ExpandedWord {
                text: lookup(name),
                variable: Some(name.to_string()),
                source,
            });
        } else {
            out.push(ExpandedWord {
                source,
                text: word.clone(),
                variable: None,
            });
        }
    }
    out
}

/// `NAME` when `word` is exactly `$NAME`.
pub fn whole_variable(word: &str) -> Option<&str> {
    let name = word.strip_prefix('$')?;
    is_variable_name(name).then_some(name)
}

/// `NAME` when `word` is exactly `${NAME}`.
pub fn braced_variable(word: &str) -> Option<&str> {
    let name = word.strip_prefix("${")?.strip_suffix('}')?;
    is_variable_name(name).then_some(name)
}

fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> UnitFile {
        UnitFile {
            path: path.into(),
            text: text.into(),
        }
    }

    const PACKAGED: &str = "[Unit]\nDescription=Docker\nExecStart=/not/service\n\n[Service]\nType=notify\n\
        EnvironmentFile=-/etc/default/docker\n\
        ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n";

    #[test]
    fn the_last_exec_start_wins_and_an_empty_one_resets() {
        let unit = file("/lib/systemd/system/docker.service", PACKAGED);
        let machine = file(
            "/etc/systemd/system/docker.service.d/10-machine.conf",
            "[Service]\n# docker-machine\nExecStart=\nExecStart=-/usr/bin/dockerd \\\n  -H tcp://0.0.0.0:2375 \\\n  -H unix:///var/run/docker.sock --label \"provider=generic lab\" $DOCKER_OPTS\nEnvironment=\n",
        );
        let settings = ServiceSettings::read(&[&unit]);
        let exec = settings.exec_start.unwrap();
        assert_eq!(exec.source, "/lib/systemd/system/docker.service");
        assert_eq!(exec.value[..3], ["/usr/sbin/dockerd", "-H", "fd://"]);
        assert_eq!(
            settings.environment_files[0].value,
            ("/etc/default/docker".to_string(), true)
        );

        let settings = ServiceSettings::read(&[&unit, &machine]);
        let exec = settings.exec_start.unwrap();
        let commented = file(
            "/c.conf",
            "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// \\\n#  --iptables=false \\\n  --containerd=/c.sock\n",
        );
        assert_eq!(
            ServiceSettings::read(&[&commented])
                .exec_start
                .unwrap()
                .value,
            ["/usr/bin/dockerd", "-H", "fd://", "--containerd=/c.sock"],
            "a comment inside a continued line is skipped"
        );
        assert_eq!(exec.source, machine.path);
        assert_eq!(
            exec.value,
            [
                "/usr/bin/dockerd",
                "-H",
                "tcp://0.0.0.0:2375",
                "-H",
                "unix:///var/run/docker.sock",
                "--label",
                "provider=generic lab",
                "$DOCKER_OPTS"
            ]
        );
        // The drop-in's empty Environment= leaves the unit's files alone.
        assert_eq!(settings.environment_files.len(), 1);
        let reset = file("/x.conf", "[Service]\nExecStart=\n");
        assert_eq!(ServiceSettings::read(&[&unit, &reset]).exec_start, None);
        // A line with a prefix and no program is ignored, as systemd
        // ignores it: the unit's own command line stays.
        for line in [
            "ExecStart=-",
            "ExecStart=@",
            "ExecStart=-   ",
            "ExecStart=+!",
        ] {
            let harmless = file("/y.conf", &format!("[Service]\n{line}\n"));
            let kept = ServiceSettings::read(&[&unit, &harmless])
                .exec_start
                .unwrap();
            assert_eq!(kept.source, unit.path, "{line}");
        }
    }

    #[test]
    fn environment_files_override_environment_lines() {
        let unit = file(
            "/u",
            "[Service]\nEnvironment=\"DOCKER_OPTS=--debug\" OTHER=1\nEnvironmentFile=-/etc/default/docker\nEnvironmentFile=/etc/missing\n",
        );
        let settings = ServiceSettings::read(&[&unit]);
        let env = |path: &str| {
            (path == "/etc/default/docker").then(|| {
                "# comment\nDOCKER_OPTS=\"--dns 192.0.2.53 --data-root /srv/docker\"\nHTTP_PROXY=http://proxy.invalid:3128\nexport OLD=--debug\n1BAD=x\n".to_string()
            })
        };
        let variables = settings.variables(&env);
        let find = |name: &str| variables.iter().find(|v| v.value.0 == name).unwrap();
        assert_eq!(
            find("DOCKER_OPTS").value.1,
            "--dns 192.0.2.53 --data-root /srv/docker"
        );
        assert_eq!(find("DOCKER_OPTS").source, "/etc/default/docker");
        assert_eq!(find("OTHER").source, "/u");
        assert_eq!(find("HTTP_PROXY").value.1, "http://proxy.invalid:3128");
        assert!(!variables.iter().any(|v| v.value.0 == "1BAD"));
        assert!(
            !variables.iter().any(|v| v.value.0.contains("OLD")),
            "systemd ignores `export` lines, and so does dockhand"
        );
    }

    #[test]
    fn variables_expand_as_systemd_does() {
        let variables = vec![Sourced {
            value: ("OPTS".to_string(), "--dns 1.2.3.4  --debug".to_string()),
            source: "/f".to_string(),
        }];
        let words: Vec<String> = ["/d", "$OPTS", "${OPTS}", "$EMPTY", "-x$OPTS"]
            .map(String::from)
            .to_vec();
        let expanded: Vec<(String, Option<String>)> = expand(&words, &variables)
            .into_iter()
            .map(|w| (w.text, w.variable))
            .collect();
        let opts = Some("OPTS".to_string());
        assert_eq!(
            expanded,
            vec![
                ("/d".into(), None),
                ("--dns".into(), opts.clone()),
                ("1.2.3.4".into(), opts.clone()),
                ("--debug".into(), opts.clone()),
                ("--dns 1.2.3.4  --debug".into(), opts),
                ("-x$OPTS".into(), None),
            ]
        );
    }

    #[test]
    fn words_split_with_quotes_and_escapes() {
        let cases: &[(&str, &[&str])] = &[
            ("a b  c", &["a", "b", "c"]),
            ("\"A=1 2\" B=3", &["A=1 2", "B=3"]),
            ("'x y'z \\\"q", &["x yz", "\"q"]),
            ("", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(split_words(text), *expected, "{text}");
        }
    }
}
