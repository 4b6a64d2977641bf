//! Verification from the workstation, the way a user's docker client
//! sees the host: a mutual-TLS `GET /info` on the daemon's TCP port, the
//! server certificate checked against our CA and the host's name or
//! address (or, for the one dockhand pushed, pinned: see [`pin`]); and
//! proof that a client without a certificate is turned away. `/info` names
//! the daemon's version too: dockerd answers `GET /version` and `GET
//! /info` alike by running `runc --version` and `docker-init --version`,
//! so asking both would cost each host those two programs twice. (With
//! TLS 1.3 the server's refusal of a missing client certificate arrives
//! after the handshake, on the first read, so that is where it is looked
//! for.)
//!
//! The GETs of one check go on one connection, pipelined (HTTP/1.1, the
//! last asks to close): one TLS handshake and one round trip for all of
//! them. A fleet's client configurations are built once per run.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod pin;

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the probe needs: the CA, and the client certificate to present.
#[derive(Clone)]
pub struct TlsProbe {
    pub ca_pem: Vec<u8>,
    pub client_cert_pem: Vec<u8>,
    pub client_key_pem: Vec<u8>,
}

/// The client configurations of a run, with and without the client
/// certificate, built on first use (parsing the CA and the key once, not
/// once per host); a host's probes pin the server certificate pushed to it
/// ([`pin`]) on a copy.
#[derive(Default)]
pub struct Configs {
    with_cert: std::sync::OnceLock<Result<Built, String>>,
    without: std::sync::OnceLock<Result<Built, String>>,
}

/// A configuration, the verifier that checks servers in full, and the CAs
/// within their dates (a pinned certificate must be issued by one).
#[derive(Clone)]
struct Built {
    config: Arc<rustls::ClientConfig>,
    full: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    issuers: Arc<Vec<Vec<u8>>>,
}

impl Configs {
    fn get(
        &self,
        probe: &TlsProbe,
        with_client_cert: bool,
        pinned: Option<&pin::Pin>,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let cell = if with_client_cert {
            &self.with_cert
        } else {
            &self.without
        };
        let built = cell
            .get_or_init(|| config(probe, with_client_cert))
            .clone()?;
        let Some(pin) = pinned else {
            return Ok(built.config);
        };
        let mut config = (*built.config).clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(pin::Pinned {
                pin: pin.clone(),
                issuers: built.issuers,
                full: built.full,
            }));
        Ok(Arc::new(config))
    }
}

/// What the daemon answered.
#[derive(Debug, Clone)]
pub struct DaemonAnswer {
    pub info: Info,
    /// `GET /containers/json`: the running containers.
    pub containers: Value,
}

