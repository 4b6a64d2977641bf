//! A simulated host's dockerd behind mutual TLS, for the simulation's
//! verification probes: the host's own server certificate, key and CA (the
//! files apply put on the simulated host), client certificates required,
//! and `/_ping`, `/info` and `/containers/json` answered with what a
//! Debian 12 dockerd says (`/info` from the host's daemon.json), at their
//! real sizes. The TLS handshakes are real: their cost on dockhand's side
//! is part of what the simulation measures.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// What the simulated daemon serves with: PEM files as the host has them.
pub struct Material {
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub daemon_json: Vec<u8>,
}

/// Serves one connection; any failure just closes it, as a daemon would.
pub async fn serve(stream: DuplexStream, material: Material) {
    let Some(config) = server_config(&material) else {
        return;
    };
    let mut tls = match tokio_rustls::TlsAcceptor::from(Arc::new(config))
        .accept(stream)
        .into_fallible()
        .await
    {
        Ok(tls) => tls,
        // Refused (a client without a certificate): the alert went out;
        // what the client sends meanwhile is read and dropped, as a TCP
        // peer's kernel would take it, until it goes.
        Err((_, mut stream)) => {
            let mut sink = [0u8; 4096];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
            return;
        }
    };
    // Requests one after the other on the connection (pipelined), each
    // answered in turn, until one asks to close.
    let mut pending = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
            match tls.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buffer[..n]),
            }
            if pending.len() > 64 << 10 {
                return;
            }
            continue;
        };
        let request = String::from_utf8_lossy(&pending[..end]).into_owned();
        pending.drain(..end + 4);
        let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
        let close = request.to_ascii_lowercase().contains("connection: close");
        let body = match path.as_str() {
            "/_ping" => "OK".to_string(),
            "/info" => info(&material.daemon_json),
            "/containers/json" => "[]".to_string(),
            _ => String::new(),
        };
        let status = if body.is_empty() {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if tls.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if close {
            let _ = tls.shutdown().await;
            return;
        }
    }
}

fn server_config(material: &Material) -> Option<rustls::ServerConfig> {
    // dockerd is Go: its TLS 1.3 server picks the suite itself, AES-128-GCM
    // with SHA-256 first on a machine with AES instructions, whatever the
    // client prefers (rustls would follow the client, to AES-256/SHA-384).
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let provider = Arc::new(provider);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&material.ca) {
        roots.add(cert.ok()?).ok()?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .ok()?;
    let chain = CertificateDer::pem_slice_iter(&material.cert)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_slice(&material.key).ok()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .ok()?;
    config.ignore_client_order = true;
    // No resumption (dockhand never resumes): no cache per connection.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Some(config)
}

/// `/info` as dockerd answers it with this daemon.json in effect: live
/// restore and user namespaces as set, the rest as Debian 12's (about
/// 3 KB, as the real answer).
fn info(daemon_json: &[u8]) -> String {
    let daemon: serde_json::Value = serde_json::from_slice(daemon_json).unwrap_or_default();
    let userns = daemon["userns-remap"]
        .as_str()
        .is_some_and(|s| !s.is_empty());
    let mut security = vec![
        "name=apparmor",
        "name=seccomp,profile=default",
        "name=cgroupns",
    ];
    if userns {
        security.push("name=userns");
    }
    let mut info: serde_json::Value = serde_json::from_str(INFO).expect("the template is JSON");
    info["LiveRestoreEnabled"] = serde_json::Value::Bool(daemon["live-restore"] == true);
    info["SecurityOptions"] = serde_json::json!(security);
    info["LoggingDriver"] = serde_json::json!(daemon["log-driver"].as_str().unwrap_or("json-file"));
    if userns {
        info["DockerRootDir"] = serde_json::json!("/var/lib/docker/165536.165536");
    }
    info.to_string()
}

/// Debian 12's dockerd's `/info`, less what daemon.json decides.
const INFO: &str = r#"{"ID":"6PZQ:7L5K:ZOTR:XW6C:QCJO:2ORV:BQIS:WM5W:T3ZN:3XSN:RJ5Q:VO7S","Containers":0,"ContainersRunning":0,"ContainersPaused":0,"ContainersStopped":0,"Images":0,"Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"],["Supports d_type","true"],["Native Overlay Diff","true"],["userxattr","false"]],"Plugins":{"Volume":["local"],"Network":["bridge","host","ipvlan","macvlan","null","overlay"],"Authorization":null,"Log":["awslogs","fluentd","gcplogs","gelf","journald","json-file","local","logentries","splunk","syslog"]},"MemoryLimit":true,"SwapLimit":true,"KernelMemoryTCP":true,"CpuCfsPeriod":true,"CpuCfsQuota":true,"CPUShares":true,"CPUSet":true,"PidsLimit":true,"IPv4Forwarding":true,"BridgeNfIptables":true,"BridgeNfIp6tables":true,"Debug":false,"NFd":27,"OomKillDisable":false,"NGoroutines":35,"SystemTime":"2026-12-01T00:00:00.000000000Z","LoggingDriver":"json-file","CgroupDriver":"systemd","CgroupVersion":"2","NEventsListener":0,"KernelVersion":"6.1.0-28-amd64","OperatingSystem":"Debian GNU/Linux 12 (bookworm)","OSVersion":"12","OSType":"linux","Architecture":"x86_64","IndexServerAddress":"https://index.docker.io/v1/","RegistryConfig":{"AllowNondistributableArtifactsCIDRs":[],"AllowNondistributableArtifactsHostnames":[],"InsecureRegistryCIDRs":["127.0.0.0/8"],"IndexConfigs":{"docker.io":{"Name":"docker.io","Mirrors":[],"Secure":true,"Official":true}},"Mirrors":[]},"NCPU":2,"MemTotal":25000000000,"GenericResources":null,"DockerRootDir":"/var/lib/docker","HttpProxy":"","HttpsProxy":"","NoProxy":"","Name":"host","Labels":[],"ExperimentalBuild":false,"ServerVersion":"20.10.24+dfsg1","Runtimes":{"io.containerd.runc.v2":{"path":"runc"},"io.containerd.runtime.v1.linux":{"path":"runc"},"runc":{"path":"runc"}},"DefaultRuntime":"runc","Swarm":{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,"Error":"","RemoteManagers":null},"LiveRestoreEnabled":false,"Isolation":"","InitBinary":"docker-init","ContainerdCommit":{"ID":"1.6.20~ds1-1+b1","Expected":"1.6.20~ds1-1+b1"},"RuncCommit":{"ID":"1.1.5+ds1-1+deb12u1","Expected":"1.1.5+ds1-1+deb12u1"},"InitCommit":{"ID":"","Expected":""},"SecurityOptions":[],"Warnings":null}"#;
