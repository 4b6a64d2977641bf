//! Every parser of bytes from a host, fuzzed with property tests: whatever
//! a host sends, each gives a value or an error, never a panic. Inputs are
//! both arbitrary and built from each format's own pieces (tags, keys,
//! quotes, escapes, `$VARS`, chunk sizes), so the parsers are reached past
//! their first check. Each property runs a fixed number of cases (`CASES`)
//! with proptest's own seed per run; `scripts/test` runs them in CI.
//!
//! TLS answers are rustls's to parse (fuzzed upstream); what dockhand
//! reads of them is the HTTP answer, fuzzed here.

use std::collections::BTreeSet;

use proptest::prelude::*;

use crate::core::audit;
use crate::core::roles::docker::unit::{self, ServiceSettings, UnitFile};
use crate::core::roles::docker::workload::{Container, Workload};
use crate::core::roles::docker::{daemon_json, flags, override_conf};
use crate::core::state::{ActualState, Facts};
use crate::engine::gather;

/// Cases per property: enough to reach every branch of these small
/// formats, small enough for CI (the whole file runs in seconds).
const CASES: u32 = 4000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text made of a format's own pieces and of anything at all.
fn text_of(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(pieces).prop_map(str::to_string),
        1 => any::<String>(),
        1 => "[ -~]{0,12}",
        1 => proptest::sample::select(&["\n", "\r\n", "\0", "é", "\u{feff}", " ", "\t"][..])
            .prop_map(str::to_string),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

const GATHER: &[&str] = &[
    "@stat\n",
    "@sha256\n",
    "@content\n",
    "@blob\n",
    "@facts\n",
    "@sshd\n",
    "@sshd_status 0\n",
    "@sshd_status 255\n",
    "@unreadable /etc/x\n",
    "regular file|644|root|root|2|/etc/docker/daemon.json\n",
    "directory|755|root|root|4096|/etc/docker\n",
    "symbolic link|777|root|root|9|/etc/l\n",
    "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  /etc/docker/daemon.json\n",
    "/etc/docker/daemon.json\n",
    "e30=\n",
    "os debian 12\n",
    "dockerd /usr/sbin/dockerd\n",
    "exec_start /usr/sbin/dockerd -H fd:// $DOCKER_OPTS\n",
    "docker_unit_file W1NlcnZpY2VdCg== /lib/systemd/system/docker.service\n",
    "docker_env_file RE9DS0VSX09QVFM9LWUK /etc/default/docker\n",
    "docker_env_file = /etc/default/docker\n",
    "docker_drop_in /etc/systemd/system/docker.service.d/x.conf\n",
    "docker_active active\n",
    "ssh_unit ssh.service\n",
    "ssh_kex mlkem768x25519-sha256 curve25519-sha256\n",
    "openssh_version OpenSSH_10.6p1\n",
    "openssh_version OpenSSH_\n",
    "dockerd_package 5:27.3.1-1~debian.12~bookworm\n",
    "dockerd_validate yes\n",
    "pending_handler restart-docker\n",
    "default_root_containers 3\n",
    "docker_holds_nothing\n",
    "docker_info {\"DockerRootDir\":\"/var/lib/docker\",\"Images\":1}\n",
    "docker_container {\"Id\":\"0123456789abcdef\",\"Name\":\"/w\",\"State\":{\"Running\":true}}\n",
    "docker_volumes 2\n",
    "docker_unknown no CLI\n",
    "armed_switch dockhand-sshd-revert-x\n",
    "leftover /etc/docker/.daemon.json.dockhand-backup\n",
    "Port 22\n",
    "KexAlgorithms a,b\n",
    "|",
    "  ",
];

const UNIT: &[&str] = &[
    "[Service]\n",
    "[Unit]\n",
    "ExecStart=",
    "ExecStart=-",
    "ExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS\n",
    "ExecStart=@/usr/bin/dockerd dockerd ${OPTS}\n",
    "Environment=",
    "Environment=\"A=b c\" D=e\n",
    "EnvironmentFile=-/etc/default/docker\n",
    "EnvironmentFile=/etc/x\n",
    "\\\n",
    "\"",
    "'",
    "\\",
    "$",
    "${",
    "}",
    "$DOCKER_OPTS",
    "${DOCKER_OPTS}",
    " --tlsverify",
    " -H tcp://0.0.0.0:2375",
    " --config-file=/etc/docker/daemon.json",
    " -é",
    "#",
    ";",
    "=",
];

const ENV: &[&str] = &[
    "DOCKER_OPTS=",
    "DOCKER_OPTS=\"--dns 8.8.8.8 -H tcp://0.0.0.0:2375\"\n",
    "OPTS='-H unix:// --tls'\n",
    "export X=1\n",
    "\\\n",
    "\"",
    "'",
    "#",
    "=",
    "\n",
    "-é",
    "tcp://user:pass@host:1",
];

const FLAGS: &[&str] = &[
    "-H",
    "--host",
    "--host=tcp://0.0.0.0:2376",
    "tcp://0.0.0.0:2375",
    "--tlsverify",
    "--tlsverify=false",
    "--config-file",
    "-D",
    "-é",
    "--",
    "-",
    "--dns",
    "192.0.2.9",
    "-Htcp://x",
    "--data-root=/srv",
    "-g",
    "--log-opt",
    "max-size=10m",
    "=",
    "",
];

const HTTP: &[&str] = &[
    "HTTP/1.1 200 OK\r\n",
    "HTTP/1.0 404 Not Found\r\n",
    "HTTP/1.1 ",
    "Content-Length: 2\r\n",
    "Content-Length: 18446744073709551615\r\n",
    "Transfer-Encoding: chunked\r\n",
    "\r\n",
    "ffffffffffffffff\r\n",
    "2\r\n",
    "0\r\n\r\n",
    "{}",
    "{\"Version\":\"28.5\"}",
    "{\"LiveRestoreEnabled\":true,\"SecurityOptions\":[\"name=userns\"]}",
    "{\"ServerVersion\":",
    "\r",
    "\n",
];

const JSON: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "1e999",
    "-0",
    "\"Id\"",
    "\"State\"",
    "\"Running\"",
    "\"Mounts\"",
    "\"Source\"",
    "\"HostConfig\"",
    "\"RestartPolicy\"",
    "\"DockerRootDir\"",
    "\"Images\"",
    "\"SecurityOptions\"",
    "\"name=userns\"",
    "\\u0000",
    "\\ud800",
];

