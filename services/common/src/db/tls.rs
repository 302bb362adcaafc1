//! TLS to PostgreSQL from the URL's own parameters, as libpq reads them (docs/database.md):
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | absent, `disable`, `allow` | no | — |
//! | `prefer` | when the server offers it | no |
//! | `require` | yes | no (a network eavesdropper is kept out, an impostor is not) |
//! | `verify-ca` | yes | chain to `sslrootcert` |
//! | `verify-full` | yes | chain to `sslrootcert` and the host name (or IP) in the URL |
//!
//! `sslrootcert` is a PEM file of the trusted CA certificates; `verify-ca` and `verify-full`
//! refuse to start without it. rustls (ring) does the TLS; tokio-postgres itself knows only
//! `disable`/`prefer`/`require`, so the two verifying modes and `sslrootcert` are taken out
//! of the URL before it parses the rest.

use std::sync::Arc;

use diesel::{ConnectionError, ConnectionResult};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;

/// How a URL asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP (no `sslmode`, `disable`, `allow`).
    Off,
    /// TLS when the server offers it, certificate not checked.
    Prefer,
    /// TLS, certificate not checked.
    Require,
    /// TLS, chain checked against `sslrootcert`.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

/// A URL split into what tokio-postgres parses and what this module handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsUrl {
    /// The URL without `sslmode` and `sslrootcert`.
    pub url: String,
    /// The requested mode.
    pub mode: TlsMode,
    /// `sslrootcert`, when given.
    pub root_cert: Option<String>,
}

impl TlsUrl {
    /// Splits `url` (module doc); an unknown `sslmode` is refused.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut mode, mut root_cert, mut rest) = (TlsMode::Off, None, Vec::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    mode = match value {
                        "disable" | "allow" => TlsMode::Off,
                        "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                            ));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(percent_decode(value)),
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
        Ok(Self { url, mode, root_cert })
    }
}

/// One connection to `url`, over TLS when its `sslmode` asks for it (module doc): what every
/// pooled and dedicated connection of [`super::DbPool`] opens with.
pub async fn establish(url: &str) -> ConnectionResult<AsyncPgConnection> {
    let parsed = TlsUrl::parse(url).map_err(ConnectionError::InvalidConnectionUrl)?;
    if parsed.mode == TlsMode::Off {
        return AsyncPgConnection::establish(&parsed.url).await;
    }
    let mut config: tokio_postgres::Config =
        parsed.url.parse().map_err(|e| ConnectionError::InvalidConnectionUrl(format!("{e}")))?;
    config.ssl_mode(if parsed.mode == TlsMode::Prefer { SslMode::Prefer } else { SslMode::Require });
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
        client_config(parsed.mode, parsed.root_cert.as_deref()).map_err(ConnectionError::BadConnection)?,
    );
    let (client, connection) = config.connect(tls).await.map_err(|e| {
        ConnectionError::BadConnection(format!("cannot connect to PostgreSQL over TLS (sslmode): {}", error_chain(&e)))
    })?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

/// The rustls configuration of `mode`.
fn client_config(mode: TlsMode, root_cert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        TlsMode::Off | TlsMode::Prefer | TlsMode::Require => {
            Arc::new(NoCertificateCheck(provider.signature_verification_algorithms))
        }
        TlsMode::VerifyCa | TlsMode::VerifyFull => {
            let path = root_cert.ok_or_else(|| {
                "sslmode=verify-ca/verify-full needs sslrootcert=<PEM file of the trusted CA> in the database URL"
                    .to_owned()
            })?;
            let roots = root_store(path)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            if mode == TlsMode::VerifyFull { webpki } else { Arc::new(ChainOnly(webpki)) }
        }
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

fn root_store(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("sslrootcert {path}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
        roots.add(cert).map_err(|e| format!("sslrootcert {path}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {path}: no certificate in the file"));
    }
    Ok(roots)
}

/// `require`/`prefer`: any certificate, but the handshake signatures are still checked.
#[derive(Debug)]
struct NoCertificateCheck(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in the certificate may differ.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// An error and its sources on one line (tokio-postgres hides the TLS cause in `source`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_are_taken_out_and_the_rest_kept() {
        let t = TlsUrl::parse("postgres://u@h:5/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x")
            .unwrap();
        assert_eq!(
            t,
            TlsUrl {
                url: "postgres://u@h:5/db?application_name=x".into(),
                mode: TlsMode::VerifyFull,
                root_cert: Some("/tmp/ca.pem".into()),
            }
        );
        assert_eq!(TlsUrl::parse("postgres://h/db").unwrap().mode, TlsMode::Off);
        assert_eq!(TlsUrl::parse("postgres://h/db?sslmode=require").unwrap().url, "postgres://h/db");
        assert!(TlsUrl::parse("postgres://h/db?sslmode=strict").is_err());
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        let e = client_config(TlsMode::VerifyFull, None).unwrap_err();
        assert!(e.contains("sslrootcert"), "{e}");
    }
}