fn config(probe: &TlsProbe, with_client_cert: bool) -> Result<Built, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&probe.ca_pem) {
        let cert = cert.map_err(|e| format!("CA certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let full: Arc<dyn rustls::client::danger::ServerCertVerifier> =
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("CA certificate: {e}"))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(full.clone());
    let config = if with_client_cert {
        let chain = CertificateDer::pem_slice_iter(&probe.client_cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("client certificate: {e}"))?;
        // The key is parsed here and nowhere printed; errors name only the kind.
        let key = PrivateKeyDer::from_pem_slice(&probe.client_key_pem)
            .map_err(|_| "the client key cannot be read".to_string())?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client certificate: {e}"))?
    } else {
        builder.with_no_client_auth()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(Built {
        config: Arc::new(config),
        full,
        issuers: Arc::new(pin::current_issuers(&probe.ca_pem, now)),
    })
}

/// A stream being opened to the daemon's port.
pub type Dialed<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<Box<dyn crate::transport::Stream>, String>>
            + Send
            + 'a,
    >,
>;

/// How a probe reaches the daemon's port: a new stream each time it is
/// called (straight over TCP, or through the host's jump host).
pub type Dial<'f> = dyn Fn() -> Dialed<'f> + Sync + 'f;

/// A dialer that connects straight to `address`:`port` over TCP.
pub fn direct(address: String, port: u16) -> impl Fn() -> Dialed<'static> + Sync {
    move || {
        let address = address.clone();
        Box::pin(async move {
            TcpStream::connect((address.as_str(), port))
                .await
                .map(|tcp| Box::new(tcp) as Box<dyn crate::transport::Stream>)
                .map_err(|e| format!("connect to {address}:{port}: {e}"))
        })
    }
}

/// The most of one answer the probe reads (`/containers/json` of a host
/// with thousands of containers stays well below it).
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// HTTPS GETs on one connection, pipelined; returns each one's status and
/// body, in order.
async fn get<'f>(
    dial: &Dial<'f>,
    port: u16,
    server_name: &str,
    config: Arc<rustls::ClientConfig>,
    paths: &[&str],
) -> Result<Vec<(u16, Vec<u8>)>, String> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("{server_name:?}: {e}"))?;
    let address = server_name;
    let attempt = async {
        let tcp = dial().await?;
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| with_refusal(format!("TLS handshake: {e}"), &e))?;
        let mut request = String::new();
        for (at, path) in paths.iter().enumerate() {
            let last = at + 1 == paths.len();
            request += &format!(
                "GET {path} HTTP/1.1\r\nHost: {server_name}:{port}\r\nUser-Agent: dockhand\r\n{}\r\n",
                if last { "Connection: close\r\n" } else { "" }
            );
        }
        let path = paths.join(", ");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        // A daemon's answer is read up to a cap: one odd host must not grow
        // dockhand's memory (a byte past it means the answer is too big).
        let mut response = Vec::new();
        let mut limited = (&mut tls).take(MAX_ANSWER_BYTES + 1);
        let read = limited.read_to_end(&mut response).await;
        if response.len() as u64 > MAX_ANSWER_BYTES {
            return Err(format!(
                "GET {path}: the daemon sent more than {} MiB",
                MAX_ANSWER_BYTES >> 20
            ));
        }
        match read {
            Ok(_) => {}
            // Some servers close without close_notify; what came is whole
            // if the HTTP framing says so (checked below).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
            Err(e) => return Err(with_refusal(format!("read: {e}"), &e)),
        }
        let mut answers = Vec::with_capacity(paths.len());
        let mut rest = response.as_slice();
        for at in 0..paths.len() {
            let last = at + 1 == paths.len();
            let (answer, used) = parse_one(rest, last)?;
            answers.push(answer);
            rest = &rest[used..];
        }
        Ok(answers)
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .map_err(|_| {
            format!(
                "no answer from {address}:{port} within {}s",
                PROBE_TIMEOUT.as_secs()
            )
        })?
}

/// Marks an error as the server's refusal of our certificate (or of its
/// absence), which TLS says with an alert: `certificate_required` (TLS
/// 1.3, on the first read), `handshake_failure` or `bad_certificate` (TLS
/// 1.2, in the handshake). Anything else (a reset, garbage, a plain HTTP
/// answer) is not a refusal.
const REFUSED: &str = "refused by TLS alert: ";

fn with_refusal(message: String, error: &std::io::Error) -> String {
    use rustls::AlertDescription as A;
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(
            alert @ (A::CertificateRequired | A::HandshakeFailure | A::BadCertificate),
        )) => format!("{REFUSED}{alert:?} ({message})"),
        _ => message,
    }
}

/// Status and body of an HTTP/1.1 response (plain or chunked) that ends
/// where the connection ended.
pub fn parse_http(response: &[u8]) -> Result<(u16, Vec<u8>), String> {
    parse_one(response, true).map(|(answer, _)| answer)
}

