//! OpenSSH client configuration (`~/.ssh/config`), as far as dockhand
//! needs it: `Host` blocks with patterns (`*`, `?`, `!negation`), and the
//! keywords HostName, User, Port, IdentityFile, ProxyJump,
//! UserKnownHostsFile, StrictHostKeyChecking, HostKeyAlias and
//! ConnectTimeout. As in ssh, the first value obtained for a keyword wins
//! (IdentityFile accumulates). `Include` is followed (globs, `~`, paths
//! relative to `~/.ssh`), as OpenSSH follows it. `Match` is evaluated with
//! `all`, `host`, `originalhost`, `user`, `localuser`, `canonical` (never
//! true: dockhand does not canonicalize) and `final` (this one pass), each
//! negatable; `Match exec` and other criteria are errors, since dockhand
//! runs no command from ssh_config. An `Include` under a `Host` or `Match`
//! is conditional, as in OpenSSH: the included file applies only where the
//! including block does. Pure: the caller reads the files and names the
//! local user.

/// Settings for one host, as ssh would resolve them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSettings {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<String>,
    pub proxy_jump: Option<String>,
    pub known_hosts_files: Vec<String>,
    pub strict_host_key_checking: Option<String>,
    pub host_key_alias: Option<String>,
    pub connect_timeout: Option<u64>,
}

#[derive(Debug, Clone)]
struct Block {
    /// Every pattern list that must match (an `Include`d file's `Host`
    /// blocks are under the block that included it); None for a `Match`
    /// line that could not be read, which never applies.
    conditions: Option<Vec<Vec<String>>>,
    /// A `Match` block's own criteria, all of which must hold, evaluated
    /// once, where the block stands; its number, for what it encloses.
    criteria: Vec<Criterion>,
    match_id: Option<usize>,
    /// The `Match` blocks whose files (through `Include`) this block is
    /// in: each must have held where it stood.
    within: Vec<usize>,
    options: Vec<(String, String)>,
}

impl Block {
    /// A block of options (no criteria of its own).
    fn within(conditions: Option<Vec<Vec<String>>>, within: &[usize]) -> Block {
        Block {
            conditions,
            criteria: Vec::new(),
            match_id: None,
            within: within.to_vec(),
            options: Vec::new(),
        }
    }
}

/// One criterion of a `Match` line, possibly negated (`!`).
#[derive(Debug, Clone)]
struct Criterion {
    negated: bool,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    All,
    /// The host after HostName, as set so far.
    Host(Vec<String>),
    /// The name as given.
    OriginalHost(Vec<String>),
    /// The remote user as set so far (else the local one).
    User(Vec<String>),
    LocalUser(Vec<String>),
    /// Only during hostname canonicalization, which dockhand does not do.
    Canonical,
    /// The final pass, taken as this one.
    Final,
}

/// How deep `Include`s may nest, as in OpenSSH.
const INCLUDE_DEPTH: usize = 16;

/// A parsed configuration.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    blocks: Vec<Block>,
    /// How many `Match` blocks there are.
    matches: usize,
    /// What could not be taken (`Match exec` and other criteria dockhand
    /// does not evaluate): the caller refuses the file with them.
    pub errors: Vec<String>,
    /// The local account, for `Match user` (when no User is set yet) and
    /// `Match localuser`; the engine says who runs it.
    pub local_user: String,
}

/// The texts of the files an `Include` names: given its pattern (`~/…`
/// or absolute; a relative one has been put under `~/.ssh/`), the files
/// that match it, in name order. The engine reads them; tests give text.
pub type Include<'a> = &'a dyn Fn(&str) -> Vec<String>;

impl SshConfig {
    /// A configuration that includes nothing.
    pub fn parse(text: &str) -> SshConfig {
        SshConfig::parse_with(text, &|_| Vec::new())
    }

    /// A configuration whose `Include`s are read with `include`: an
    /// included file's lines apply where the `Include` stands (only when
    /// the block around it matches), its own `Host` lines narrow that, and
    /// after it the including block goes on.
    pub fn parse_with(text: &str, include: Include) -> SshConfig {
        let mut config = SshConfig::default();
        parse_into(&mut config, text, &(Vec::new(), Vec::new()), include, 0);
        config
    }

