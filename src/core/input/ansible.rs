//! Ansible inventories as users have them: YAML (`all`, `children`,
//! `hosts`, `vars`, nested groups), INI (`[group]`, `[group:vars]`,
//! `[group:children]`, `host k=v …`), and the JSON a dynamic inventory
//! prints for `--list` (`_meta.hostvars`). All three become one [`Tree`],
//! resolved as Ansible resolves it: a host is in every group above the
//! groups that list it; variables come from `all`, then from groups by
//! depth (a child beats its parent, names break ties), then from the host.
//!
//! The connection variables map to dockhand's settings (`ansible_host`,
//! `ansible_port`, `ansible_user`, `ansible_ssh_private_key_file`,
//! `ansible_become`, `ansible_become_user: root`, a ProxyJump in
//! `ansible_ssh_common_args`); one dockhand cannot honour (a password,
//! a ProxyCommand, another connection type, a Jinja template) is an error
//! naming the host and the variable, never silently dropped. Every other
//! variable reaches templates.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_yaml::Value;

use super::inventory::{Host, Inventory, SshSettings, TlsNames, expand_home};
use crate::error::{Error, Result};

/// Groups and hosts as an Ansible inventory states them.
#[derive(Debug, Default)]
pub struct Tree {
    /// Hosts in the order they first appear, with their own variables.
    hosts: IndexMap<String, BTreeMap<String, String>>,
    groups: IndexMap<String, Group>,
}

#[derive(Debug, Default)]
struct Group {
    hosts: Vec<String>,
    children: Vec<String>,
    vars: BTreeMap<String, String>,
}

impl Tree {
    fn host(&mut self, name: &str) -> &mut BTreeMap<String, String> {
        self.hosts.entry(name.to_string()).or_default()
    }

    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }
}

/// Whether a YAML document is an Ansible inventory rather than dockhand's
/// own: a top-level mapping with none of dockhand's keys, whose values are
/// groups (`all`, or mappings of `hosts`, `children` and `vars`).
pub fn is_ansible_yaml(document: &Value) -> bool {
    let Value::Mapping(top) = document else {
        return false;
    };
    let ours = ["defaults", "hosts", "groups"];
    !top.is_empty()
        && top
            .keys()
            .all(|k| k.as_str().is_some_and(|k| !ours.contains(&k)))
        && top.values().all(|v| {
            v.is_null()
                || v.as_mapping().is_some_and(|m| {
                    m.keys().all(|k| {
                        k.as_str()
                            .is_some_and(|k| ["hosts", "children", "vars"].contains(&k))
                    })
                })
        })
}

/// An Ansible YAML inventory's tree.
pub fn from_yaml(file: &Path, document: &Value) -> Result<Tree> {
    let mut tree = Tree::default();
    let Value::Mapping(top) = document else {
        return Ok(tree);
    };
    for (name, body) in top {
        yaml_group(file, &mut tree, name.as_str().unwrap_or_default(), body)?;
    }
    Ok(tree)
}

fn yaml_group(file: &Path, tree: &mut Tree, name: &str, body: &Value) -> Result<()> {
    tree.group(name);
    let Some(body) = body.as_mapping() else {
        return Ok(());
    };
    if let Some(hosts) = body.get("hosts").and_then(Value::as_mapping) {
        for (host, vars) in hosts {
            let host = scalar(host);
            let vars = yaml_vars(file, &format!("host `{host}`"), vars)?;
            tree.host(&host).extend(vars);
            tree.group(name).hosts.push(host);
        }
    }
    if let Some(vars) = body.get("vars") {
        let vars = yaml_vars(file, &format!("group `{name}`"), vars)?;
        tree.group(name).vars.extend(vars);
    }
    if let Some(children) = body.get("children").and_then(Value::as_mapping) {
        for (child, child_body) in children {
            let child = scalar(child);
            tree.group(name).children.push(child.clone());
            yaml_group(file, tree, &child, child_body)?;
        }
    }
    Ok(())
}

