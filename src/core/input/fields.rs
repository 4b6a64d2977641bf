//! Checks of what a user writes, run while the YAML is read, so a bad
//! value is reported at its own line and column (serde_yaml knows where it
//! is reading). Used with `#[serde(deserialize_with = "…")]`; the values
//! stay plain strings and numbers for the rest of the code.
//!
//! Everything here ends up in root shell scripts or file names on hosts,
//! or in certificate validity arithmetic: what passes these checks is safe
//! to quote and to compute with.

use indexmap::IndexMap;
use serde::de::{Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A user or group on a host: a name as `useradd` takes it
/// (`[a-z_][a-z0-9_.-]*`, an optional final `$`, at most 32 characters),
/// or a numeric id.
pub fn account<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    let numeric = !text.is_empty() && text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit());
    let name = text.strip_suffix('$').unwrap_or(&text);
    let named = !name.is_empty()
        && text.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    if numeric || named {
        Ok(text)
    } else {
        Err(D::Error::custom(format!(
            "{:?} is not a user or group name (letters, digits, `_`, `.`, `-`, starting with a letter or `_`) nor a numeric id",
            text
        )))
    }
}

/// A path on a host: absolute, no `..`, no control characters (a newline
/// in a path would be a second record in a script's input).
pub fn host_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    check_host_path(&text).map_err(D::Error::custom)?;
    Ok(text)
}

pub fn check_host_path(text: &str) -> Result<(), String> {
    if !text.starts_with('/') || text.split('/').any(|c| c == "..") {
        return Err(format!("{text:?} must be an absolute path without `..`"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{text:?} has a control character in it"));
    }
    if text.len() > 1 && text.ends_with('/') {
        return Err(format!("{text:?} must not end with `/`"));
    }
    Ok(())
}

/// A number of days for a certificate (`field` names it in errors): 1 to
/// 36500 (a hundred years), or 0 to 36500 when `zero` is allowed; more
/// would overflow the arithmetic of validity dates.
fn days_in<'de, D: Deserializer<'de>>(
    deserializer: D,
    field: &str,
    zero: bool,
) -> Result<u32, D::Error> {
    let days = u64::deserialize(deserializer)
        .map_err(|_| D::Error::custom(format!("{field}: expected a whole number of days")))?;
    let least = u64::from(!zero);
    if (least..=36500).contains(&days) {
        Ok(days as u32)
    } else {
        Err(D::Error::custom(format!(
            "{field}: {days} days is out of range: {least} to 36500"
        )))
    }
}

pub fn ca_validity_days<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    days_in(deserializer, "ca_validity_days", false)
}

pub fn cert_validity_days<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    days_in(deserializer, "cert_validity_days", false)
}

pub fn renew_before_days<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    days_in(deserializer, "renew_before_days", true)
}

/// The sshd dead-man switch's delay: 10 seconds to an hour.
pub fn revert_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let seconds = u64::deserialize(deserializer)
        .map_err(|_| D::Error::custom("revert_after: expected a whole number of seconds"))?;
    if (10..=3600).contains(&seconds) {
        Ok(seconds as u32)
    } else {
        Err(D::Error::custom(format!(
            "revert_after: {seconds} seconds is out of range: 10 to 3600"
        )))
    }
}

/// Names of client certificates: they become file names and certificate
/// subjects (`[A-Za-z0-9._-]`, not starting with `.`), each once.
pub fn client_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    let mut seen = std::collections::BTreeSet::new();
    for name in &names {
        check_client_name(name).map_err(D::Error::custom)?;
        if !seen.insert(name) {
            return Err(D::Error::custom(format!("client `{name}` is listed twice")));
        }
    }
    Ok(names)
}

pub fn check_client_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a client name: letters, digits, `.`, `_`, `-`, not starting with `.`"
        ))
    }
}

/// A host's address: an IP address or a DNS name, nothing a shell or an
/// URL would read more into (it ends up in `DOCKER_HOST` lines users
/// `eval`, in certificates and in ssh targets).
pub fn host_address<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(deserializer)?;
    check_host_address(&text).map_err(D::Error::custom)?;
    Ok(Some(text))
}

pub fn check_host_address(text: &str) -> Result<(), String> {
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let name = text.strip_suffix('.').unwrap_or(text);
    if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "address {text:?} is neither an IP address nor a DNS name (letters, digits, '-' and '_' in dot-separated labels)"
        ))
    }
}

/// Where dockerd listens for TLS clients: `tcp://ADDRESS:PORT`.
pub fn listen<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    check_listen(&text).map_err(D::Error::custom)?;
    Ok(text)
}

pub fn check_listen(text: &str) -> Result<(), String> {
    let bad = || format!("{text:?}: expected tcp://ADDRESS:PORT, such as tcp://0.0.0.0:2376");
    let rest = text.strip_prefix("tcp://").ok_or_else(bad)?;
    let (address, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let address = address.trim_start_matches('[').trim_end_matches(']');
    let valid_name = !address.is_empty()
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    if port == 0 || !valid_name {
        return Err(bad());
    }
    Ok(())
}

/// A mapping whose keys must be unique: YAML readers keep the last of two
/// equal keys silently, which hides a host or a setting.
pub fn unique_keys<'de, D, V>(deserializer: D) -> Result<IndexMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Unique<V> {
        type Value = IndexMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = IndexMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(A::Error::custom(format!("`{key}` appears twice")));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(IndexMap::new())
        }
    }
    deserializer.deserialize_map(Unique(std::marker::PhantomData))
}

