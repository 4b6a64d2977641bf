//! Staging: one command reads `D` and `F` records (and each file's bytes)
//! from stdin, creates the directories, and writes each changed file to a
//! fresh temp file in its target directory, created exclusively under
//! umask 077, so never readable by others. Content travels only on stdin.
//!
//! `dd iflag=fullblock` reads exactly a file's bytes, no more. The temp is
//! created with noclobber (`set -C`), so an existing name is never written
//! through; directory names come from parameter expansion, not `dirname`.
//! Sizes, owners, modes and the sync are done for all files at once at the
//! end (the `staged` function): a fork per file and step costs the host
//! half a millisecond, and a fleet on few cores pays it in wall time. Until
//! then a temp is root's and private, never more open than its target.

use std::collections::BTreeMap;

use super::{Kind, Layout, Script, Template, fill, header, quote, template};
use crate::core::file_name;
use crate::engine::work::{BACKUP_MARK, TEMP_MARK, Work};

static STAGE: Template = template!("stage.sh");

/// `staged` when nothing is staged.
const NOTHING_STAGED: &str = "staged() { :; }\n";

/// The checks once every record was read: one `stat` for every temp's
/// size (each is looked at again only when one is short, to name it), then
/// that each is still the regular file staging created, not a symlink put
/// in its place, before root hands it to its owner (`-h`: never through a
/// link; shell builtins: no fork); one `chown` per owner and one `chmod`
/// per mode; one `sync` makes them durable before the commit renames them.
const STAGED: &str = "staged() {
sizes=$(stat -c %s -- @TEMPS@ 2>/dev/null) || :
if [ \"$sizes\" != @SIZES@ ]; then
@SIZE_CHECKS@  fail 'short write'
fi
for t in @TEMPS@; do [ -f \"$t\" ] && [ ! -L \"$t\" ] || fail \"not a regular file: $t\"; done
@OWNERS@@MODES@sync -- @TEMPS@ 2>/dev/null || sync
}
";
const SIZE_CHECK: &str =
    "  [ \"$(stat -c %s -- @TEMP@ 2>/dev/null)\" = @SIZE@ ] || fail @MESSAGE@\n";
const OWNER: &str = "chown -h -- @OWNER@ @TEMPS@ || fail @MESSAGE@\n";
const MODE: &str = "chmod -- @MODE@ @TEMPS@ || fail @MESSAGE@\n";

/// The staging command; its input is [`stage_input`], then the text of
/// `then` (the commit), which a shell runs once every file is staged: one
/// round trip for both. `read` and `dd iflag=fullblock` take no byte past
/// the records, so the script that follows them reaches its shell whole;
/// it is run only once all of it came, to its last line ([`COMMIT_END`]),
/// so a connection lost in the middle of it runs none of it (a shell
/// reading a script as it comes would run the lines that came, the last
/// one perhaps cut short).
pub fn stage(work: &Work, layout: &Layout, then: Option<&Script>) -> Script {
    let then = then.map(|script| {
        debug_assert!(!script.text.contains(COMMIT_END));
        let mut text = script.text.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text + COMMIT_END + "\n"
    });
    let after = match &then {
        Some(text) => fill(
            RUN_WHOLE,
            &[("SIZE", &text.len().to_string()), ("END", COMMIT_END)],
        ),
        None => "exit 0".to_string(),
    };
    let text = header(Kind::Stage, layout, true)
        + &staged(work)
        + &fill(
            &STAGE,
            &[
                ("TEMP_MARK", TEMP_MARK),
                ("BACKUP_MARK", BACKUP_MARK),
                ("AFTER", &after),
            ],
        );
    let mut input = stage_input(work);
    if let Some(then) = then {
        input.extend_from_slice(then.as_bytes());
    }
    Script::with_input(Kind::Stage, text, input)
}

/// The last line of the commit's text as staging sends it.
const COMMIT_END: &str = "#@commit-end";

/// Reads the commit's SIZE bytes whole (`$(…)` would drop its last
/// newlines without the dot), runs it only if it ends with its last line,
/// and ends with the commit's status.
const RUN_WHOLE: &str = "c=$(dd bs=@SIZE@ count=1 iflag=fullblock status=none && echo .) || fail 'the commit could not be read: nothing was committed'
case ${c%.} in *'@END@'?) ;; *) fail 'the commit came cut short: nothing was committed' ;; esac
printf %s \"${c%.}\" | /bin/sh -s; exit";

/// A temp file staging writes: a file's own, or its check copy.
struct Temp<'a> {
    name: &'a str,
    size: usize,
    mode: u32,
    owner: String,
    /// The path it stands for, for messages.
    path: &'a str,
}

