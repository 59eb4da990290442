//! TLS for PostgreSQL connections, over rustls (the TLS stack the rest of
//! the workspace already uses), with libpq's `sslmode` / `sslrootcert`.
//!
//! tokio-postgres itself only knows `disable`, `prefer` and `require`, and
//! refuses every other connection parameter it does not know; so both are
//! taken out of the location here ([`Target::parse`]) and turned into a
//! driver `Config` plus a rustls configuration that verifies as much as the
//! mode asks for:
//!
//! | `sslmode`      | encrypted                  | certificate checked             |
//! |----------------|----------------------------|---------------------------------|
//! | `disable`      | never                      | —                               |
//! | `allow`        | only if plain is refused   | no                              |
//! | `prefer` (default) | when the server offers it | no                           |
//! | `require`      | always                     | no; chain only with `sslrootcert` (as libpq) |
//! | `verify-ca`    | always                     | chain to a trusted root         |
//! | `verify-full`  | always                     | chain, and the host name        |
//!
//! Trusted roots are the PEM file `sslrootcert` names, else the Mozilla set
//! compiled in (`webpki-roots`; `sslrootcert=system` says so explicitly).

use crate::api::{StoreError, StoreResult};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain only.
    Disable,
    /// Plain first; TLS (unverified) if the server refuses plain.
    Allow,
    /// TLS (unverified) when the server offers it, else plain.
    Prefer,
    /// TLS always; unverified unless a root file is given (then as `VerifyCa`).
    Require,
    /// TLS always, the chain checked against the trusted roots.
    VerifyCa,
    /// TLS always, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The name libpq gives it, for messages.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where and how to connect: the driver's config without the TLS
/// parameters, the mode, and the rustls side built once per store (so
/// every pooled connection shares it, session tickets included).
pub(crate) struct Target {
    /// The driver's config; its own `ssl_mode` is set per attempt.
    pub config: tokio_postgres::Config,
    /// The requested mode (`prefer` when the location names none).
    pub mode: SslMode,
    /// What tokio-postgres calls to wrap a socket in TLS.
    pub tls: MakeRustls,
}

impl Target {
    /// Parses a `postgres://` URL or a `key=value` connection string,
    /// taking out `sslmode` and `sslrootcert`. Errors name `location` (the
    /// redacted form) and never the password.
    pub(crate) fn parse(url: &str, location: &str) -> StoreResult<Target> {
        let open_err = |message: String| StoreError::Open {
            location: location.to_string(),
            message,
            cause: None,
        };
        let (rest, params) = take_tls_params(url);
        let mut mode = SslMode::Prefer;
        let mut root_cert = None;
        for (key, value) in params {
            match key {
                TlsParam::Mode => {
                    mode = SslMode::parse(&value).ok_or_else(|| {
                        open_err(format!(
                            "sslmode {value:?} is not one of disable, allow, prefer, require, \
                             verify-ca, verify-full"
                        ))
                    })?
                }
                TlsParam::RootCert => root_cert = Some(value),
            }
        }
        let config: tokio_postgres::Config = rest.parse().map_err(|e| StoreError::Open {
            location: location.to_string(),
            message: "cannot read the connection parameters".to_string(),
            cause: Some(crate::api::DriverError::Postgres(e)),
        })?;
        // libpq: `require` with a root file behaves as `verify-ca`.
        if mode == SslMode::Require && root_cert.is_some() {
            mode = SslMode::VerifyCa;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::Disable | SslMode::Allow | SslMode::Prefer | SslMode::Require => {
                Arc::new(EncryptOnly(provider.clone()))
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = Arc::new(load_roots(root_cert.as_deref()).map_err(open_err)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| open_err(format!("cannot use the trusted roots: {e}")))?;
                if mode == SslMode::VerifyCa {
                    Arc::new(ChainOnly(webpki))
                } else {
                    webpki
                }
            }
        };
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| open_err(format!("cannot set up TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Target {
            config,
            mode,
            tls: MakeRustls(Arc::new(client)),
        })
    }
}

enum TlsParam {
    Mode,
    RootCert,
}

