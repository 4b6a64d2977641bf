//! End to end: lab hosts run containers, on every release the lab boots,
//! with no registry: a tiny image made on the host from its own files, and
//! named containers started with `--restart=always` through dockerd's API.
//! The ground the workload tests of a rollout stand on.

mod common;

use common::{Release, Scene, container_state, run_containers};

on_all_releases!(
    hosts_run_containers,
    "workload",
    a_bullseye_host_runs_containers,
    a_bookworm_host_runs_containers,
    a_trixie_host_runs_containers,
    a_forky_host_runs_containers
);

fn hosts_run_containers(name: &str, release: Release) {
    let scene = Scene::fresh(name, 1, release);
    let host = &format!("{name}-01");
    let ids = run_containers(&scene.lab, host, &["web", "worker"]);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.iter().all(|id| id.len() == 64), "{ids:?}");
    for container in ["web", "worker"] {
        let (running, pid, started) = container_state(&scene.lab, host, container);
        assert!(running, "{host}: {container} runs");
        // Its process is real: the host sees it, running the image's dash.
        let comm = scene.lab.ssh(host, &format!("cat /proc/{pid}/comm"));
        assert_eq!(comm.trim(), "dash", "{host}: {container} ({started})");
    }
    common::assert_success(&scene.lab.dockhand(&["lab", "down"]), "lab down");
}
