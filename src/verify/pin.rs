//! The server certificate dockhand pushed to a host, pinned for the
//! probes of that host. dockhand's store checked it before the run (signed
//! by the CA, naming the host, its key matching), so a server that presents
//! exactly those bytes, and proves with its handshake signature that it
//! holds the key, is the server dockhand certified: the chain's signature
//! need not be checked again for every probe (an ECDSA verification each,
//! the most of a probe's CPU on a fleet of thousands). What can change
//! since the store's check is still checked on every probe, as a docker
//! client checks it: the certificate's dates, and that the CA which issued
//! it is within its own. The pin is used only when the probe reaches the
//! host by the address the store checked the certificate's names against.
//! Any other certificate is checked in full against the CA and the name.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The certificate the store checked (the first PEM block of the file,
/// read as the store reads it), with the fields each probe checks, read
/// once when the pin is made rather than at every handshake.
#[derive(Debug, Clone)]
pub struct Pin {
    pub certificate: CertificateDer<'static>,
    dates: (i64, i64),
    issuer: Vec<u8>,
}

impl Pin {
    /// `None` when the file's first block is no certificate (then the
    /// probe checks the server's in full).
    pub fn of_pem(pem: &[u8]) -> Option<Pin> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).ok()?;
        let (dates, issuer) = (dates(&cert), cert.issuer().as_raw().to_vec());
        Some(Pin {
            certificate: CertificateDer::from(block.contents),
            dates,
            issuer,
        })
    }
}

/// The subjects of the CA certificates within their dates at `now`.
pub fn current_issuers(ca_pem: &[u8], now: i64) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(ca_pem)
        .map_while(Result::ok)
        .filter_map(|block| {
            let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).ok()?;
            within(dates(&cert), now).then(|| cert.subject().as_raw().to_vec())
        })
        .collect()
}

/// A certificate's notBefore and notAfter, in Unix seconds.
fn dates(cert: &x509_parser::certificate::X509Certificate<'_>) -> (i64, i64) {
    let validity = cert.validity();
    (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    )
}

fn within((not_before, not_after): (i64, i64), now: i64) -> bool {
    not_before <= now && now <= not_after
}

/// Accepts the pinned certificate without its chain's signature while it
/// is within its dates and its issuer is one of `issuers` (CAs within
/// theirs), and checks any other with `full`; handshake signatures are
/// always checked, by `full`.
#[derive(Debug)]
pub struct Pinned {
    pub pin: Pin,
    pub issuers: Arc<Vec<Vec<u8>>>,
    pub full: Arc<dyn ServerCertVerifier>,
}

impl Pinned {
    fn still_good(&self, now: UnixTime) -> bool {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        within(self.pin.dates, now) && self.issuers.contains(&self.pin.issuer)
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pin.certificate.as_ref() && self.still_good(now) {
            return Ok(ServerCertVerified::assertion());
        }
        self.full
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.full.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.full.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.full.supported_verify_schemes()
    }
}
