//! TLS for `https://` targets, on rustls: which certificates a target may present.
//!
//! By default the platform's roots; with `ca_file`, that file's certificates (a test cluster's
//! own CA); with `insecure`, any certificate at all, for self-signed test clusters, and only when
//! the scenario says so.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What a target's certificate is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the certificates to trust instead of the platform's.
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate (no verification).
    pub insecure: bool,
}

impl TlsOptions {
    /// The certificates of `ca_file`, DER-encoded.
    pub fn ca_certificates(&self) -> anyhow::Result<Vec<CertificateDer<'static>>> {
        let Some(path) = &self.ca_file else {
            return Ok(Vec::new());
        };
        read_pem(path)
    }

    /// A rustls client configuration for these options.
    pub fn client_config(&self) -> anyhow::Result<Arc<ClientConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS: no protocol version in common")?;
        let config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            if self.ca_file.is_some() {
                for c in self.ca_certificates()? {
                    roots.add(c).context("target.ca_file: not a CA certificate")?;
                }
            } else {
                // Certificates the platform cannot parse are skipped, as browsers do.
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(Arc::new(config))
    }
}

fn read_pem(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate in it", path.display());
    }
    Ok(certs)
}

/// The name a certificate must carry for `host`.
pub fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    // `[::1]` in a URL is `::1` to TLS.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).with_context(|| format!("`{host}` is not a TLS server name"))
}

/// `insecure = true`: every certificate is accepted, signatures are still checked so that the
/// handshake itself is sound.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ca_files_are_checked() {
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("alcor.example.com").is_ok());
        let dir = std::env::temp_dir().join(format!("alcor-scale-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "no certificate here").unwrap();
        let opts = TlsOptions {
            ca_file: Some(junk.clone()),
            insecure: false,
        };
        assert!(
            opts.ca_certificates()
                .unwrap_err()
                .to_string()
                .contains("no certificate")
        );
        assert!(opts.client_config().is_err());
        let missing = TlsOptions {
            ca_file: Some(dir.join("absent.pem")),
            insecure: false,
        };
        assert!(format!("{:#}", missing.ca_certificates().unwrap_err()).contains("absent.pem"));
        // Platform roots and no verification both make a configuration.
        assert!(TlsOptions::default().client_config().is_ok());
        let any = TlsOptions {
            ca_file: None,
            insecure: true,
        };
        assert!(any.client_config().is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
