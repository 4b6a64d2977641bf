//! What a host's dockerd already runs and stores, and what a daemon change
//! would do to it. A host in use is the most common host a user brings:
//! a restart without live-restore stops its containers, and a new data
//! root (`userns-remap`, `data-root`, `storage-driver`) hides every
//! container, image and volume it has. Pure: the engine gathers the
//! daemon's own answers (`docker info`, `docker inspect`), this reads them.

use serde::Serialize;
use serde_json::{Map, Value};

/// The socket a container must never be given (the seed guides: "never
/// expose the Docker socket to containers").
const DOCKER_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/docker.sock"];

/// What the running daemon reports of itself and holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Workload {
    /// `DockerRootDir`: where this daemon keeps its state now (with
    /// userns-remap, a `UID.GID` directory below the configured root).
    pub root_dir: String,
    pub storage_driver: String,
    pub live_restore: bool,
    /// Whether user namespace remapping is in effect (`name=userns`).
    pub userns: bool,
    pub images: u64,
    /// None when the host could not count them.
    pub volumes: Option<u64>,
    pub containers: Vec<Container>,
}

/// One container, as `docker inspect` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub pid: u64,
    pub started_at: String,
    /// `no`, `always`, `unless-stopped`, `on-failure`.
    pub restart_policy: String,
    /// Whether the daemon's socket is mounted into it.
    pub mounts_docker_socket: bool,
}

impl Workload {
    /// Reads `docker info --format '{{json .}}'` (or the API's /info).
    pub fn from_info(json: &str) -> Result<Workload, String> {
        let info: Map<String, Value> =
            serde_json::from_str(json).map_err(|e| format!("docker info: {e}"))?;
        let text = |key: &str| info.get(key).and_then(Value::as_str).unwrap_or("");
        if text("DockerRootDir").is_empty() {
            return Err("docker info: no DockerRootDir".into());
        }
        Ok(Workload {
            root_dir: text("DockerRootDir").to_string(),
            storage_driver: text("Driver").to_string(),
            live_restore: info
                .get("LiveRestoreEnabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            userns: info
                .get("SecurityOptions")
                .and_then(Value::as_array)
                .is_some_and(|options| {
                    options
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|o| o == "name=userns")
                }),
            images: info.get("Images").and_then(Value::as_u64).unwrap_or(0),
            volumes: None,
            containers: Vec::new(),
        })
    }

    pub fn running(&self) -> impl Iterator<Item = &Container> {
        self.containers.iter().filter(|c| c.running)
    }

    /// True when the daemon holds anything a user would miss.
    pub fn holds_anything(&self) -> bool {
        !self.containers.is_empty() || self.images > 0 || self.volumes.unwrap_or(0) > 0
    }

    /// "3 containers (2 running), 5 images and 2 volumes".
    pub fn describe(&self) -> String {
        let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let containers = self.containers.len() as u64;
        let running = self.running().count();
        let mut parts = vec![format!(
            "{} ({running} running)",
            plural(containers, "container")
        )];
        parts.push(plural(self.images, "image"));
        if let Some(volumes) = self.volumes {
            parts.push(plural(volumes, "volume"));
        }
        let last = parts.pop().unwrap_or_default();
        if parts.is_empty() {
            last
        } else {
            format!("{} and {last}", parts.join(", "))
        }
    }
}

