//! PKI decisions: whether an existing certificate can be reused or must be
//! (re)issued, and what it is for. Pure: reading a certificate's fields
//! (x509-parser) and comparing them with what is wanted does no I/O.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

/// The names a server certificate must carry (subjectAltName).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Sans {
    pub dns: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
}

impl Sans {
    /// From a host's inventory: its TLS names and addresses, plus its
    /// inventory name and connection address (clients use those too).
    pub fn for_host(name: &str, address: &str, names: &[String], addresses: &[IpAddr]) -> Sans {
        let mut sans = Sans::default();
        for candidate in [name, address]
            .into_iter()
            .chain(names.iter().map(String::as_str))
        {
            match candidate.parse::<IpAddr>() {
                Ok(ip) => {
                    sans.ips.insert(ip);
                }
                Err(_) => {
                    sans.dns.insert(candidate.to_ascii_lowercase());
                }
            }
        }
        sans.ips.extend(addresses.iter().copied());
        sans
    }

    /// The names that go into a host's server certificate.
    pub fn of_host(host: &crate::core::input::inventory::Host) -> Sans {
        Sans::for_host(
            &host.name,
            &host.address,
            &host.tls.names,
            &host.tls.addresses,
        )
    }

    /// `DNS:a, IP:1.2.3.4` as openssl prints SANs.
    pub fn describe(&self) -> String {
        self.dns
            .iter()
            .map(|d| format!("DNS:{d}"))
            .chain(self.ips.iter().map(|ip| format!("IP:{ip}")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What dockhand reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub sans: Sans,
    pub is_ca: bool,
    pub server_auth: bool,
    pub client_auth: bool,
    /// Whether the signature verifies with the given CA's public key.
    pub signed_by_ca: bool,
    /// Subject and issuer as RFC 4514 text (`CN=web1`).
    pub subject: String,
    pub issuer: String,
    /// SHA-256 of the DER certificate, `AB:CD:…` as openssl prints it.
    pub fingerprint: String,
}

/// A CA a host trusts that is none of ours.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignCa {
    pub subject: String,
    pub fingerprint: String,
}

/// The first CA in `have` (a host's `ca.pem`, one certificate or more)
/// when none of its certificates is in `trusted` (this store's bundle;
/// `None` before the store has a CA). A file with no certificate in it is
/// no CA at all, and cuts off no client.
pub fn foreign_ca(have: &[u8], trusted: Option<&[u8]>) -> Option<ForeignCa> {
    let ours: Vec<String> = trusted
        .map(|pem| {
            certificates(pem)
                .into_iter()
                .map(|c| c.fingerprint)
                .collect()
        })
        .unwrap_or_default();
    let theirs = certificates(have);
    if theirs.iter().any(|c| ours.contains(&c.fingerprint)) {
        return None;
    }
    theirs.into_iter().next().map(|c| ForeignCa {
        subject: c.subject,
        fingerprint: c.fingerprint,
    })
}

/// Every certificate of a PEM bundle that can be read.
fn certificates(pem: &[u8]) -> Vec<CertInfo> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .map_while(Result::ok)
        .filter_map(|block| read_block(&block, None).ok())
        .collect()
}

/// Reads a PEM certificate; `ca_pem` is the CA it should be signed by.
pub fn read_certificate(pem: &[u8], ca_pem: Option<&[u8]>) -> Result<CertInfo, String> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    read_block(&block, ca_pem)
}

