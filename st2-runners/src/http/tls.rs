//! TLS for `http-request`: rustls with the `ring` provider, verifying certificates against the
//! system's roots (`verify_ssl_cert: true`) or accepting any certificate (`false`).

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// The rustls configurations the runner's clients use, each built once per runner when first
/// needed: the system's roots are read and parsed only once a request verifies a certificate
/// (a daemon that never runs `http-request` never holds them).
#[derive(Debug, Default)]
pub(super) struct TlsConfigs {
    /// Verifies the server's certificate and name against the system's roots, or the reason
    /// the verifier could not be built.
    verified: OnceLock<Result<ClientConfig, String>>,
    /// Accepts any certificate (signatures in the handshake are still checked).
    unverified: OnceLock<Result<ClientConfig, String>>,
}

impl TlsConfigs {
    /// No configuration built yet.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The configuration for `verify_ssl_cert = verify`, with the `ring` provider.
    ///
    /// # Errors
    /// Why TLS cannot be configured on this host (no system verifier).
    pub(super) fn config(&self, verify: bool) -> Result<ClientConfig, String> {
        let provider = || Arc::new(rustls::crypto::ring::default_provider());
        if verify {
            self.verified
                .get_or_init(|| {
                    let provider = provider();
                    rustls_platform_verifier::Verifier::new(provider.clone())
                        .map_err(|e| {
                            format!("the system's certificate verifier is not available: {e}")
                        })
                        .and_then(|verifier| with_verifier(&provider, Arc::new(verifier)))
                })
                .clone()
        } else {
            self.unverified
                .get_or_init(|| {
                    let provider = provider();
                    with_verifier(&provider, Arc::new(AnyCertificate(provider.clone())))
                })
                .clone()
        }
    }
}

fn with_verifier(
    provider: &Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<ClientConfig, String> {
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// `verify_ssl_cert: false`: any certificate for any name is accepted, as Python's
/// `requests` does with `verify=False`; the handshake signatures are still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

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