/// A mapping of variables as strings (templates take strings); lists and
/// mappings are kept as JSON text.
fn yaml_vars(file: &Path, whose: &str, vars: &Value) -> Result<BTreeMap<String, String>> {
    match vars {
        Value::Null => Ok(BTreeMap::new()),
        Value::Mapping(map) => Ok(map.iter().map(|(k, v)| (scalar(k), scalar(v))).collect()),
        _ => Err(input(
            file,
            0,
            format!("{whose}: its variables are not a mapping"),
        )),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn input(file: &Path, line: usize, message: String) -> Error {
    Error::Input {
        file: file.to_path_buf(),
        line,
        column: if line == 0 { 0 } else { 1 },
        message,
    }
}

/// An Ansible INI inventory's tree.
pub fn from_ini(file: &Path, text: &str) -> Result<Tree> {
    let mut tree = Tree::default();
    // Lines before any section name ungrouped hosts.
    let mut section = ("ungrouped".to_string(), "hosts".to_string());
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = match name.split_once(':') {
                Some((group, kind @ ("vars" | "children"))) => (group.to_string(), kind.into()),
                Some((_, kind)) => {
                    return Err(input(
                        file,
                        number,
                        format!("[{name}]: unknown section kind `{kind}`"),
                    ));
                }
                None => (name.to_string(), "hosts".into()),
            };
            tree.group(&section.0);
            continue;
        }
        let words = ini_words(line).map_err(|e| input(file, number, e))?;
        let (group, kind) = (&section.0, section.1.as_str());
        match kind {
            "vars" => {
                let (key, value) = line
                    .split_once('=')
                    .ok_or_else(|| input(file, number, format!("`{line}`: expected key=value")))?;
                let value = ini_words(value.trim()).map_err(|e| input(file, number, e))?;
                tree.group(group)
                    .vars
                    .insert(key.trim().to_string(), value.join(" "));
            }
            "children" => tree.group(group).children.push(words[0].clone()),
            _ => {
                let host = words[0].clone();
                if host.contains('[') {
                    return Err(input(
                        file,
                        number,
                        format!("`{host}`: host ranges are not supported; list each host"),
                    ));
                }
                let mut vars = BTreeMap::new();
                for word in &words[1..] {
                    let (key, value) = word.split_once('=').ok_or_else(|| {
                        input(
                            file,
                            number,
                            format!("`{word}`: expected key=value after the host"),
                        )
                    })?;
                    vars.insert(key.to_string(), value.to_string());
                }
                tree.host(&host).extend(vars);
                tree.group(group).hosts.push(host);
            }
        }
    }
    Ok(tree)
}

/// Splits an INI line into words as Ansible's shlex does: spaces separate,
/// quotes group (and go).
fn ini_words(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("`{line}`: a quote is not closed"));
    }
    if started {
        words.push(word);
    }
    if words.is_empty() {
        return Err(format!("`{line}`: nothing in it"));
    }
    Ok(words)
}

