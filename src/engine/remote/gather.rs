//! The gather: one script, sent on stdin, reports every managed path
//! (metadata, digest, and content unless secret) and the facts the roles
//! need, in the line format `engine::gather` parses. Secret files are only
//! ever digested on the host.
//!
//! The paths' part costs the same few forks however many paths are
//! managed: one `stat` for all of them, one `sha256sum` for the regular
//! files among them, and one `cat | base64` for the content of those that
//! are shown (neither secret nor above [`MAX_CONTENT_BYTES`]), split again
//! by the sizes `stat` gave; none of those three on a run where no regular
//! file changed, since the last apply or verify's fresh login kept what
//! they said under the files' identities. The loops that pick the files are shell
//! builtins: a fork per path costs the host about a millisecond, and a
//! fleet pays it on every run. `%n` comes last, so a `|` or a space in a
//! path stays in the name.
//!
//! What an interrupted run left is reported too (the lock of an apply
//! settles it): an sshd dead-man switch still armed, and backups and temp
//! files beside the managed files.
//!
//! What the host's programs said (`ssh -Q kex`, the docker package's
//! version, `dockerd --help`, `sshd -T`) is asked again only when a file
//! they read changed: an apply keeps the answers on the host under the
//! identity of those files (`stat`'s device, inode, size, mtime and
//! ctime), sshd's configuration followed through its `Include`s, which
//! costs one program's start instead of four (`host-facts.sh`).
//!
//! What dockerd holds is asked of dockerd itself (`docker info` and
//! `inspect`, or its API through python3, `docker.py`) only where one of
//! its data roots holds anything, or a data root is set elsewhere: asking
//! costs the host tens of milliseconds of CPU, and a fleet's no-op pays it
//! on every host. The look is globs and the shell's own `case` over the
//! lines of the files that may name a data root elsewhere.

use super::{Kind, Layout, Script, Template, fill, header, quote, template};

/// Content above this size is not sent (the digest still is).
pub const MAX_CONTENT_BYTES: u64 = 1 << 20;

static PATHS: Template = template!("gather-paths.sh");
static FACTS: Template = template!("gather-facts.sh");

/// The functions that ask the host's programs (`ssh -Q kex`, the docker
/// package's version, `sshd -T`) and keep their answers, shared by the
/// gather and verify's fresh login.
static HOST_FACTS: Template = template!("host-facts.sh");

/// [`HOST_FACTS`] for this layout.
pub(super) fn host_facts(layout: &Layout) -> String {
    fill(
        &HOST_FACTS,
        &[
            ("SSHD_DIR", &quote(super::parent(layout.sshd_config))),
            ("SSHD_CONFIG", &quote(layout.sshd_config)),
            ("FACTS", &quote(&layout.kept_facts())),
            ("FILES", &quote(&layout.kept_files())),
            ("STATE_DIR", &quote(layout.state_dir)),
            ("SYSTEMD_RUN", &quote(layout.systemd_run)),
            ("SYSTEMD_ETC", &quote(layout.systemd_etc)),
            ("MAX_CONTENT", &MAX_CONTENT_BYTES.to_string()),
        ],
    )
}

/// dockerd's answers through its API, for hosts without a docker CLI
/// (Debian 13's docker.io only recommends it): the same lines the CLI
/// branch prints. HTTP/1.0, so the body is never chunked.
const DOCKER_PY: &str = include_str!("docker.py");

const SET_DOCKER_PY: &str = "DOCKER_PY=@DOCKER_PY@\n";

/// In an apply's gather, which rides on the host lock: the state directory
/// and the lock lose group's and others' access where the paths' `stat`
/// found them open (the lock leaves it to the gather; see `lock`).
pub const PRIVATE_BY_GATHER: &str = "# the state directory is kept private here\n";