    /// The settings ssh would use for `ssh NAME`.
    pub fn resolve(&self, name: &str) -> HostSettings {
        let mut out = HostSettings::default();
        // Each Match's result, taken where it stands (OpenSSH evaluates
        // it once, with the settings obtained so far).
        let mut held = vec![false; self.matches];
        for block in &self.blocks {
            let Some(conditions) = &block.conditions else {
                continue;
            };
            let mut applies = conditions
                .iter()
                .all(|patterns| host_matches(patterns, name))
                && block.within.iter().all(|id| held[*id]);
            if let Some(id) = block.match_id {
                applies = applies
                    && block
                        .criteria
                        .iter()
                        .all(|c| c.holds(name, &out, &self.local_user));
                held[id] = applies;
            }
            if !applies {
                continue;
            }
            for (keyword, value) in &block.options {
                let first = |slot: &mut Option<String>| {
                    if slot.is_none() {
                        *slot = Some(expand_tokens(value, name));
                    }
                };
                match keyword.as_str() {
                    "hostname" => first(&mut out.host_name),
                    "user" => first(&mut out.user),
                    "proxyjump" => first(&mut out.proxy_jump),
                    "stricthostkeychecking" => first(&mut out.strict_host_key_checking),
                    "hostkeyalias" => first(&mut out.host_key_alias),
                    "port" if out.port.is_none() => out.port = value.parse().ok(),
                    "connecttimeout" if out.connect_timeout.is_none() => {
                        out.connect_timeout = value.parse().ok()
                    }
                    "identityfile" => out.identity_files.push(expand_tokens(value, name)),
                    "userknownhostsfile" if out.known_hosts_files.is_empty() => {
                        out.known_hosts_files = words(value)
                            .iter()
                            .map(|w| expand_tokens(w, name))
                            .collect()
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// Where a block applies: host pattern lists, and the `Match` blocks it
/// is within.
type Scope = (Vec<Vec<String>>, Vec<usize>);

/// Parses `text` into blocks under `outer` (the scope of the block that
/// included it; everywhere at the top).
fn parse_into(config: &mut SshConfig, text: &str, outer: &Scope, include: Include, depth: usize) {
    let blocks = &mut config.blocks;
    // Lines before the first Host line apply wherever the file applies.
    let mut current: Option<Scope> = Some(outer.clone());
    blocks.push(Block::within(Some(outer.0.clone()), &outer.1));
    for line in text.lines() {
        let blocks = &mut config.blocks;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((keyword, value)) = split_keyword(line) else {
            continue;
        };
        match keyword.as_str() {
            "host" => {
                let mut conditions = outer.0.clone();
                conditions.push(words(&value));
                current = Some((conditions.clone(), outer.1.clone()));
                blocks.push(Block::within(Some(conditions), &outer.1));
            }
            "match" => match criteria(&value) {
                Ok(criteria) => {
                    let id = config.matches;
                    config.matches += 1;
                    let mut within = outer.1.clone();
                    within.push(id);
                    current = Some((outer.0.clone(), within));
                    config.blocks.push(Block {
                        criteria,
                        match_id: Some(id),
                        ..Block::within(Some(outer.0.clone()), &outer.1)
                    });
                }
                Err(e) => {
                    config.errors.push(format!("`{line}`: {e}"));
                    current = None;
                    config.blocks.push(Block::within(None, &[]));
                }
            },
            "include" => {
                // Inside a block that never applies (a Match that could not
                // be read), nothing in the included files can apply either.
                if let Some(scope) = current.clone().filter(|_| depth < INCLUDE_DEPTH) {
                    for pattern in words(&value) {
                        let pattern = if pattern.starts_with('/') || pattern.starts_with("~/") {
                            pattern
                        } else {
                            format!("~/.ssh/{pattern}")
                        };
                        for text in include(&pattern) {
                            parse_into(config, &text, &scope, include, depth + 1);
                        }
                    }
                }
                // After it, the including block goes on.
                let (conditions, within) = match &current {
                    Some((conditions, within)) => (Some(conditions.clone()), within.as_slice()),
                    None => (None, &[][..]),
                };
                config.blocks.push(Block::within(conditions, within));
            }
            _ => blocks
                .last_mut()
                .expect("one block at least")
                .options
                .push((keyword, value)),
        }
    }
}

/// A `Match` line's criteria.
fn criteria(value: &str) -> Result<Vec<Criterion>, String> {
    let words = words(value);
    let mut out = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let (negated, keyword) = match word.strip_prefix('!') {
            Some(rest) => (true, rest.to_ascii_lowercase()),
            None => (false, word.to_ascii_lowercase()),
        };
        let mut list = |what: &str| -> Result<Vec<String>, String> {
            let patterns = words
                .next()
                .ok_or_else(|| format!("`{what}` needs patterns"))?;
            Ok(patterns.split(',').map(str::to_string).collect())
        };
        let test = match keyword.as_str() {
            "all" => Test::All,
            "canonical" => Test::Canonical,
            "final" => Test::Final,
            "host" => Test::Host(list("host")?),
            "originalhost" => Test::OriginalHost(list("originalhost")?),
            "user" => Test::User(list("user")?),
            "localuser" => Test::LocalUser(list("localuser")?),
            "exec" => {
                return Err(
                    "Match exec is not supported: dockhand does not run commands from ssh_config"
                        .into(),
                );
            }
            other => return Err(format!("Match {other} is not supported")),
        };
        out.push(Criterion { negated, test });
    }
    Ok(out)
}

impl Criterion {
    fn holds(&self, name: &str, so_far: &HostSettings, local: &str) -> bool {
        let held = match &self.test {
            Test::All | Test::Final => true,
            Test::Canonical => false,
            Test::Host(patterns) => {
                host_matches(patterns, so_far.host_name.as_deref().unwrap_or(name))
            }
            Test::OriginalHost(patterns) => host_matches(patterns, name),
            Test::User(patterns) => match &so_far.user {
                Some(user) => host_matches(patterns, user),
                None => host_matches(patterns, local),
            },
            Test::LocalUser(patterns) => host_matches(patterns, local),
        };
        held != self.negated
    }
}

/// `Keyword value`, `Keyword=value` or `Keyword = value`; keywords are
/// case-insensitive; a quoted value loses its quotes.
fn split_keyword(line: &str) -> Option<(String, String)> {
    let at = line.find(|c: char| c.is_whitespace() || c == '=')?;
    let keyword = line[..at].to_ascii_lowercase();
    let rest = line[at..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    let value = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(rest);
    Some((keyword, value.to_string()))
}

fn words(value: &str) -> Vec<String> {
    value
        .split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect()
}

/// A host matches when some pattern matches and no negated one does.
fn host_matches(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        match pattern.strip_prefix('!') {
            Some(negated) if wildcard(negated, name) => return false,
            Some(_) => {}
            None => matched |= wildcard(pattern, name),
        }
    }
    matched
}

/// ssh's `*` and `?` wildcards, case-insensitively.
fn wildcard(pattern: &str, name: &str) -> bool {
    fn matches(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => matches(&p[1..], n) || (!n.is_empty() && matches(p, &n[1..])),
            (Some(b'?'), Some(_)) => matches(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => matches(&p[1..], &n[1..]),
            _ => false,
        }
    }
    matches(pattern.as_bytes(), name.as_bytes())
}

/// The tokens users put in paths: `%h` (the host as given), `%n` (the same)
/// and `%%`. Others are left as they are.
fn expand_tokens(value: &str, name: &str) -> String {
    value
        .replace("%%", "\u{0}")
        .replace("%h", name)
        .replace("%n", name)
        .replace('\u{0}', "%")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# global
ConnectTimeout 7

Host bastion
    HostName 192.0.2.1
    User jump

Host web? !web9
    HostName %h.internal.example
    User deploy
    Port=2222
    IdentityFile ~/.ssh/web_ed25519
    ProxyJump bastion

Match exec \"true\"
    User never

Host *
    User fallback
    IdentityFile ~/.ssh/id_ed25519
    UserKnownHostsFile ~/.ssh/known_hosts ~/.ssh/known_hosts2
    StrictHostKeyChecking accept-new
";

    #[test]
    fn resolves_like_ssh() {
        let config = SshConfig::parse(CONFIG);
        let web1 = config.resolve("web1");
        assert_eq!(web1.host_name.as_deref(), Some("web1.internal.example"));
        assert_eq!(web1.user.as_deref(), Some("deploy"), "first value wins");
        assert_eq!(web1.port, Some(2222));
        assert_eq!(
            web1.identity_files,
            ["~/.ssh/web_ed25519", "~/.ssh/id_ed25519"],
            "identity files accumulate"
        );
        assert_eq!(web1.proxy_jump.as_deref(), Some("bastion"));
        assert_eq!(web1.connect_timeout, Some(7));
        assert_eq!(
            web1.known_hosts_files,
            ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"]
        );
        assert_eq!(web1.strict_host_key_checking.as_deref(), Some("accept-new"));

        let web9 = config.resolve("web9");
        assert_eq!(
            (web9.host_name, web9.user.as_deref()),
            (None, Some("fallback")),
            "negated pattern"
        );
        let bastion = config.resolve("bastion");
        assert_eq!(
            (bastion.host_name.as_deref(), bastion.user.as_deref()),
            (Some("192.0.2.1"), Some("jump"))
        );
        assert_eq!(
            config.resolve("WEB2").user.as_deref(),
            Some("deploy"),
            "patterns ignore case"
        );
        assert_eq!(
            config.resolve("web10").user.as_deref(),
            Some("fallback"),
            "? is one character"
        );
    }

    #[test]
    fn empty_and_odd_input() {
        assert_eq!(SshConfig::parse("").resolve("x"), HostSettings::default());
        let odd = SshConfig::parse(
            "Host x\n  Port notanumber\n  HostName = \"quoted.example\"\n  junkline\n",
        );
        let x = odd.resolve("x");
        assert_eq!(
            (x.port, x.host_name.as_deref()),
            (None, Some("quoted.example"))
        );
    }

    #[test]
    fn includes_apply_where_they_stand() {
        let asked = std::cell::RefCell::new(Vec::new());
        let include = |pattern: &str| -> Vec<String> {
            asked.borrow_mut().push(pattern.to_string());
            match pattern {
                "~/.ssh/conf.d/*" => vec![
                    "Host alias\n  HostName 192.0.2.9\n".into(),
                    "Port 2000\n".into(),
                ],
                "/etc/ssh/web.inc" => vec!["User web\n".into()],
                "/etc/ssh/db.inc" => vec!["User dba\nHost db2\n  Port 2202\n".into()],
                _ => vec!["User never\n".into()],
            }
        };
        let config = SshConfig::parse_with(
            "Include conf.d/*\nHost web*\n  Include /etc/ssh/web.inc\n  Port 80\nMatch originalhost db*\n  Include /etc/ssh/db.inc\nMatch originalhost nowhere\n  Include /never\nHost *\n  User x\n",
            &include,
        );
        // Each included file starts where the Include stands (here: every
        // host), whatever the file before it opened.
        let alias = config.resolve("alias");
        assert_eq!(
            (
                alias.host_name.as_deref(),
                alias.port,
                alias.user.as_deref()
            ),
            (Some("192.0.2.9"), Some(2000), Some("x"))
        );
        let web = config.resolve("web1");
        assert_eq!((web.user.as_deref(), web.port), (Some("web"), Some(2000)));
        // Under a Match, the included file applies where the Match holds,
        // its own Host blocks within that.
        let db = config.resolve("db1");
        assert_eq!((db.user.as_deref(), db.port), (Some("dba"), Some(2000)));
        let db2 = config.resolve("db2");
        assert_eq!((db2.user.as_deref(), db2.port), (Some("dba"), Some(2000)));
        assert_eq!(config.resolve("other").user.as_deref(), Some("x"));
        assert_eq!(config.resolve("nowhere").user.as_deref(), Some("never"));
        // Relative paths are under ~/.ssh.
        assert_eq!(
            *asked.borrow(),
            [
                "~/.ssh/conf.d/*",
                "/etc/ssh/web.inc",
                "/etc/ssh/db.inc",
                "/never"
            ]
        );
    }

    #[test]
    fn match_exec_and_unknown_criteria_are_refused() {
        for (line, wanted) in [
            (
                "Match exec \"true\"",
                "Match exec is not supported: dockhand does not run commands",
            ),
            ("Match tagged x", "Match tagged is not supported"),
            ("Match host", "`host` needs patterns"),
        ] {
            let config = SshConfig::parse(&format!("{line}\n  User x\n"));
            assert!(
                config.errors[0].contains(wanted),
                "{line}: {:?}",
                config.errors
            );
            assert_eq!(config.resolve("any").user, None, "{line}");
        }
        let config = SshConfig {
            local_user: "alice".into(),
            ..SshConfig::parse(
                "Match !localuser bob host web*\n  User deploy\nMatch all\n  Port 2\n",
            )
        };
        assert_eq!(config.resolve("web1").user.as_deref(), Some("deploy"));
        assert_eq!(config.resolve("db1").user, None);
        assert_eq!(config.resolve("db1").port, Some(2));
    }
}