const INVENTORY: &[&str] = &[
    "[web]\n",
    "[web:vars]\n",
    "[web:children]\n",
    "[all:vars]\n",
    "web1",
    " ansible_host=192.0.2.1",
    " ansible_port=22",
    " ansible_become=yes",
    " ansible_ssh_common_args='-J j'",
    "x=y\n",
    "'",
    "\"",
    "all:\n",
    "  children:\n",
    "    web:\n",
    "      hosts:\n",
    "        web1:\n",
    "  vars:\n",
    "          ansible_user: a\n",
    "{\"web\": [\"h\"], \"_meta\": {\"hostvars\": {}}}",
    "{",
    "}",
    "hosts:\n",
    "  a: { address: 192.0.2.1 }\n",
    "groups:\n",
    "\n",
    ":",
    "=",
    "[",
    "]",
];

const VERSIONS: &[&str] = &[
    "5:", "27", ".", "3", "~", "-", "+", "debian", "bookworm", "20.10", "a", ":", "",
];

/// Where each chunk ends when `len` bytes come cut after `cuts` bytes each
/// (a cut of 0: a chunk with nothing new), the last chunk the rest.
fn chunk_ends(len: usize, cuts: Vec<usize>) -> Vec<usize> {
    let mut at = 0;
    let mut ends = Vec::new();
    for cut in cuts {
        if at == len {
            break;
        }
        at = at.saturating_add(cut).min(len);
        ends.push(at);
    }
    if at < len || ends.is_empty() {
        ends.push(len);
    }
    ends
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_gather_parser_never_panics(text in text_of(GATHER)) {
        let _ = gather::parse(&text);
    }

    /// A held command's answer (the lock's settled line, the gather's
    /// answer, the line that says it holds), read chunk by chunk as the
    /// host sends it: whatever the chunks, the holding line is found where
    /// it first stands, or not at all, and nothing panics.
    #[test]
    fn the_held_answer_is_cut_at_its_holding_line(
        text in text_of(&["locked\n", "@holding\n", "@holding", "\n", "locked removed=/x\n", "@stat\n"]),
        cuts in proptest::collection::vec(0usize..64, 0..8),
    ) {
        let bytes = text.as_bytes();
        let mut received = Vec::new();
        let mut found = None;
        for to in chunk_ends(bytes.len(), cuts) {
            let seen = received.len();
            received.extend_from_slice(&bytes[seen..to]);
            if let Some(said) = crate::transport::holding(&received, seen) {
                found = Some(said.len());
                break;
            }
        }
        let first = text.split_inclusive('\n').scan(0, |start, line| {
            let here = *start;
            *start += line.len();
            Some((here, line))
        }).find(|(_, line)| *line == "@holding\n").map(|(here, _)| here);
        prop_assert_eq!(found, first);
    }

    /// A script's answer from the held lock's shell, read chunk by chunk
    /// as the host sends it: at every chunk, where it ends (on stdout, on
    /// stderr) is what a look at all the bytes so far finds, and nothing
    /// panics.
    #[test]
    fn a_held_script_s_answer_ends_where_a_whole_look_finds_it(
        text in text_of(&["@end-ab", "@end-a", " 0\n", " 255\n", " 256\n", " x\n", "\n", " ", "7", "@end-zz 1\n"]),
        cuts in proptest::collection::vec(0usize..64, 0..8),
    ) {
        use crate::transport::held::{stderr_end, stdout_end};
        let (bytes, end) = (text.as_bytes(), "@end-ab");
        let mut received = Vec::new();
        let (mut out_done, mut err_done) = (false, false);
        for to in chunk_ends(bytes.len(), cuts) {
            let seen = received.len();
            received.extend_from_slice(&bytes[seen..to]);
            if !out_done {
                let found = stdout_end(&received, end, seen);
                prop_assert_eq!(&found, &stdout_end(&received, end, 0));
                if let Ok(Some((at, status))) = found {
                    prop_assert!(received[at..].starts_with(end.as_bytes()) && status <= 255);
                }
                out_done = !matches!(found, Ok(None));
            }
            if !err_done {
                let found = stderr_end(&received, end, seen);
                prop_assert_eq!(found, stderr_end(&received, end, 0));
                err_done = found.is_some();
            }
        }
    }

    #[test]
    fn sshd_t_and_version_parsers_never_panic(text in text_of(GATHER)) {
        let _ = gather::sshd_settings(text.lines());
        for word in text.split_whitespace() {
            let _ = gather::openssh_version(word);
        }
    }

    #[test]
    fn dpkg_version_strings_never_panic(text in text_of(VERSIONS)) {
        let _ = gather::package_validates(&text);
    }

    /// Unit files, drop-ins and EnvironmentFiles as systemd's parser sees
    /// them, then the whole drop-in build and the audit over them.
    #[test]
    fn unit_drop_in_and_environment_text_never_panics(
        unit in text_of(UNIT),
        drop_in in text_of(UNIT),
        env in text_of(ENV),
    ) {
        let files = [
            UnitFile { path: "/lib/systemd/system/docker.service".into(), text: unit },
            UnitFile { path: "/etc/systemd/system/docker.service.d/10-x.conf".into(), text: drop_in },
        ];
        let settings = ServiceSettings::read(&files.iter().collect::<Vec<_>>());
        let variables = settings.variables(&|_| Some(env.clone()));
        let words = settings.exec_start.as_ref().map(|e| e.value.clone()).unwrap_or_default();
        let _ = unit::expand(&words, &variables);
        let _ = unit::parse_env_file(&env);
        let facts = Facts {
            dockerd_path: Some("/usr/sbin/dockerd".into()),
            docker_unit_files: files.to_vec(),
            docker_env_files: vec![UnitFile { path: "/etc/default/docker".into(), text: env.clone() }],
            ..Facts::default()
        };
        let keys: BTreeSet<String> = ["hosts", "tlsverify"].iter().map(|k| k.to_string()).collect();
        let _ = override_conf::build(&facts, &override_conf::Target {
            own_path: "/etc/systemd/system/docker.service.d/override.conf",
            daemon_json: "/etc/docker/daemon.json",
            daemon_keys: &keys,
            hosts: &["unix:///var/run/docker.sock".to_string()],
        });
        let _ = audit::audit(&ActualState { facts, ..ActualState::default() });
    }

    #[test]
    fn dockerd_flags_never_panic(
        args in proptest::collection::vec(
            prop_oneof![
                3 => proptest::sample::select(FLAGS).prop_map(str::to_string),
                1 => any::<String>(),
            ],
            0..16,
        )
    ) {
        for option in flags::options(&args) {
            let _ = (option.value(), option.text(), option.daemon_key());
        }
    }

    #[test]
    fn verify_s_http_answers_never_panic(text in text_of(HTTP), bytes in any::<Vec<u8>>()) {
        let _ = crate::verify::parse_http(text.as_bytes());
        let _ = crate::verify::parse_http(&bytes);
        // An answer before the last of a pipelined connection.
        let _ = crate::verify::parse_one(text.as_bytes(), false);
        let _ = crate::verify::parse_one(&bytes, false);
        // The daemon's answers as verification reads them.
        for body in [text.as_bytes(), &bytes] {
            if let Ok(info) = serde_json::from_slice::<crate::verify::Info>(body) {
                let _ = info.server_version();
                let daemon = serde_json::json!({"live-restore": true, "userns-remap": "default"});
                let _ = crate::verify::info_mismatches(&info, daemon.as_object().unwrap());
            }
        }
    }

    /// A host's certificate files, as a plan summarizes them when it is
    /// shown: a real certificate cut anywhere or with bytes put in, and
    /// anything after a certificate's header.
    #[test]
    fn a_host_s_certificate_file_never_panics_a_shown_plan(
        cut in any::<prop::sample::Index>(),
        put in any::<Vec<u8>>(),
        rest in any::<Vec<u8>>(),
    ) {
        static PEM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let pem = PEM.get_or_init(|| {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec!["web1".into()]).unwrap();
            params.self_signed(&key).unwrap().pem().into_bytes()
        });
        let at = cut.index(pem.len());
        let mut spliced = pem[..at].to_vec();
        spliced.extend_from_slice(&put);
        spliced.extend_from_slice(&pem[at..]);
        let mut headed = b"-----BEGIN CERTIFICATE-----\n".to_vec();
        headed.extend_from_slice(&rest);
        for bytes in [&pem[..at], &spliced[..], &headed[..]] {
            if let Some(pem) = crate::core::plan::CertPem::of(bytes) {
                let _ = pem.summary();
                let _ = serde_json::to_string(&pem);
            }
        }
    }

    /// Inventories are the user's, not a host's, but a panic on any of
    /// them would be as bad: Ansible's three forms and dockhand's own.
    #[test]
    fn inventories_never_panic(text in text_of(INVENTORY)) {
        let _ = crate::core::input::inventory::Inventory::parse(
            std::path::Path::new("inv"),
            &text,
            None,
        );
    }

    #[test]
    fn dockerd_s_json_never_panics(text in text_of(JSON)) {
        let _ = Workload::from_info(&text);
        let _ = Container::from_inspect(&text);
        let _ = daemon_json::parse(text.as_bytes());
    }
}