/// The first response of `response` (framed by its Content-Length or
/// chunks; the last of a connection may run to its end): its status and
/// body, and the bytes it took.
pub fn parse_one(response: &[u8], last: bool) -> Result<((u16, Vec<u8>), usize), String> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer is not HTTP (no header end)")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let body = &response[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("the answer has no HTTP status")?;
    let mut chunked = false;
    let mut length: Option<usize> = None;
    for line in lines {
        let line = line.to_ascii_lowercase();
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            chunked = true;
        } else if let Some(value) = line.strip_prefix("content-length:") {
            length = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad Content-Length {:?}", value.trim()))?,
            );
        }
    }
    if !chunked {
        return match length {
            Some(length) if body.len() >= length => {
                Ok(((status, body[..length].to_vec()), split + 4 + length))
            }
            Some(_) => Err("the answer is cut short (Content-Length)".into()),
            None if last => Ok(((status, body.to_vec()), response.len())),
            None => Err("an answer before the last has no length".into()),
        };
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line cut short")?;
        let size_text = String::from_utf8_lossy(&rest[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[end + 2..];
        if size == 0 {
            // The last chunk, and its (empty) trailer.
            let trailer = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(rest.len(), |p| p + 2);
            let used = response.len() - rest.len() + trailer;
            return Ok(((status, out), used));
        }
        // A size near usize::MAX from a hostile daemon must not overflow.
        if rest.len() < size.saturating_add(2) {
            return Err("chunk cut short".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The containers of `must_run` that are not among the running ones of
/// `GET /containers/json` (`name (short id)` each).
pub fn not_running(
    running: &Value,
    must_run: &[crate::core::roles::docker::workload::Container],
) -> Vec<String> {
    let ids: Vec<&str> = running
        .as_array()
        .map(|list| list.iter().filter_map(|c| c["Id"].as_str()).collect())
        .unwrap_or_default();
    must_run
        .iter()
        .filter(|c| !ids.contains(&c.id.as_str()))
        .map(|c| format!("{} ({})", c.label(), &c.id[..c.id.len().min(12)]))
        .collect()
}

/// What verification reads of `GET /info`: the rest of the answer is
/// skipped as it is parsed, not built into a tree (it is read from every
/// host on every run, for fleets of thousands). Each field takes any JSON,
/// so a daemon that answers an odd type gets the check's own words ("live
/// restore is not enabled"), not a parse error.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Info {
    #[serde(rename = "ServerVersion", default)]
    server_version: Value,
    #[serde(rename = "LiveRestoreEnabled", default)]
    live_restore_enabled: Value,
    #[serde(rename = "SecurityOptions", default)]
    security_options: Value,
}

impl Info {
    pub fn server_version(&self) -> &str {
        self.server_version.as_str().unwrap_or("?")
    }
}

/// `GET /info` with the client certificate, and `GET /containers/json`
/// when `containers` is asked for, pipelined on one connection (a no-op
/// does not pay for what it never checks).
pub async fn query_daemon<'f>(
    dial: &Dial<'f>,
    port: u16,
    server_name: &str,
    probe: &TlsProbe,
    configs: &Configs,
    pinned: Option<&pin::Pin>,
    containers: bool,
) -> Result<DaemonAnswer, String> {
    let config = configs.get(probe, true, pinned)?;
    let paths: &[&str] = if containers {
        &["/info", "/containers/json"]
    } else {
        &["/info"]
    };
    let answers = get(dial, port, server_name, config, paths).await?;
    let mut bodies = Vec::with_capacity(answers.len());
    for (path, (status, body)) in paths.iter().zip(answers) {
        if status != 200 {
            return Err(format!("GET {path}: HTTP {status}"));
        }
        bodies.push(body);
    }
    fn parse<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, String> {
        serde_json::from_slice(body).map_err(|e| format!("GET {path}: not JSON: {e}"))
    }
    // `get` answers once per path, in order.
    Ok(DaemonAnswer {
        info: parse(paths[0], &bodies[0])?,
        containers: match bodies.get(1) {
            Some(body) => parse(paths[1], body)?,
            None => Value::Array(Vec::new()),
        },
    })
}

/// Ok when a client without a certificate is refused by the TLS layer
/// (an alert at the handshake or on the first read); Err for anything else:
/// an answer of any kind, a reset, garbage.
pub async fn refuses_anonymous_clients<'f>(
    dial: &Dial<'f>,
    port: u16,
    server_name: &str,
    probe: &TlsProbe,
    configs: &Configs,
    pinned: Option<&pin::Pin>,
) -> Result<String, String> {
    let config = configs.get(probe, false, pinned)?;
    // `/_ping`: should a daemon answer, it does so without running anything.
    match get(dial, port, server_name, config, &["/_ping"]).await {
        Ok(answers) => Err(format!(
            "a client without a certificate got an answer (HTTP {})",
            answers.first().map_or(0, |a| a.0)
        )),
        Err(refusal) if refusal.starts_with(REFUSED) => Ok(refusal),
        Err(other) => Err(format!(
            "a client without a certificate was not refused by TLS: {other}"
        )),
    }
}

/// What /info must show for the daemon settings the playbook asked for.
pub fn info_mismatches(info: &Info, daemon: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    if daemon.get("live-restore") == Some(&Value::Bool(true))
        && info.live_restore_enabled != Value::Bool(true)
    {
        problems.push("live restore is not enabled".to_string());
    }
    if daemon
        .get("userns-remap")
        .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        let has_userns = info.security_options.as_array().is_some_and(|options| {
            options
                .iter()
                .any(|o| o.as_str().is_some_and(|s| s.contains("name=userns")))
        });
        if !has_userns {
            problems.push("user namespaces (userns-remap) are not in effect".to_string());
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A CA, a server certificate for 127.0.0.1 and a client certificate.
    fn pki() -> (TlsProbe, Vec<u8>, Vec<u8>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let issue = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
        };
        let (server_cert, server_key) = issue(vec!["127.0.0.1".into()]);
        let (client_cert, client_key) = issue(vec!["client".into()]);
        let probe = TlsProbe {
            ca_pem: ca.pem().into_bytes(),
            client_cert_pem: client_cert,
            client_key_pem: client_key,
        };
        (probe, server_cert, server_key)
    }

    /// A local TLS server for one connection: with `require_client_cert`,
    /// as dockerd with tlsverify; without, it answers `reply` to anyone.
    async fn serve(
        probe: &TlsProbe,
        cert: &[u8],
        key: &[u8],
        require_client_cert: bool,
        reply: &'static [u8],
    ) -> u16 {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&probe.ca_pem) {
                roots.add(c.unwrap()).unwrap();
            }
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap(),
            )
        } else {
            builder.with_no_client_auth()
        };
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let config = builder
            .with_single_cert(chain, PrivateKeyDer::from_pem_slice(key).unwrap())
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let mut buffer = [0u8; 1024];
                        let _ = tls.read(&mut buffer).await;
                        let _ = tls.write_all(reply).await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        port
    }

    #[test]
    fn pipelined_answers_are_split_by_their_own_framing() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"b\r\n3\r\n\":2\r\n1\r\n}\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\nrest";
        let ((status, body), used) = parse_one(two, false).unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"{\"a\":1}"[..]));
        let ((status, body), more) = parse_one(&two[used..], false).unwrap();
        assert_eq!((status, body.as_slice()), (404, &b"{\"b\":2}"[..]));
        let ((status, body), _) = parse_one(&two[used + more..], true).unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"rest"[..]));
        // Before the last, an answer must say where it ends.
        assert!(parse_one(b"HTTP/1.1 200 OK\r\n\r\n{}", false).is_err());
        assert!(parse_one(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}", true).is_err());
    }

    #[tokio::test]
    async fn only_a_tls_refusal_counts_as_refusing_anonymous_clients() {
        let (probe, cert, key) = pki();
        // Both answers of the pipelined GETs: a framed one, then a chunked
        // one (Go chunks what it does not buffer whole).
        let verified = serve(
            &probe,
            &cert,
            &key,
            true,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        )
        .await;
        let configs = Configs::default();
        let dial = direct("127.0.0.1".into(), verified);
        let refusal =
            refuses_anonymous_clients(&dial, verified, "127.0.0.1", &probe, &configs, None)
                .await
                .unwrap();
        assert!(refusal.contains("CertificateRequired"), "{refusal}");
        // The same server answers a client with a certificate.
        assert!(
            query_daemon(&dial, verified, "127.0.0.1", &probe, &configs, None, false)
                .await
                .is_ok()
        );
        // An answer past the cap is an error, read no further.
        let flood: &'static [u8] = Box::leak(
            [
                &b"HTTP/1.1 200 OK\r\nContent-Length: 20000000\r\n\r\n"[..],
                &vec![b' '; 20_000_000],
            ]
            .concat()
            .into_boxed_slice(),
        );
        let flooding = serve(&probe, &cert, &key, true, flood).await;
        let dial = direct("127.0.0.1".into(), flooding);
        let err = query_daemon(&dial, flooding, "127.0.0.1", &probe, &configs, None, false)
            .await
            .unwrap_err();
        assert!(err.contains("sent more than 16 MiB"), "{err}");

        for (reply, needle) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"[..],
                "got an answer (HTTP 200)",
            ),
            (&b"HTTP/1.0 200"[..], "was not refused by TLS"),
        ] {
            let open = serve(&probe, &cert, &key, false, reply).await;
            let dial = direct("127.0.0.1".into(), open);
            let err = refuses_anonymous_clients(&dial, open, "127.0.0.1", &probe, &configs, None)
                .await
                .unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[tokio::test]
    async fn a_pinned_certificate_skips_the_chain_and_any_other_is_checked_in_full() {
        let (probe, cert, key) = pki();
        let (_, other_cert, _) = pki();
        let (_, stranger_cert, stranger_key) = pki();
        let reply: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let configs = Configs::default();
        let query = |port: u16, pinned: Option<Vec<u8>>| {
            let (probe, configs) = (&probe, &configs);
            async move {
                let pinned = pinned.map(|pem| pin::Pin::of_pem(&pem).unwrap());
                let dial = direct("127.0.0.1".into(), port);
                query_daemon(
                    &dial,
                    port,
                    "127.0.0.1",
                    probe,
                    configs,
                    pinned.as_ref(),
                    false,
                )
                .await
            }
        };
        // The pushed certificate, pinned; and pinned to another one, the
        // server's is checked against the CA, and passes.
        let ours = serve(&probe, &cert, &key, true, reply).await;
        query(ours, Some(cert.clone())).await.unwrap();
        query(ours, Some(other_cert.clone())).await.unwrap();
        // A certificate of another CA is refused unless it is the pinned
        // one (which dockhand's store checked before the run).
        let theirs = serve(&probe, &stranger_cert, &stranger_key, true, reply).await;
        let err = query(theirs, Some(other_cert)).await.unwrap_err();
        assert!(
            err.contains("TLS handshake") && err.contains("certificate"),
            "{err}"
        );
        let err = query(theirs, None).await.unwrap_err();
        assert!(err.contains("TLS handshake"), "{err}");
        query(theirs, Some(stranger_cert.clone())).await.unwrap();
        // The handshake's signature is checked even for the pinned
        // certificate: a server that shows it without its key fails.
        let (_, _, wrong_key) = pki();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth();
        let chain: Vec<_> = CertificateDer::pem_slice_iter(&cert)
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_slice(&wrong_key).unwrap();
        // rustls refuses a mismatched pair when it can tell; an impostor
        // can still sign with any key, so the client must check it.
        let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(
            rustls::sign::CertifiedKey::new(
                chain,
                rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).unwrap(),
            ),
        ));
        let config = Arc::new(config.with_cert_resolver(resolver));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let impostor = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tokio_rustls::TlsAcceptor::from(config.clone())
                    .accept(tcp)
                    .await;
            }
        });
        let err = query(impostor, Some(cert)).await.unwrap_err();
        assert!(err.contains("BadSignature"), "{err}");
    }

    #[test]
    fn a_pinned_certificate_still_needs_its_dates_and_a_ca_within_its_own() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::UnixTime;
        let (ours, _, _) = pki();
        let (theirs, their_cert, _) = pki();
        let full = Configs::default()
            .with_cert
            .get_or_init(|| config(&ours, true))
            .clone()
            .unwrap()
            .full;
        let pinned = pin::Pin::of_pem(&their_cert).unwrap();
        let certificate = pinned.certificate.clone();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let at = |seconds: u64| UnixTime::since_unix_epoch(Duration::from_secs(seconds));
        let verify = |issuers: Vec<Vec<u8>>, seconds: u64| {
            pin::Pinned {
                pin: pinned.clone(),
                issuers: Arc::new(issuers),
                full: full.clone(),
            }
            .verify_server_cert(&certificate, &[], &name, &[], at(seconds))
            .is_ok()
        };
        let current = pin::current_issuers(&theirs.ca_pem, now as i64);
        assert_eq!(current.len(), 1);
        // Pinned, in date, its CA in date: accepted, though our CA did not
        // sign it (the store checked that before the run).
        assert!(verify(current.clone(), now));
        // Its CA out of its dates, or the certificate past its own: checked
        // in full against our CA, which refuses it.
        assert!(!verify(Vec::new(), now));
        // rcgen's certificates run from 1975 to 4096.
        assert!(pin::current_issuers(&theirs.ca_pem, 0).is_empty());
        let after_its_end = 70_000_000_000;
        assert!(!verify(current, after_its_end));
    }

    #[test]
    fn http_answers_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        assert_eq!(parse_http(plain).unwrap(), (200, b"{\"a\":1}".to_vec()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_http(chunked).unwrap(), (200, b"{\"a\":1}".to_vec()));
        assert!(parse_http(b"garbage").is_err());
        assert!(
            parse_http(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }

    #[test]
    fn info_is_checked_against_the_settings() {
        let daemon = json!({"live-restore": true, "userns-remap": "default"});
        let daemon = daemon.as_object().unwrap();
        let info = |value: Value| serde_json::from_value::<Info>(value).unwrap();
        let good = info(
            json!({"ServerVersion": "20.10.24", "LiveRestoreEnabled": true, "SecurityOptions": ["name=seccomp,profile=default", "name=userns"], "Driver": "overlay2"}),
        );
        assert!(info_mismatches(&good, daemon).is_empty());
        assert_eq!(good.server_version(), "20.10.24");
        let bad = info(
            json!({"LiveRestoreEnabled": false, "SecurityOptions": ["name=seccomp,profile=default"]}),
        );
        assert_eq!(info_mismatches(&bad, daemon).len(), 2);
        // Odd types and missing fields are the check's failures, not parse errors.
        let odd = info(json!({"LiveRestoreEnabled": "yes", "SecurityOptions": "name=userns"}));
        assert_eq!(info_mismatches(&odd, daemon).len(), 2);
        assert_eq!(odd.server_version(), "?");
        assert_eq!(info_mismatches(&info(json!({})), daemon).len(), 2);
        assert_eq!(info_mismatches(&info(json!([1, 2])), daemon).len(), 2);
        assert!(serde_json::from_slice::<Info>(b"{\"LiveRestoreEnabled\": tru").is_err());
    }
}
