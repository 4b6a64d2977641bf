//! `{{ name }}` substitution for generic files with `template: true`,
//! from the host's variables (inventory `vars`, plus `inventory_hostname`
//! and `address`). Deliberately small: no logic, no filters; an unknown
//! variable is an error, never an empty string.

use std::collections::BTreeMap;

pub fn render(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
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
        let vars: BTreeMap<String, String> = [("site", "lab"), ("inventory_hostname", "web1")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let cases = [
            ("plain", Ok("plain".to_string())),
            (
                "{{site}}-{{ inventory_hostname }}\n",
                Ok("lab-web1\n".to_string()),
            ),
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
