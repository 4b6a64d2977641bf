//! The shell templates as they travel: without their comment lines and
//! blank lines. The `.sh` files beside this module explain themselves at
//! length (two fifths of the lock and the gather are comments); a host has
//! no use for that text, yet it went on every command line, through every
//! cipher and buffer of the SSH connection, into `ps`, and through the
//! host's shell's parser, on every run of every host.
//!
//! Only whole lines go, and only where the shell itself would read them
//! as nothing: a line that starts inside a quoted string or a
//! here-document stays as written, and so does everything after a line
//! this module does not follow (more than one here-document on a line).
//! `# shellcheck` directives stay, for the tests' `shellcheck` of every
//! rendered script. The tests check, with bash's own parser, that every
//! template means the same without its comments.

/// Where a line of the template starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum At {
    /// In plain shell: a comment line or a blank one may go.
    Code,
    /// Inside a quoted string opened on an earlier line (`'` or `"`).
    Quoted(char),
    /// After a line that ends in a backslash: the shell joins the two, so
    /// this one is part of that command, whatever it looks like.
    Continued,
    /// Inside a here-document: its body until the line that ends it (that
    /// word alone on a line; `<<-` lets tabs precede it).
    HereDocument { end: String, tabs: bool },
    /// After something this module does not follow: the rest is kept.
    Rest,
}

/// `template` without its comment lines and blank lines (see the module's
/// documentation); every other line byte for byte.
pub(super) fn without_comments(template: &str) -> String {
    let mut kept = String::with_capacity(template.len());
    let mut at = At::Code;
    for line in template.split_inclusive('\n') {
        let text = line.strip_suffix('\n').unwrap_or(line);
        at = match at {
            At::Code => {
                let start = text.trim_start_matches([' ', '\t']);
                if start.is_empty()
                    || (start.starts_with('#') && !start.starts_with("# shellcheck"))
                {
                    continue;
                }
                kept.push_str(line);
                after(text, None)
            }
            At::Quoted(quote) => {
                kept.push_str(line);
                after(text, Some(quote))
            }
            At::Continued => {
                kept.push_str(line);
                after(text, None)
            }
            At::HereDocument { end, tabs } => {
                kept.push_str(line);
                let last = if tabs {
                    text.trim_start_matches('\t')
                } else {
                    text
                };
                if last == end {
                    At::Code
                } else {
                    At::HereDocument { end, tabs }
                }
            }
            At::Rest => {
                kept.push_str(line);
                At::Rest
            }
        };
    }
    kept
}

/// Where the next line starts, once `text` (one line, read from inside
/// `quote` when given) is read: quotes, backslashes, a comment to the end
/// of the line, and a here-document's start.
fn after(text: &str, mut quote: Option<char>) -> At {
    let mut here_document: Option<At> = None;
    let mut chars = text.char_indices();
    let mut word_start = quote.is_none();
    let mut continued = false;
    while let Some((i, c)) = chars.next() {
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                }
            }
            Some(_) => match c {
                '\\' => {
                    chars.next();
                }
                '"' => quote = None,
                _ => {}
            },
            None => match c {
                '\\' => continued = chars.next().is_none(),
                '\'' | '"' => quote = Some(c),
                '#' if word_start => break,
                '<' if text[i..].starts_with("<<") && !text[i..].starts_with("<<<") => {
                    if here_document.is_some() {
                        return At::Rest;
                    }
                    chars.next();
                    let rest = &text[i + 2..];
                    let tabs = rest.starts_with('-');
                    let rest = rest.trim_start_matches('-').trim_start_matches([' ', '\t']);
                    here_document = Some(match delimiter(rest) {
                        Some(end) => At::HereDocument { end, tabs },
                        None => At::Rest,
                    });
                }
                _ => {}
            },
        }
        word_start = quote.is_none() && (c.is_whitespace() || ";&|()<>".contains(c));
    }
    match (quote, here_document) {
        // A here-document's body starts on the next line, after the
        // command's: a quote or a line left open there is not followed.
        (Some(_), Some(_)) => At::Rest,
        (None, Some(_)) if continued => At::Rest,
        (Some(quote), None) => At::Quoted(quote),
        (None, Some(here_document)) => here_document,
        (None, None) if continued => At::Continued,
        (None, None) => At::Code,
    }
}