impl Container {
    /// Reads one line of `docker inspect --format '{{json .}}'`.
    pub fn from_inspect(json: &str) -> Result<Container, String> {
        let value: Map<String, Value> =
            serde_json::from_str(json).map_err(|e| format!("docker inspect: {e}"))?;
        let id = value.get("Id").and_then(Value::as_str).unwrap_or("");
        if id.is_empty() {
            return Err("docker inspect: a container without an Id".into());
        }
        let state = value.get("State").and_then(Value::as_object);
        let state_field = |key: &str| state.and_then(|s| s.get(key));
        let mounts_docker_socket =
            value
                .get("Mounts")
                .and_then(Value::as_array)
                .is_some_and(|mounts| {
                    mounts.iter().any(|m| {
                        m.get("Source")
                            .and_then(Value::as_str)
                            .is_some_and(|source| DOCKER_SOCKETS.contains(&source))
                    })
                });
        Ok(Container {
            id: id.to_string(),
            name: value
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string(),
            running: state_field("Running")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            pid: state_field("Pid").and_then(Value::as_u64).unwrap_or(0),
            started_at: state_field("StartedAt")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            restart_policy: value
                .get("HostConfig")
                .and_then(|h| h.get("RestartPolicy"))
                .and_then(|r| r.get("Name"))
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
                .unwrap_or("no")
                .to_string(),
            mounts_docker_socket,
        })
    }

    /// The name a user knows it by, or its short id.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.id[..self.id.len().min(12)]
        } else {
            &self.name
        }
    }
}

/// The settings of a daemon.json that decide where dockerd keeps its
/// state: a change to any of them moves the daemon to another directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    userns_remap: Option<String>,
    data_root: Option<String>,
    storage_driver: Option<String>,
}

