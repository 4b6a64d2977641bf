//! `{{ name }}` substitution for generic files with `template: true`,
//! from the host's variables (inventory `vars`, plus `inventory_hostname`
//! and `address`). Deliberately small: no logic, no filters; an unknown
//! variable is an error, never an empty string.

use std::collections::BTreeMap;

/// A host's variables as its templates see them: `inventory_hostname` and
/// `address`, which every host has and which win, then the inventory's
/// `vars`. The two are read from the host rather than copied into its
/// `vars`: a fleet of 10,000 hosts without vars of its own then holds no
/// map per host (600 bytes each).
#[derive(Debug, Clone, Copy)]
pub struct HostVars<'a> {
    pub inventory_hostname: &'a str,
    pub address: &'a str,
    pub vars: &'a BTreeMap<String, String>,
}

impl<'a> HostVars<'a> {
    pub fn get(&self, name: &str) -> Option<&'a str> {
        match name {
            "inventory_hostname" => Some(self.inventory_hostname),
            "address" => Some(self.address),
            _ => self.vars.get(name).map(String::as_str),
        }
    }

    /// Every variable, as one map (for listings).
    pub fn all(&self) -> BTreeMap<String, String> {
        let mut all = self.vars.clone();
        all.insert("inventory_hostname".into(), self.inventory_hostname.into());
        all.insert("address".into(), self.address.into());
        all
    }
}

pub fn render(text: &str, vars: &HostVars<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("`{{` without a closing `}}`")?;
        let name = after[..end].trim();
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "`{{{{{}}}}}` is not a variable name",
                &after[..end]
            ));
        }
        let value = vars
            .get(name)
            .ok_or_else(|| format!("unknown variable `{name}`"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_refuses_unknowns() {
        // The host's own `address` and `inventory_hostname` win over vars
        // of those names.
        let own: BTreeMap<String, String> = [("site", "lab"), ("address", "elsewhere")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let vars = HostVars {
            inventory_hostname: "web1",
            address: "192.0.2.7",
            vars: &own,
        };
        let cases = [
            ("plain", Ok("plain".to_string())),
            (
                "{{site}}-{{ inventory_hostname }}\n",
                Ok("lab-web1\n".to_string()),
            ),
            ("{{address}}", Ok("192.0.2.7".to_string())),
            ("{{ nope }}", Err("unknown variable `nope`".to_string())),
            (
                "{{ a b }}",
                Err("`{{ a b }}` is not a variable name".to_string()),
            ),
            ("{{ site", Err("`{{` without a closing `}}`".to_string())),
        ];
        for (text, expected) in cases {
            assert_eq!(render(text, &vars), expected, "{text}");
        }
    }
}
