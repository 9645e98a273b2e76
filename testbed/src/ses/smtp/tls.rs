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
    pub ca_pem: String,
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
    let err = |e: rcgen::Error| format!("cannot make the SES SMTP certificates: {e}");
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "testbed SES SMTP test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(server_names()).map_err(err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "email-smtp.amazonaws.com");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(err)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .map_err(|e| e.to_string())?;
    Ok(Certificates {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    })
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