impl Placement {
    fn of(document: &Map<String, Value>) -> Placement {
        let text = |key: &str| {
            document
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Placement {
            userns_remap: text("userns-remap"),
            // `graph` is the old name of `data-root`.
            data_root: text("data-root")
                .or_else(|| text("graph"))
                .map(|r| r.trim_end_matches('/').to_string()),
            storage_driver: text("storage-driver"),
        }
    }
}

/// Why the daemon.json change moves dockerd to another data root, in
/// words, or None when it stays where it is. `before` is the host's file
/// (None: no file), `after` the one it will have.
pub fn data_root_move(
    before: Option<&Map<String, Value>>,
    after: &Map<String, Value>,
    workload: Option<&Workload>,
) -> Option<String> {
    let empty = Map::new();
    let (old, new) = (
        Placement::of(before.unwrap_or(&empty)),
        Placement::of(after),
    );
    if old == new {
        return None;
    }
    let configured_root = new
        .data_root
        .clone()
        .unwrap_or_else(|| "/var/lib/docker".to_string());
    let mut reasons = Vec::new();
    if old.userns_remap != new.userns_remap {
        reasons.push(match &new.userns_remap {
            Some(user) => format!(
                "userns-remap: {user} moves the daemon to {configured_root}/UID.GID (the remapped root's own directory)"
            ),
            None => format!("userns-remap off moves the daemon back to {configured_root}"),
        });
    }
    if old.data_root != new.data_root {
        reasons.push(format!(
            "data-root: {configured_root} moves the daemon there"
        ));
    }
    if old.storage_driver != new.storage_driver {
        reasons.push(format!(
            "storage-driver: {} keeps images and containers apart from those of {}",
            new.storage_driver
                .as_deref()
                .unwrap_or("(dockerd's choice)"),
            old.storage_driver
                .as_deref()
                .or(workload.map(|w| w.storage_driver.as_str()))
                .unwrap_or("the current driver")
        ));
    }
    Some(reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn info_from_the_cli_and_the_api_reads_alike() {
        // `docker info --format '{{json .}}'` of dockerd 20.10 (trimmed).
        let info = r#"{"ID":"X","Containers":3,"ContainersRunning":2,"Images":5,"Driver":"vfs","DockerRootDir":"/var/lib/docker","LiveRestoreEnabled":false,"SecurityOptions":["name=seccomp,profile=default"],"ClientInfo":{"Debug":false}}"#;
        let workload = Workload::from_info(info).unwrap();
        assert_eq!(workload.root_dir, "/var/lib/docker");
        assert_eq!(workload.storage_driver, "vfs");
        assert!(!workload.live_restore && !workload.userns);
        assert_eq!(workload.images, 5);
        let remapped = r#"{"DockerRootDir":"/var/lib/docker/100000.100000","LiveRestoreEnabled":true,"SecurityOptions":["name=seccomp,profile=builtin","name=userns"]}"#;
        let workload = Workload::from_info(remapped).unwrap();
        assert!(workload.userns && workload.live_restore);
        for bad in ["", "null", "[]", "{}", "{\"DockerRootDir\":7}", "{"] {
            assert!(Workload::from_info(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn containers_are_read_from_inspect_lines() {
        let line = r#"{"Id":"0123456789abcdef0123","Name":"/web","State":{"Status":"running","Running":true,"Pid":4242,"StartedAt":"2026-11-30T13:00:00.1Z"},"HostConfig":{"RestartPolicy":{"Name":"always","MaximumRetryCount":0}},"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock","Destination":"/var/run/docker.sock"}]}"#;
        let web = Container::from_inspect(line).unwrap();
        assert_eq!(
            (
                web.name.as_str(),
                web.running,
                web.pid,
                web.restart_policy.as_str()
            ),
            ("web", true, 4242, "always")
        );
        assert!(web.mounts_docker_socket);
        let bare = Container::from_inspect(
            r#"{"Id":"abcdef0123456789","State":{},"HostConfig":{"RestartPolicy":{"Name":""}}}"#,
        )
        .unwrap();
        assert_eq!(
            (bare.label(), bare.restart_policy.as_str()),
            ("abcdef012345", "no")
        );
        assert!(!bare.running && !bare.mounts_docker_socket);
        for bad in ["", "{}", "[1]", "{\"Id\":\"\"}", "{\"Id\":3}", "\u{0}"] {
            assert!(Container::from_inspect(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn counts_read_as_a_sentence() {
        let mut workload = Workload {
            images: 5,
            volumes: Some(2),
            ..Workload::default()
        };
        for running in [true, true, false] {
            workload.containers.push(Container {
                id: "x".repeat(64),
                running,
                ..Container::default()
            });
        }
        assert_eq!(
            workload.describe(),
            "3 containers (2 running), 5 images and 2 volumes"
        );
        assert!(workload.holds_anything());
        let one = Workload {
            images: 1,
            ..Workload::default()
        };
        assert_eq!(one.describe(), "0 containers (0 running) and 1 image");
        assert!(!Workload::default().holds_anything());
    }

    #[test]
    fn only_a_change_of_placement_moves_the_daemon() {
        let cases: &[(Option<&str>, &str, Option<&str>)] = &[
            (None, r#"{"icc":false}"#, None),
            (Some(r#"{"userns-remap":""}"#), r#"{"icc":false}"#, None),
            (
                None,
                r#"{"userns-remap":"default"}"#,
                Some("userns-remap: default moves the daemon to /var/lib/docker/UID.GID"),
            ),
            (
                Some(r#"{"userns-remap":"default"}"#),
                r#"{}"#,
                Some("userns-remap off moves the daemon back to /var/lib/docker"),
            ),
            (
                Some(r#"{"userns-remap":"default"}"#),
                r#"{"userns-remap":"default","icc":true}"#,
                None,
            ),
            (
                Some(r#"{"graph":"/srv/docker/"}"#),
                r#"{"data-root":"/srv/docker"}"#,
                None,
            ),
            (
                None,
                r#"{"data-root":"/srv/docker"}"#,
                Some("data-root: /srv/docker moves the daemon there"),
            ),
            (
                None,
                r#"{"storage-driver":"overlay2"}"#,
                Some(
                    "storage-driver: overlay2 keeps images and containers apart from those of vfs",
                ),
            ),
        ];
        let workload = Workload {
            storage_driver: "vfs".into(),
            ..Workload::default()
        };
        for (before, after, expected) in cases {
            let before = before.map(doc);
            let found = data_root_move(before.as_ref(), &doc(after), Some(&workload));
            match expected {
                None => assert_eq!(found, None, "{before:?} -> {after}"),
                Some(needle) => assert!(
                    found.as_deref().is_some_and(|f| f.contains(needle)),
                    "{before:?} -> {after}: {found:?}"
                ),
            }
        }
    }
}