/// A dynamic inventory's `--list` JSON.
pub fn from_json(file: &Path, text: &str) -> Result<Tree> {
    let document: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| input(file, e.line(), format!("dynamic inventory JSON: {e}")))?;
    let Some(top) = document.as_object() else {
        return Err(input(
            file,
            0,
            "dynamic inventory JSON: not an object".into(),
        ));
    };
    let mut tree = Tree::default();
    let text_of = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (name, body) in top {
        if name == "_meta" {
            let hostvars = body.get("hostvars").and_then(|h| h.as_object());
            for (host, vars) in hostvars.into_iter().flatten() {
                let vars = vars.as_object().into_iter().flatten();
                let vars: BTreeMap<String, String> =
                    vars.map(|(k, v)| (k.clone(), text_of(v))).collect();
                tree.host(host).extend(vars);
            }
            continue;
        }
        tree.group(name);
        let (hosts, children, vars) = match body {
            serde_json::Value::Array(hosts) => (Some(hosts), None, None),
            serde_json::Value::Object(group) => (
                group.get("hosts").and_then(|h| h.as_array()),
                group.get("children").and_then(|c| c.as_array()),
                group.get("vars").and_then(|v| v.as_object()),
            ),
            _ => (None, None, None),
        };
        for host in hosts.into_iter().flatten() {
            let host = text_of(host);
            tree.host(&host);
            tree.group(name).hosts.push(host);
        }
        for child in children.into_iter().flatten() {
            tree.group(name).children.push(text_of(child));
        }
        for (key, value) in vars.into_iter().flatten() {
            tree.group(name).vars.insert(key.clone(), text_of(value));
        }
    }
    Ok(tree)
}

/// Connection variables and what becomes of them.
const REFUSED: &[(&str, &str)] = &[
    ("ansible_password", "dockhand logs in with keys only"),
    ("ansible_ssh_pass", "dockhand logs in with keys only"),
    ("ansible_ssh_password", "dockhand logs in with keys only"),
    (
        "ansible_become_password",
        "a sudo password does not belong in an inventory: give it with -K, --become-password-file or DOCKHAND_BECOME_PASSWORD",
    ),
    (
        "ansible_become_pass",
        "a sudo password does not belong in an inventory: give it with -K, --become-password-file or DOCKHAND_BECOME_PASSWORD",
    ),
    (
        "ansible_ssh_extra_args",
        "only a ProxyJump is understood, in ansible_ssh_common_args",
    ),
    (
        "ansible_ssh_args",
        "only a ProxyJump is understood, in ansible_ssh_common_args",
    ),
    ("ansible_sftp_extra_args", "dockhand does not use sftp"),
    ("ansible_scp_extra_args", "dockhand does not use scp"),
    ("ansible_become_method", "dockhand becomes root with sudo"),
    ("ansible_become_exe", "dockhand becomes root with sudo"),
    (
        "ansible_become_flags",
        "dockhand chooses sudo's flags itself",
    ),
    ("ansible_ssh_executable", "dockhand has its own SSH client"),
];

impl Tree {
    /// The hosts, resolved: their groups (every group above the ones that
    /// list them), their settings and their variables.
    pub fn resolve(&self, file: &Path, home: Option<&Path>) -> Result<Inventory> {
        let depth = self.depths();
        // Which groups list each host, from one pass over the groups (not
        // every group asked about every host: quadratic at thousands), and
        // the groups above a set of them, once per distinct set.
        let mut listing: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for (group, entry) in &self.groups {
            for host in &entry.hosts {
                listing
                    .entry(host.as_str())
                    .or_default()
                    .insert(group.as_str());
            }
        }
        let mut above: HashMap<Vec<&str>, BTreeSet<&str>> = HashMap::new();
        let mut hosts = Vec::new();
        for (name, own) in &self.hosts {
            let direct = listing.remove(name.as_str()).unwrap_or_default();
            let key: Vec<&str> = direct.iter().copied().collect();
            let all_groups = above
                .entry(key)
                .or_insert_with(|| self.groups_above(direct))
                .clone();
            let mut groups: Vec<&str> = all_groups.iter().copied().collect();
            groups.sort_by_key(|g| (depth.get(*g).copied().unwrap_or(1), g.to_string()));
            let mut vars: BTreeMap<String, String> = BTreeMap::new();
            for group in &groups {
                if let Some(group) = self.groups.get(*group) {
                    vars.extend(group.vars.clone());
                }
            }
            vars.extend(own.clone());
            let fail = |message: String| input(file, 0, format!("host `{name}`: {message}"));
            let (address, ssh) = connection(&vars, home).map_err(fail)?;
            let address = address.unwrap_or_else(|| name.clone());
            super::fields::check_host_address(&address)
                .map_err(|e| input(file, 0, format!("host `{name}`: ansible_host {e}")))?;
            let template_vars: BTreeMap<String, String> = vars
                .into_iter()
                .filter(|(k, _)| !k.starts_with("ansible_"))
                .collect();
            hosts.push(Host {
                name: name.clone(),
                address,
                groups: all_groups
                    .into_iter()
                    .filter(|g| *g != "all")
                    .map(str::to_string)
                    .collect(),
                ssh,
                tls: TlsNames::default(),
                vars: template_vars,
            });
        }
        Ok(Inventory { hosts })
    }