fn temps(work: &Work) -> Vec<Temp<'_>> {
    let mut temps = Vec::new();
    for file in &work.files {
        temps.push(Temp {
            name: &file.temp,
            size: file.content.len(),
            mode: file.mode,
            owner: format!("{}:{}", file.owner, file.group),
            path: &file.path,
        });
        if let Some((temp, copy)) = &file.check_copy {
            temps.push(Temp {
                name: temp,
                size: copy.len(),
                mode: 0o600,
                owner: "root:root".into(),
                path: &file.path,
            });
        }
    }
    temps
}

fn names(group: &[&Temp]) -> String {
    group
        .iter()
        .map(|t| quote(t.name))
        .collect::<Vec<_>>()
        .join(" ")
}

fn paths(group: &[&Temp]) -> String {
    let mut paths: Vec<&str> = group.iter().map(|t| t.path).collect();
    paths.sort_unstable();
    paths.dedup();
    paths.join(", ")
}

/// The shell function `staged`, run once every record was read.
fn staged(work: &Work) -> String {
    let temps = temps(work);
    if temps.is_empty() {
        return NOTHING_STAGED.into();
    }
    let every: Vec<&Temp> = temps.iter().collect();
    let sizes: Vec<String> = temps.iter().map(|t| t.size.to_string()).collect();
    let size_checks: String = temps
        .iter()
        .map(|t| {
            fill(
                SIZE_CHECK,
                &[
                    ("TEMP", &quote(t.name)),
                    ("SIZE", &t.size.to_string()),
                    ("MESSAGE", &quote(&format!("short write for {}", t.path))),
                ],
            )
        })
        .collect();
    let mut owners: BTreeMap<&str, Vec<&Temp>> = BTreeMap::new();
    let mut modes: BTreeMap<u32, Vec<&Temp>> = BTreeMap::new();
    for temp in &temps {
        owners.entry(&temp.owner).or_default().push(temp);
        modes.entry(temp.mode).or_default().push(temp);
    }
    let owners: String = owners
        .iter()
        .map(|(owner, group)| {
            fill(
                OWNER,
                &[
                    ("OWNER", &quote(owner)),
                    ("TEMPS", &names(group)),
                    ("MESSAGE", &quote(&format!("owner of {}", paths(group)))),
                ],
            )
        })
        .collect();
    let modes: String = modes
        .iter()
        .map(|(mode, group)| {
            fill(
                MODE,
                &[
                    ("MODE", &format!("{mode:04o}")),
                    ("TEMPS", &names(group)),
                    ("MESSAGE", &quote(&format!("mode of {}", paths(group)))),
                ],
            )
        })
        .collect();
    fill(
        STAGED,
        &[
            ("TEMPS", &names(&every)),
            ("SIZES", &quote(&sizes.join("\n"))),
            ("SIZE_CHECKS", &size_checks),
            ("OWNERS", &owners),
            ("MODES", &modes),
        ],
    )
}

/// The records for the staging command. For a file: `F size mode owner
/// group temp path`, then exactly `size` bytes (mode, owner and group are
/// for the record: `staged` sets them, it knows them too). Every field but
/// the last is one word (the temp is a name in the path's directory, made
/// of safe characters; owners and modes are checked at load), and the path
/// is the rest of the line, spaces and all. Data, not shell: nothing in it
/// is ever run.
pub fn stage_input(work: &Work) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, mode, owner, group) in &work.directories {
        out.extend(format!("D {mode:04o} {owner} {group} - - {path}\n").as_bytes());
    }
    for file in &work.files {
        // Directories of files that exist already get their stale temp
        // files cleared too.
        let dir = super::parent(&file.path);
        if !work.directories.iter().any(|(d, ..)| d == dir) {
            out.extend(format!("D - - - - - {dir}\n").as_bytes());
        }
    }
    for file in &work.files {
        out.extend(
            format!(
                "F {} {:04o} {} {} {} {}\n",
                file.content.len(),
                file.mode,
                file.owner,
                file.group,
                file_name(&file.temp),
                file.path
            )
            .as_bytes(),
        );
        out.extend(&file.content);
        if let Some((temp, copy)) = &file.check_copy {
            // Private to root: it is read by the check only.
            out.extend(
                format!(
                    "F {} 0600 root root {} {}\n",
                    copy.len(),
                    file_name(temp),
                    file.path
                )
                .as_bytes(),
            );
            out.extend(copy);
        }
    }
    out.extend(b"END - - - - - -\n");
    out
}