/// What an apply kept ([`Layout::kept_facts`]), and the files its key
/// names when it may still hold: the paths' `stat` takes their identity
/// too.
const KEPT: &str = "programs_on_path
kept_key=; kept_programs=; kept_patterns=; kept_answers=; kept_settings=; kept_units=; inputs=; key=; key_ready=; patterns=
kept_files_key=; kept_files_said=
# shellcheck source=/dev/null # what an apply kept (see keep_facts)
[ -f @FACTS@ ] && . @FACTS@
# shellcheck source=/dev/null # what the files said (see keep_files)
[ -f @FILES@ ] && . @FILES@
if [ -n \"$kept_key\" ] && [ \"$kept_programs\" = \"$ssh_bin|$sshd_bin|$dockerd_bin\" ]; then
  patterns=$kept_patterns; key_inputs
fi
";

/// The gather runs in a command substitution, and what it said is printed
/// in one go: every `printf` of the shell is a write of its own, and every
/// write to sshd's pipe became an SSH packet (sshd woke, encrypted and sent
/// it; dockhand received and decrypted it), about 80 a no-op. Into the
/// substitution's pipe they cost next to nothing. Its own stdin, its own
/// variables and positional parameters, and `set +u` (a lock's script is
/// strict): nothing it runs can eat the script that follows it.
const CAPTURE: &str = "gathered=$(exec </dev/null\nset +u\n";
const CAPTURED: &str = ")\nprintf '%s\\n' \"$gathered\"\n";

/// The managed paths' part of the gather: their `stat`, then the regular
/// files' digests and shown contents, kept where `remember` (an apply).
/// The paths go in sorted, so the gather and verify's fresh login (which
/// has them from the expanded playbook, in another order) take the same
/// key.
fn paths_part(paths: &[(String, bool)], state: &str, remember: bool) -> String {
    let mut paths = paths.to_vec();
    paths.sort();
    let quoted = |secret: Option<bool>| {
        paths
            .iter()
            .filter(|(_, s)| secret.is_none_or(|want| *s == want))
            .map(|(path, _)| quote(path))
            .collect::<Vec<_>>()
    };
    // An empty pattern list would be a syntax error: `''` names no
    // managed path (they are all absolute).
    let secrets = quoted(Some(true));
    let secrets = if secrets.is_empty() {
        "''".to_string()
    } else {
        secrets.join("|")
    };
    fill(
        &PATHS,
        &[
            ("STATE", state),
            ("PATHS", &quoted(None).join(" ")),
            ("SECRETS", &secrets),
            ("REMEMBER", if remember { "yes" } else { "no" }),
            ("MAX_CONTENT", &MAX_CONTENT_BYTES.to_string()),
        ],
    )
}

/// For verify's fresh login after a commit, as root: what the managed
/// files say now, kept for the next run and not printed (the login's
/// answer is `sshd -T`'s). In the login's own shell, not a substitution:
/// its `stat` takes the kept facts' key too (`$inputs` after `/`), as the
/// gather's does. Needs [`host_facts`] and `key_inputs` before it.
pub(super) fn keep_what_files_say(paths: &[(String, bool)]) -> String {
    if paths.is_empty() {
        return String::new();
    }
    format!(
        "{{ set +u; kept_files_key=\n{}set -u; }} >/dev/null\n",
        paths_part(paths, "", true)
    )
}

/// The directories of the managed paths, where an interrupted run leaves
/// its temps and backups: the gather reports them, the lock settles them.
pub fn managed_dirs(paths: &[(String, bool)]) -> Vec<String> {
    let mut dirs: Vec<String> = paths
        .iter()
        .map(|(path, _)| super::parent(path).to_string())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The gather for these paths (`true`: secret, never shown). Not strict:
/// a host's odd answer is reported, not a reason to stop. With `remember`
/// (an apply, holding the host's lock), what the host's programs can do is
/// kept on the host for the next run ([`Layout::kept_facts`]); a plan
/// only reads it, and writes nothing. With `fence` (a playbook that puts
/// one up, or an audit), the fence's rules as the kernel holds them.
pub fn gather(paths: &[(String, bool)], layout: &Layout, remember: bool, fence: bool) -> Script {
    let mut text = header(Kind::Gather, layout, false)
        + CAPTURE
        + &host_facts(layout)
        + &fill(
            KEPT,
            &[
                ("FACTS", &quote(&layout.kept_facts())),
                ("FILES", &quote(&layout.kept_files())),
            ],
        );
    if remember {
        text += PRIVATE_BY_GATHER;
        if paths.is_empty() {
            // No `stat` to look with: where the lock is (an apply's).
            text += &format!(
                "if [ -e {} ]; then {}; fi\n",
                quote(&layout.host_lock()),
                super::private(layout)
            );
        }
    }
    if !paths.is_empty() {
        let state = if remember {
            format!(
                "// {} {}",
                quote(layout.state_dir),
                quote(&layout.host_lock())
            )
        } else {
            String::new()
        };
        text += &paths_part(paths, &state, remember);
    }
    text += &fill(SET_DOCKER_PY, &[("DOCKER_PY", &quote(DOCKER_PY))]);
    let dirs: Vec<String> = managed_dirs(paths).iter().map(|d| quote(d)).collect();
    text += &fill(
        &FACTS,
        &[
            ("PENDING", &quote(&layout.pending_handlers())),
            ("FACTS", &quote(&layout.kept_facts())),
            ("REMEMBER", if remember { "yes" } else { "no" }),
            ("FENCE", if fence { "yes" } else { "no" }),
            ("TRANSIENT", &quote(super::TRANSIENT_UNITS)),
            ("CGROUPS", &quote(layout.cgroups)),
            ("DIRS", &dirs.join(" ")),
            ("LEFTOVERS", &super::restore::leftovers_in_d()),
            (
                "MAX_OUTPUT",
                &crate::transport::MAX_OUTPUT_BYTES.to_string(),
            ),
            ("MAX_CONTENT", &MAX_CONTENT_BYTES.to_string()),
        ],
    );
    text += CAPTURED;
    Script::plain(Kind::Gather, text)
}