    /// Every group that holds a host listed by `direct`: those, the groups
    /// above them through their children, and `all`.
    fn groups_above<'a>(&'a self, direct: BTreeSet<&'a str>) -> BTreeSet<&'a str> {
        let mut holding = direct;
        loop {
            let parents: Vec<&str> = self
                .groups
                .iter()
                .filter(|(name, g)| {
                    !holding.contains(name.as_str())
                        && g.children.iter().any(|c| holding.contains(c.as_str()))
                })
                .map(|(name, _)| name.as_str())
                .collect();
            if parents.is_empty() {
                break;
            }
            holding.extend(parents);
        }
        holding.insert("all");
        holding
    }

    /// Each group's depth below `all` (Ansible's order of precedence).
    fn depths(&self) -> BTreeMap<&str, usize> {
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        depth.insert("all", 0);
        let mut changed = true;
        while changed {
            changed = false;
            for (name, group) in &self.groups {
                let own = depth.get(name.as_str()).copied().unwrap_or(1);
                for child in &group.children {
                    let wanted = own + 1;
                    if depth.get(child.as_str()).is_none_or(|d| *d < wanted) && wanted < 64 {
                        depth.insert(child, wanted);
                        changed = true;
                    }
                }
            }
        }
        depth
    }
}

/// A host's address and SSH settings from its `ansible_*` variables.
fn connection(
    vars: &BTreeMap<String, String>,
    home: Option<&Path>,
) -> std::result::Result<(Option<String>, SshSettings), String> {
    let mut ssh = SshSettings::default();
    let mut address = None;
    for (key, value) in vars.iter().filter(|(k, _)| k.starts_with("ansible_")) {
        if value.contains("{{") || value.contains("{%") {
            return Err(format!(
                "{key}: a Jinja template (`{value}`) is not evaluated by dockhand; give the value itself"
            ));
        }
        if let Some((_, why)) = REFUSED.iter().find(|(k, _)| k == key) {
            return Err(format!("{key}: not supported ({why})"));
        }
        let bool_of = |v: &str| match v.to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" | "on" => Ok(true),
            "no" | "false" | "0" | "off" => Ok(false),
            _ => Err(format!("{key}: `{v}` is not a boolean")),
        };
        match key.as_str() {
            "ansible_host" | "ansible_ssh_host" => address = Some(value.clone()),
            "ansible_port" | "ansible_ssh_port" => {
                ssh.port = Some(
                    value
                        .parse()
                        .map_err(|_| format!("{key}: `{value}` is not a port"))?,
                );
            }
            "ansible_user" | "ansible_ssh_user" => ssh.user = Some(value.clone()),
            "ansible_ssh_private_key_file" | "ansible_private_key_file" => {
                ssh.identity_file = Some(expand_home(&PathBuf::from(value), home));
            }
            "ansible_become" => ssh.become_root = Some(bool_of(value)?),
            "ansible_become_user" if value == "root" => {}
            "ansible_become_user" => {
                return Err(format!("{key}: dockhand becomes root only, not `{value}`"));
            }
            "ansible_connection" if value == "ssh" || value == "smart" || value == "paramiko" => {}
            "ansible_connection" => {
                return Err(format!(
                    "{key}: dockhand connects over SSH only, not `{value}`"
                ));
            }
            "ansible_ssh_common_args" => ssh.jump = Some(jump_of(value)?),
            "ansible_python_interpreter" | "ansible_shell_type" | "ansible_shell_executable" => {}
            _ if key.starts_with("ansible_ssh_") || key.starts_with("ansible_become") => {
                return Err(format!(
                    "{key}: a connection setting dockhand cannot honour"
                ));
            }
            _ => {}
        }
    }
    Ok((address, ssh))
}

