//! The SES SMTP stand-in's certificates: a test CA made at start, and a server certificate it
//! signs for `localhost`, `127.0.0.1` and every region's `email-smtp.<region>.amazonaws.com`
//! (the names real SES's certificates carry, one per regional endpoint).
//!
//! SES accepts TLS 1.2 and 1.3 on its SMTP interface (SES Developer Guide, "Amazon SES and
//! security protocols"); rustls' safe defaults are exactly those two.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::credentials::SMTP_REGIONS;

/// The test CA (PEM, for clients to trust) and the server's TLS configuration.
pub struct Certificates {
    /// The test CA, PEM.
    pub ca_pem: String,
    /// The server's TLS configuration, its certificate signed by that CA.
    pub server: Arc<rustls::ServerConfig>,
}

/// The names the server certificate carries.
pub fn server_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "email-smtp.amazonaws.com".to_string(),
    ];
    names.extend(
        SMTP_REGIONS
            .iter()
            .map(|r| email_operator::smtp::ses_password::smtp_endpoint(r)),
    );
    names
}

/// Makes a fresh CA and server certificate.
pub fn make() -> Result<Certificates, String> {
    let ca = TestCa::new("testbed SES SMTP test CA")
        .map_err(|e| format!("cannot make the SES SMTP certificates: {e}"))?;
    let server = ca
        .server_config("email-smtp.amazonaws.com", &server_names())
        .map_err(|e| format!("cannot make the SES SMTP certificates: {e}"))?;
    Ok(Certificates {
        ca_pem: ca.pem().to_string(),
        server,
    })
}

/// A certificate authority made at start, which signs server certificates for whatever names
/// a stand-in plays (the SES SMTP endpoints; in `testbed demo`, the examples' relays and token
/// endpoint). Clients trust [`TestCa::pem`].
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    pem: String,
}

impl TestCa {
    /// A fresh CA named `common_name`.
    pub fn new(common_name: &str) -> Result<Self, String> {
        let err = |e: rcgen::Error| e.to_string();
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A TLS server configuration (TLS 1.2 and 1.3) presenting a fresh certificate for
    /// `names` (host names or IP addresses), signed by this CA, with the CA in the chain.
    pub fn server_config(
        &self,
        common_name: &str,
        names: &[String],
    ) -> Result<Arc<rustls::ServerConfig>, String> {
        let err = |e: rcgen::Error| e.to_string();
        let leaf_key = KeyPair::generate().map_err(err)?;
        let mut leaf = CertificateParams::new(names.to_vec()).map_err(err)?;
        leaf.distinguished_name
            .push(DnType::CommonName, common_name);
        leaf.use_authority_key_identifier_extension = true;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf.signed_by(&leaf_key, &self.issuer).map_err(err)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf_cert.der().clone(), self.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(server))
    }
}

/// The CA certificate as DER (for in-process clients).
pub fn ca_der(ca_pem: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(ca_pem.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_names_every_regional_endpoint_and_localhost() {
        let names = server_names();
        assert!(names.contains(&"localhost".to_string()));
        assert!(names.contains(&"email-smtp.eu-west-1.amazonaws.com".to_string()));
        let certs = make().expect("certificates");
        assert!(certs.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca_der(&certs.ca_pem).is_some());
    }
}