/// A list of entries with a `path` each, every path once.
pub fn unique_paths<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + HasPath,
{
    struct Paths<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de> + HasPath> Visitor<'de> for Paths<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<T> = Vec::new();
            while let Some(item) = seq.next_element::<T>()? {
                if out.iter().any(|o| o.path() == item.path()) {
                    return Err(A::Error::custom(format!(
                        "the path `{}` is listed twice",
                        item.path()
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(Paths(std::marker::PhantomData))
}

/// Entries of a playbook list that name a path on the host.
pub trait HasPath {
    fn path(&self) -> &str;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // read only by serde: the checks are the test
    struct Probe {
        #[serde(default, deserialize_with = "account")]
        owner: String,
        #[serde(default, deserialize_with = "host_path")]
        path: String,
        #[serde(default, deserialize_with = "cert_validity_days")]
        days: u32,
        #[serde(default, deserialize_with = "listen")]
        listen: String,
        #[serde(default, deserialize_with = "client_names")]
        clients: Vec<String>,
        #[serde(default, deserialize_with = "unique_keys")]
        hosts: IndexMap<String, u8>,
    }

    /// As the user sees it: `line:column: message`.
    fn probe(text: &str) -> Result<Probe, String> {
        serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            format!("{line}:{column}: {e}")
        })
    }

    #[test]
    fn good_values_pass() {
        for text in [
            "owner: root",
            "owner: \"1000\"",
            "owner: www-data",
            "owner: _apt",
            "owner: machine$",
            "path: /etc/a b/c.conf",
            "days: 36500",
            "listen: tcp://0.0.0.0:2376",
            "listen: tcp://[::]:2376",
            "listen: tcp://docker.example.invalid:2376",
            "clients: [admin, ci-bot, ops.team_1]",
            "hosts: {a: 1, b: 2}",
        ] {
            probe(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn bad_values_are_refused_where_they_are() {
        let cases = [
            (
                "owner: \"root; touch /tmp/x\"",
                "not a user or group name",
                1,
                1,
            ),
            ("owner: Root", "not a user or group name", 1, 1),
            ("path: etc/x", "absolute path", 1, 1),
            ("path: \"/etc/a\\nb\"", "control character", 1, 1),
            ("path: /etc/../x", "without `..`", 1, 1),
            ("days: 4000000000", "out of range", 1, 1),
            ("days: 0", "out of range", 1, 1),
            ("days: 4e9", "whole number", 1, 1),
            ("listen: garbage", "expected tcp://ADDRESS:PORT", 1, 1),
            (
                "listen: tcp://0.0.0.0:0",
                "expected tcp://ADDRESS:PORT",
                1,
                1,
            ),
            (
                "listen: \"tcp://a;b:2376\"",
                "expected tcp://ADDRESS:PORT",
                1,
                1,
            ),
            ("clients: [admin, admin]", "listed twice", 1, 1),
            ("clients: [\"../x\"]", "not a client name", 1, 1),
            ("hosts:\n  a: 1\n  a: 2\n", "`a` appears twice", 2, 3),
        ];
        for (text, needle, line, column) in cases {
            let err = probe(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
            // serde_yaml places a check's error at the mapping that holds
            // the value (and names the field's path in the message).
            assert!(
                err.starts_with(&format!("{line}:{column}: ")),
                "{text}: {err}"
            );
        }
    }
}

#[cfg(test)]
mod address_tests {
    use super::check_host_address;

    #[test]
    fn addresses_are_ip_addresses_or_dns_names() {
        for good in [
            "192.0.2.10",
            "2001:db8::1",
            "web1",
            "web-1.example.com",
            "web_1.internal",
            "example.com.",
            "198.18.0.11",
        ] {
            assert!(check_host_address(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "h$(touch /tmp/x)",
            "a b",
            "`id`",
            "-oProxyCommand=x",
            "a..b",
            "a;b",
            "x-",
            "tcp://h",
            "[::1]",
            &"a".repeat(64),
        ] {
            assert!(check_host_address(bad).is_err(), "{bad:?}");
        }
    }
}

/// Networks in CIDR form (`10.0.0.0/8`, `2001:db8::/32`) or single
/// addresses (a /32 or /128). A network with host bits set
/// (`10.0.0.1/8`) is refused: it almost always means a typo.
pub fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    let items = Vec::<String>::deserialize(deserializer)?;
    items
        .iter()
        .map(|item| network(item).map_err(serde::de::Error::custom))
        .collect()
}

fn network(text: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(address) = text.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(address));
    }
    let net: ipnet::IpNet = text
        .parse()
        .map_err(|_| format!("{text:?} is neither a network (10.0.0.0/8) nor an address"))?;
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Account names (`deploy`, `ci-runner`): as `useradd` takes them, so they
/// are safe as words in a script.
pub fn user_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    for name in &names {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        if !first_ok
            || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
        {
            return Err(serde::de::Error::custom(format!(
                "{name:?} is not an account name (a lower-case letter or _, then letters, digits, `_`, `.`, `-`)"
            )));
        }
    }
    Ok(names)
}