/// The jump hosts of `-J a,b` or `-o ProxyJump=a,b`; anything else in the
/// common arguments (a ProxyCommand above all) is refused.
fn jump_of(args: &str) -> std::result::Result<String, String> {
    let words = ini_words(args).map_err(|e| format!("ansible_ssh_common_args: {e}"))?;
    let mut jump = None;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let value = match word.as_str() {
            "-J" => words.next().cloned(),
            "-o" => match words.next().and_then(|o| o.split_once('=')) {
                Some((key, value)) if key.eq_ignore_ascii_case("ProxyJump") => {
                    Some(value.to_string())
                }
                Some((key, _)) => {
                    return Err(format!(
                        "ansible_ssh_common_args: `-o {key}` is not supported (only a ProxyJump is)"
                    ));
                }
                None => None,
            },
            other => {
                return Err(format!(
                    "ansible_ssh_common_args: `{other}` is not supported (only -J or -o ProxyJump=)"
                ));
            }
        };
        jump = Some(value.ok_or("ansible_ssh_common_args: a jump host is missing")?);
    }
    jump.ok_or_else(|| "ansible_ssh_common_args: no ProxyJump in it".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory> {
        Inventory::parse(Path::new("inv"), text, Some(Path::new("/home/u")))
    }

    /// The same fleet in the three forms: two web hosts (one on a port of
    /// its own), a db host through a bastion, nested groups, variables at
    /// every level.
    const YAML: &str = "all:
  vars:
    greeting: hello
    ansible_user: admin
  children:
    prod:
      vars:
        tier: prod
      children:
        web:
          hosts:
            web1:
              ansible_host: 192.0.2.11
            web2:
              ansible_host: 192.0.2.12
              ansible_port: 2222
          vars:
            tier: web
            ansible_ssh_private_key_file: ~/.ssh/web
        db:
          hosts:
            db1:
              ansible_host: db1.example.test
              ansible_become: yes
              ansible_ssh_common_args: '-o ProxyJump=jump@bastion:22'
";

    const INI: &str = "# the fleet
[web]
web1 ansible_host=192.0.2.11
web2 ansible_host=192.0.2.12 ansible_port=2222

[db]
db1 ansible_host=db1.example.test ansible_become=yes ansible_ssh_common_args='-o ProxyJump=jump@bastion:22'

[prod:children]
web
db

[web:vars]
tier=web
ansible_ssh_private_key_file=~/.ssh/web

[prod:vars]
tier=prod

[all:vars]
greeting=hello
ansible_user=admin
";

    const JSON: &str = r#"{
  "all": {"children": ["prod"], "vars": {"greeting": "hello", "ansible_user": "admin"}},
  "prod": {"children": ["web", "db"], "vars": {"tier": "prod"}},
  "web": {"hosts": ["web1", "web2"], "vars": {"tier": "web", "ansible_ssh_private_key_file": "~/.ssh/web"}},
  "db": ["db1"],
  "_meta": {"hostvars": {
    "web1": {"ansible_host": "192.0.2.11"},
    "web2": {"ansible_host": "192.0.2.12", "ansible_port": 2222},
    "db1": {"ansible_host": "db1.example.test", "ansible_become": true,
            "ansible_ssh_common_args": "-J jump@bastion:22"}
  }}
}"#;

    #[test]
    fn yaml_ini_and_dynamic_json_say_the_same_fleet() {
        for (form, text) in [("yaml", YAML), ("ini", INI), ("json", JSON)] {
            let inventory = parse(text).unwrap_or_else(|e| panic!("{form}: {e}"));
            let host = |name: &str| {
                inventory
                    .hosts
                    .iter()
                    .find(|h| h.name == name)
                    .unwrap_or_else(|| panic!("{form}: no {name}"))
            };
            let web2 = host("web2");
            assert_eq!(
                (web2.address.as_str(), web2.port(), web2.user()),
                ("192.0.2.12", 2222, "admin"),
                "{form}"
            );
            assert_eq!(
                web2.ssh.identity_file.as_deref(),
                Some(Path::new("/home/u/.ssh/web")),
                "{form}"
            );
            // A child group's variable beats its parent's; all's reach all.
            assert_eq!(web2.vars["tier"], "web", "{form}");
            assert_eq!(web2.vars["greeting"], "hello", "{form}");
            assert!(!web2.vars.contains_key("ansible_port"), "{form}");
            assert_eq!(web2.groups, ["prod", "web"], "{form}");
            let db1 = host("db1");
            assert_eq!(db1.address, "db1.example.test", "{form}");
            assert_eq!(db1.ssh.become_root, Some(true), "{form}");
            assert_eq!(db1.ssh.jump.as_deref(), Some("jump@bastion:22"), "{form}");
            assert_eq!(db1.vars["tier"], "prod", "{form}");
            assert_eq!(db1.groups, ["db", "prod"], "{form}");
            assert_eq!(host("web1").port(), 22, "{form}");
        }
        // --limit takes Ansible's groups.
        let inventory = parse(INI).unwrap();
        let limited = crate::core::input::limit::select(&inventory.hosts, "web").unwrap();
        let names: Vec<&str> = limited.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["web1", "web2"]);
    }

    /// What dockhand cannot honour is an error naming the host and the
    /// variable, never dropped.
    #[test]
    fn what_dockhand_cannot_honour_is_named() {
        let cases = [
            (
                "h ansible_password=secret",
                "host `h`: ansible_password: not supported (dockhand logs in with keys only)",
            ),
            (
                "h ansible_become_pass=x",
                "host `h`: ansible_become_pass: not supported",
            ),
            (
                "h ansible_ssh_common_args='-o ProxyCommand=nc %h %p'",
                "host `h`: ansible_ssh_common_args: `-o ProxyCommand` is not supported",
            ),
            (
                "h ansible_host='{{ lookup(\"env\", \"X\") }}'",
                "host `h`: ansible_host: a Jinja template",
            ),
            (
                "h ansible_connection=winrm",
                "host `h`: ansible_connection: dockhand connects over SSH only",
            ),
            (
                "h ansible_become_user=postgres",
                "host `h`: ansible_become_user: dockhand becomes root only",
            ),
            (
                "h ansible_port=many",
                "host `h`: ansible_port: `many` is not a port",
            ),
            (
                "h ansible_host='x$(touch /tmp/x)'",
                "host `h`: ansible_host",
            ),
            (
                "web[01:03] ansible_user=a",
                "inv:1:1: `web[01:03]`: host ranges are not supported",
            ),
            (
                "[web]\nh 'open",
                "inv:2:1: `h 'open`: a quote is not closed",
            ),
        ];
        for (text, wanted) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(wanted), "{text}: {err}");
        }
    }

    #[test]
    fn dockhand_s_own_inventory_is_still_its_own() {
        let inventory =
            parse("hosts:\n  a: { address: 192.0.2.1 }\ngroups:\n  web: { hosts: [a] }\n").unwrap();
        assert_eq!(inventory.hosts[0].groups, ["web"]);
        assert!(!is_ansible_yaml(
            &serde_yaml::from_str("hosts:\n  a:\n").unwrap()
        ));
        assert!(is_ansible_yaml(&serde_yaml::from_str(YAML).unwrap()));
    }
}