fn read_block(block: &x509_parser::pem::Pem, ca_pem: Option<&[u8]>) -> Result<CertInfo, String> {
    let cert = block
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let mut sans = Sans::default();
    if let Ok(Some(extension)) = cert.subject_alternative_name() {
        for name in &extension.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => {
                    sans.dns.insert(dns.to_ascii_lowercase());
                }
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        sans.ips.insert(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let (server_auth, client_auth) = match cert.extended_key_usage() {
        Ok(Some(eku)) => (eku.value.server_auth, eku.value.client_auth),
        _ => (false, false),
    };
    let signed_by_ca = match ca_pem {
        Some(ca_pem) => {
            let ca_block = x509_parser::pem::parse_x509_pem(ca_pem)
                .map_err(|e| format!("CA: {e}"))?
                .1;
            let ca = ca_block.parse_x509().map_err(|e| format!("CA: {e}"))?;
            cert.verify_signature(Some(ca.public_key())).is_ok()
        }
        None => false,
    };
    use sha2::Digest as _;
    let fingerprint = sha2::Sha256::digest(&block.contents)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(CertInfo {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        sans,
        is_ca: cert.is_ca(),
        server_auth,
        client_auth,
        signed_by_ca,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        fingerprint,
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Server,
    Client,
}

/// Why a certificate must be issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum IssueReason {
    Missing,
    Unreadable {
        detail: String,
    },
    NotFromThisCa,
    WrongPurpose,
    Expiring {
        days_left: i64,
    },
    NamesChanged {
        missing: Vec<String>,
        extra: Vec<String>,
    },
}

impl std::fmt::Display for IssueReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IssueReason::Missing => write!(f, "no certificate yet"),
            IssueReason::Unreadable { detail } => {
                write!(f, "the existing certificate is unreadable ({detail})")
            }
            IssueReason::NotFromThisCa => write!(
                f,
                "the existing certificate is not signed by the current CA"
            ),
            IssueReason::WrongPurpose => {
                write!(f, "the existing certificate is not for this purpose")
            }
            IssueReason::Expiring { days_left } if *days_left < 0 => {
                write!(
                    f,
                    "the existing certificate expired {} day(s) ago",
                    -days_left
                )
            }
            IssueReason::Expiring { days_left } => {
                write!(f, "the existing certificate expires in {days_left} day(s)")
            }
            IssueReason::NamesChanged { missing, extra } => {
                let mut parts = Vec::new();
                if !missing.is_empty() {
                    parts.push(format!("lacks {}", missing.join(", ")));
                }
                if !extra.is_empty() {
                    parts.push(format!("still names {}", extra.join(", ")));
                }
                write!(
                    f,
                    "the host's names changed: the certificate {}",
                    parts.join(" and ")
                )
            }
        }
    }
}

/// The decision for one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Reuse,
    Issue(IssueReason),
}

const DAY: i64 = 86_400;