/// Splits the TLS parameters off a URL's query or a `key=value` string;
/// returns the rest as it was otherwise (the driver parses it).
fn take_tls_params(url: &str) -> (String, Vec<(TlsParam, String)>) {
    let classify = |key: &str| match key {
        "sslmode" => Some(TlsParam::Mode),
        "sslrootcert" => Some(TlsParam::RootCert),
        _ => None,
    };
    let mut found = Vec::new();
    if url.contains("://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_string(), found);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match classify(key) {
                Some(p) => found.push((p, percent_decode(value))),
                None => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, found);
    }
    // `host=db sslmode=require`: values holding spaces are quoted, which
    // these two never need; everything else is passed on token by token.
    let mut kept = Vec::new();
    for token in url.split_whitespace() {
        let (key, value) = token.split_once('=').unwrap_or((token, ""));
        match classify(key) {
            Some(p) => found.push((p, value.trim_matches('\'').to_string())),
            None => kept.push(token),
        }
    }
    if found.is_empty() {
        (url.to_string(), found)
    } else {
        (kept.join(" "), found)
    }
}

/// `%2F` → `/` (a root file path in a URL query is percent-encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The roots to verify against: every certificate of the PEM file, or the
/// compiled-in Mozilla set when there is none (or it is `system`).
fn load_roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let Some(path) = root_cert.filter(|p| *p != "system") else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let path = PathBuf::from(path);
    let unreadable =
        |e: &dyn std::fmt::Display| format!("cannot read sslrootcert {}: {e}", path.display());
    for cert in CertificateDer::pem_file_iter(&path).map_err(|e| unreadable(&e))? {
        let cert = cert.map_err(|e| unreadable(&e))?;
        roots.add(cert).map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(roots)
}

/// `prefer` / `require` without roots: the session is encrypted, the
/// server's certificate is not checked (libpq does the same). Handshake
/// signatures are still verified, so the peer holds the key it presented.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full WebPKI check except the host name. WebPKI checks
/// the chain before the name, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
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

/// tokio-postgres' TLS hook over rustls.
#[derive(Clone)]
pub(crate) struct MakeRustls(Arc<ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_string())?,
        })
    }
}

/// One handshake to one host.
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(tls))
        })
    }
}

/// An encrypted connection to the server.
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    /// No `tls-server-end-point` binding: it needs the hash of the
    /// certificate's signature algorithm, and a wrong one fails SCRAM. The
    /// driver then authenticates without binding (`channel_binding=prefer`).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(url: &str) -> (String, SslMode) {
        let t = Target::parse(url, "loc").unwrap();
        (format!("{:?}", t.config.get_ssl_mode()), t.mode)
    }

    #[test]
    fn the_default_is_prefer_like_libpq() {
        assert_eq!(modes("postgres://u@h/db").1, SslMode::Prefer);
        assert_eq!(modes("host=h user=u").1, SslMode::Prefer);
    }

    #[test]
    fn every_libpq_mode_is_read_from_urls_and_key_values() {
        for m in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            let expect = SslMode::parse(m).unwrap();
            assert_eq!(modes(&format!("postgres://u@h/db?sslmode={m}")).1, expect);
            assert_eq!(modes(&format!("host=h sslmode={m} user=u")).1, expect);
        }
        // The driver never sees the parameters it does not know.
        let (rest, _) = take_tls_params(
            "postgres://u@h/db?application_name=a&sslmode=verify-full&sslrootcert=%2Ftmp%2Fr.pem",
        );
        assert_eq!(rest, "postgres://u@h/db?application_name=a");
    }

    #[test]
    fn require_with_a_root_file_verifies_the_chain_like_libpq() {
        let pem = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
        if std::path::Path::new(pem).exists() {
            let url = format!("postgres://u@h/db?sslmode=require&sslrootcert={pem}");
            assert_eq!(modes(&url).1, SslMode::VerifyCa);
        }
    }

    #[test]
    fn an_unknown_mode_or_a_missing_root_file_is_a_clear_open_error() {
        let err = Target::parse(
            "postgres://u:secret@h/db?sslmode=sometimes",
            "postgres://u@h/db",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("sslmode \"sometimes\""), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = Target::parse(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/root.pem",
            "loc",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("cannot read sslrootcert /nonexistent/root.pem"),
            "{err}"
        );
    }
}