/// The word that ends a here-document, from the text after `<<`: a plain
/// word, or one in single or double quotes. `None` for anything else
/// (an arithmetic shift, a word put together from parts).
fn delimiter(text: &str) -> Option<String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (word, after) = match text.chars().next()? {
        '0'..='9' => return None,
        q @ ('\'' | '"') => {
            let inner = &text[1..];
            let close = inner.find(q)?;
            (&inner[..close], &inner[close + 1..])
        }
        _ => {
            let end = text.find(|c: char| !plain(c)).unwrap_or(text.len());
            (&text[..end], &text[end..])
        }
    };
    let ends_word = after.is_empty() || after.starts_with([' ', '\t', ';', '&', '|', ')']);
    (!word.is_empty() && word.chars().all(plain) && ends_word).then(|| word.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::open_hole;
    use super::without_comments;

    #[test]
    fn comment_and_blank_lines_go_and_nothing_else() {
        let cases: &[(&str, &str, &str)] = &[
            ("a comment line", "# why\necho a\n", "echo a\n"),
            (
                "an indented one",
                "if x; then\n  # why\n  y\nfi\n",
                "if x; then\n  y\nfi\n",
            ),
            ("blank lines", "a\n\n  \nb\n", "a\nb\n"),
            ("a trailing comment stays", "a # why\nb\n", "a # why\nb\n"),
            (
                "a directive stays",
                "# shellcheck disable=SC2086 # words\nset -- $x\n",
                "# shellcheck disable=SC2086 # words\nset -- $x\n",
            ),
            ("no final newline", "# why\necho a", "echo a"),
            (
                "a single-quoted string over lines",
                "nl='\n# not a comment\n\n'\n# one\n",
                "nl='\n# not a comment\n\n'\n",
            ),
            (
                "a double-quoted one",
                "x=\"a\n# kept\n\"\n# gone\n",
                "x=\"a\n# kept\n\"\n",
            ),
            (
                "an escaped quote does not open one",
                "echo \\'\n# gone\n",
                "echo \\'\n",
            ),
            (
                "nor one inside the other",
                "echo \"it's\"\n# gone\necho '\"'\n# gone\n",
                "echo \"it's\"\necho '\"'\n",
            ),
            (
                "a quote in a comment opens none",
                "a # it's\n# gone\n",
                "a # it's\n",
            ),
            (
                "a hash inside a word is no comment",
                "echo ${#x} $# a#b '\n# kept\n'\n",
                "echo ${#x} $# a#b '\n# kept\n'\n",
            ),
            (
                "a here-document's body",
                "cat <<'END'\n# kept\n\nEND\n# gone\n",
                "cat <<'END'\n# kept\n\nEND\n",
            ),
            (
                "an unquoted delimiter",
                "cat <<END > f\n# kept\nEND\n# gone\n",
                "cat <<END > f\n# kept\nEND\n",
            ),
            (
                "<<- and its tabs",
                "cat <<-END\n# kept\n\tEND\n# gone\n",
                "cat <<-END\n# kept\n\tEND\n",
            ),
            (
                "a hole before the end",
                "cat <<'E'\n@BODY@E\n# kept: no end seen\n",
                "cat <<'E'\n@BODY@E\n# kept: no end seen\n",
            ),
            (
                "two here-documents on a line",
                "cat <<A <<B\nA\nB\n# kept\n",
                "cat <<A <<B\nA\nB\n# kept\n",
            ),
            (
                "a line joined to the one before stays",
                "a \\\n# kept\nb \\\n\n# gone\n",
                "a \\\n# kept\nb \\\n\n",
            ),
            (
                "an escaped backslash joins nothing",
                "a \\\\\n# gone\n",
                "a \\\\\n",
            ),
            ("nor one in a comment", "a # \\\n# gone\n", "a # \\\n"),
            (
                "a shift is not followed: the rest stays",
                "x=$((1 << 2))\n# kept\n",
                "x=$((1 << 2))\n# kept\n",
            ),
        ];
        for (name, template, expected) in cases {
            assert_eq!(without_comments(template), *expected, "{name}");
        }
    }
    /// bash reads every template as the same program without its comment
    /// lines as with them: `declare -f` prints a function as bash parsed
    /// it, comments left out and every string and here-document as it is.
    #[test]
    fn every_template_means_to_bash_what_it_meant_with_its_comments() {
        // Every `.sh` beside this module, so a new one is read too.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine/remote");
        let mut templates: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "sh"))
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        templates.sort();
        assert!(templates.len() >= 10, "{templates:?}");
        let parsed = |name: &str, text: &str| {
            let text = holes_filled(text);
            let program = format!("f() {{\n{text}\n}}\ndeclare -f f\n");
            let output = std::process::Command::new("bash")
                .args(["--norc", "--noprofile", "-c", &program])
                .output()
                .expect("bash");
            assert!(
                output.status.success(),
                "bash cannot read {name}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        };
        // What bash prints tells a line taken out of a string from a comment.
        let in_string = "nl='\n# a line of the string\n'\n";
        assert_ne!(
            parsed("a string", in_string),
            parsed("a string", "nl='\n'\n")
        );
        assert_eq!(
            parsed("a comment", "# a comment\nnl=1\n"),
            parsed("a comment", "nl=1\n")
        );
        for (name, template) in &templates {
            let stripped = without_comments(template);
            assert!(
                stripped.len() < template.len() || !template.contains("\n#"),
                "{name}"
            );
            assert_eq!(parsed(name, &stripped), parsed(name, template), "{name}");
        }
    }

    /// A template's holes ([`open_hole`]'s) as bash can read it: those
    /// that start a line (code, or a here-document's body before its end)
    /// filled with nothing, the others with a word.
    fn holes_filled(text: &str) -> String {
        let mut filled = String::new();
        for line in text.split_inclusive('\n') {
            let mut rest = line;
            let mut line_start = true;
            while let Some(name) = open_hole(rest) {
                // `name` is a slice of `rest`, after its opening `@`.
                let at = name.as_ptr() as usize - rest.as_ptr() as usize - 1;
                filled.push_str(&rest[..at]);
                line_start &= at == 0;
                if !line_start {
                    filled.push('x');
                }
                rest = &rest[at + name.len() + 2..];
            }
            filled.push_str(rest);
        }
        filled
    }
}