/// Decides whether `existing` (parsed, or the parse error) can stay.
/// `wanted` is None for client certificates (no names to match).
pub fn decide(
    existing: Option<Result<&CertInfo, &str>>,
    purpose: Purpose,
    wanted: Option<&Sans>,
    now: i64,
    renew_before_days: u32,
) -> Decision {
    let info = match existing {
        None => return Decision::Issue(IssueReason::Missing),
        Some(Err(detail)) => {
            return Decision::Issue(IssueReason::Unreadable {
                detail: detail.to_string(),
            });
        }
        Some(Ok(info)) => info,
    };
    if !info.signed_by_ca {
        return Decision::Issue(IssueReason::NotFromThisCa);
    }
    let purpose_ok = match purpose {
        Purpose::Server => info.server_auth && !info.is_ca,
        Purpose::Client => info.client_auth && !info.is_ca,
    };
    if !purpose_ok {
        return Decision::Issue(IssueReason::WrongPurpose);
    }
    let days_left = (info.not_after - now).div_euclid(DAY);
    if info.not_after - now <= i64::from(renew_before_days) * DAY {
        return Decision::Issue(IssueReason::Expiring { days_left });
    }
    if let Some(wanted) = wanted
        && *wanted != info.sans
    {
        let describe = |sans: &Sans| -> Vec<String> {
            sans.dns
                .iter()
                .map(|d| format!("DNS:{d}"))
                .chain(sans.ips.iter().map(|ip| format!("IP:{ip}")))
                .collect()
        };
        let have = describe(&info.sans);
        let want = describe(wanted);
        return Decision::Issue(IssueReason::NamesChanged {
            missing: want.iter().filter(|n| !have.contains(n)).cloned().collect(),
            extra: have.iter().filter(|n| !want.contains(n)).cloned().collect(),
        });
    }
    Decision::Reuse
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn sans(dns: &[&str], ips: &[&str]) -> Sans {
        Sans {
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn server(days_left: i64, names: Sans) -> CertInfo {
        CertInfo {
            not_before: NOW - 10 * DAY,
            not_after: NOW + days_left * DAY,
            sans: names,
            is_ca: false,
            server_auth: true,
            client_auth: false,
            signed_by_ca: true,
            subject: "CN=web1".into(),
            issuer: "CN=dockhand CA".into(),
            fingerprint: String::new(),
        }
    }

    #[test]
    fn decisions() {
        let wanted = sans(&["web1"], &["192.0.2.1"]);
        let fresh = server(300, wanted.clone());
        let expiring = server(10, wanted.clone());
        let expired = server(-2, wanted.clone());
        let drifted = server(300, sans(&["web1"], &["192.0.2.9"]));
        let foreign = CertInfo {
            signed_by_ca: false,
            ..fresh.clone()
        };
        let client_only = CertInfo {
            server_auth: false,
            client_auth: true,
            ..fresh.clone()
        };
        type Existing<'a> = Option<Result<&'a CertInfo, &'a str>>;
        let cases: Vec<(&str, Existing, Decision)> = vec![
            ("missing", None, Decision::Issue(IssueReason::Missing)),
            (
                "unreadable",
                Some(Err("garbage")),
                Decision::Issue(IssueReason::Unreadable {
                    detail: "garbage".into(),
                }),
            ),
            ("valid", Some(Ok(&fresh)), Decision::Reuse),
            (
                "inside window",
                Some(Ok(&expiring)),
                Decision::Issue(IssueReason::Expiring { days_left: 10 }),
            ),
            (
                "expired",
                Some(Ok(&expired)),
                Decision::Issue(IssueReason::Expiring { days_left: -2 }),
            ),
            (
                "san drift",
                Some(Ok(&drifted)),
                Decision::Issue(IssueReason::NamesChanged {
                    missing: vec!["IP:192.0.2.1".into()],
                    extra: vec!["IP:192.0.2.9".into()],
                }),
            ),
            (
                "other CA",
                Some(Ok(&foreign)),
                Decision::Issue(IssueReason::NotFromThisCa),
            ),
            (
                "client cert as server",
                Some(Ok(&client_only)),
                Decision::Issue(IssueReason::WrongPurpose),
            ),
        ];
        for (name, existing, expected) in cases {
            assert_eq!(
                decide(existing, Purpose::Server, Some(&wanted), NOW, 30),
                expected,
                "{name}"
            );
        }
        // Exactly at the edge of the window: renew (better a day early).
        let edge = server(30, wanted.clone());
        assert!(matches!(
            decide(Some(Ok(&edge)), Purpose::Server, Some(&wanted), NOW, 30),
            Decision::Issue(_)
        ));
        // Client certificates have no names to match.
        assert_eq!(
            decide(Some(Ok(&client_only)), Purpose::Client, None, NOW, 30),
            Decision::Reuse
        );
    }

    #[test]
    fn host_sans_include_name_and_address() {
        let got = Sans::for_host(
            "Web1",
            "192.0.2.1",
            &["web1.example.com".into()],
            &["2001:db8::1".parse().unwrap()],
        );
        assert_eq!(
            got,
            sans(&["web1", "web1.example.com"], &["192.0.2.1", "2001:db8::1"])
        );
        assert_eq!(
            got.describe(),
            "DNS:web1, DNS:web1.example.com, IP:192.0.2.1, IP:2001:db8::1"
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(read_certificate(b"hello", None).is_err());
    }
}
