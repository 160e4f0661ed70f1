//! Certificates: the cluster CA, per-component certificates, and checks of the TLS material a
//! user brings (`--dtr-cert/--dtr-key/--dtr-ca`). ECDSA P-256 keys, PEM everywhere.

use std::io::BufReader;
use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::error::{InputError as Error, Result};
use crate::secret::Secret;

/// The CA outlives many leaf rotations.
const CA_VALIDITY_DAYS: i64 = 3650;
/// Internal component certificates.
const COMPONENT_VALIDITY_DAYS: i64 = 1825;
/// Certificates presented to users' clients: at most 825 days, which Apple platforms require.
const EXTERNAL_VALIDITY_DAYS: i64 = 825;

fn tls_err(what: &str, reason: impl ToString) -> Error {
    Error::Tls {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// A certificate and its private key, as PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: Secret<String>,
}

/// Which of a certificate's uses to allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// Server and client: a component's identity both ways (etcd, PostgreSQL, gRPC).
    ServerAndClient,
    /// Only signs registry tokens.
    TokenSigning,
    /// The HTTPS front end.
    Server,
    /// Only a client (notary-server towards notary-signer).
    Client,
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // a little slack for clocks that are slightly behind
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn san(name: &str) -> Result<SanType> {
    match name.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => Ok(SanType::DnsName(name.to_string().try_into().map_err(
            |e| tls_err("subject alternative name", format!("{name}: {e}")),
        )?)),
    }
}

/// id-kp-documentSigning (RFC 9336), the extended key usage of the token-signing certificate.
const DOCUMENT_SIGNING: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 3, 36];

/// A new self-signed CA for one DTR cluster.
pub fn generate_ca(common_name: &str) -> Result<Issued> {
    let key = KeyPair::generate().map_err(|e| tls_err("CA key", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "dtr");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, CA_VALIDITY_DAYS);
    let cert = params
        .self_signed(&key)
        .map_err(|e| tls_err("CA certificate", e))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Secret::new(key.serialize_pem()),
    })
}

/// A leaf certificate signed by the CA.
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &Secret<String>,
    common_name: &str,
    names: &[String],
    usage: Usage,
) -> Result<Issued> {
    let ca_key = KeyPair::from_pem(ca_key_pem.expose()).map_err(|e| tls_err("CA key", e))?;
    let issuer =
        Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(|e| tls_err("CA certificate", e))?;
    let key = KeyPair::generate().map_err(|e| tls_err("key", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_>>()?;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match usage {
        Usage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        // Document Signing (RFC 9336): a token key that cannot pass for a TLS server or client
        Usage::TokenSigning => vec![ExtendedKeyUsagePurpose::Other(DOCUMENT_SIGNING.to_vec())],
    };
    validity(
        &mut params,
        if usage == Usage::Server {
            EXTERNAL_VALIDITY_DAYS
        } else {
            COMPONENT_VALIDITY_DAYS
        },
    );
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| tls_err(common_name, e))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Secret::new(key.serialize_pem()),
    })
}

fn parse_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem.as_bytes()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_err(what, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(
            what,
            "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    for der in &certs {
        x509_parser::parse_x509_certificate(der)
            .map_err(|e| tls_err(what, format!("not a valid X.509 certificate: {e}")))?;
    }
    Ok(certs)
}

/// The DNS names and IP addresses the first certificate of a PEM is made for.
pub fn subject_names(cert_pem: &str) -> Result<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let certs = parse_certs(cert_pem, "certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref())
        .map_err(|e| tls_err("certificate", format!("not a valid X.509 certificate: {e}")))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => {
                        names.push(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string())
                    }
                    16 => {
                        let b: [u8; 16] = (*ip).try_into().expect("16 bytes");
                        names.push(std::net::Ipv6Addr::from(b).to_string())
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(names)
}

/// SHA-256 fingerprint of the first certificate in a PEM, as `AA:BB:...`.
pub fn fingerprint(cert_pem: &str) -> Result<String> {
    let certs = parse_certs(cert_pem, "certificate")?;
    let digest = Sha256::digest(certs[0].as_ref());
    Ok(digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// Certificate, key and CA supplied by the user for the HTTPS front end.
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    pub cert_pem: String,
    pub key_pem: Secret<String>,
    pub ca_pem: Option<String>,
}

/// The parts of `TlsMaterial` that may be written anywhere (no key).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct UserCertPublic {
    pub cert_pem: String,
    pub ca_pem: Option<String>,
}

impl TlsMaterial {
    /// Checks that the certificate chain and the CA parse and that the key belongs to the certificate.
    pub fn new(cert_pem: String, key_pem: Secret<String>, ca_pem: Option<String>) -> Result<Self> {
        let certs = parse_certs(&cert_pem, "--dtr-cert")?;
        let key = rustls_pemfile::private_key(&mut BufReader::new(key_pem.expose().as_bytes()))
            .map_err(|_| tls_err("--dtr-key", "not valid PEM"))?
            .ok_or_else(|| {
                tls_err(
                    "--dtr-key",
                    "no PEM private key found (PKCS#8, PKCS#1 or SEC1)",
                )
            })?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
            tls_err(
                "--dtr-key",
                "unsupported key type (use RSA, ECDSA P-256/P-384 or Ed25519)",
            )
        })?;
        rustls::sign::CertifiedKey::new(certs, Arc::clone(&signing))
            .keys_match()
            .map_err(|_| {
                tls_err(
                    "--dtr-key",
                    "the private key does not match the certificate given with --dtr-cert",
                )
            })?;
        if let Some(ca) = &ca_pem {
            parse_certs(ca, "--dtr-ca")?;
        }
        Ok(TlsMaterial {
            cert_pem,
            key_pem,
            ca_pem,
        })
    }

    pub fn public_part(&self) -> UserCertPublic {
        UserCertPublic {
            cert_pem: self.cert_pem.clone(),
            ca_pem: self.ca_pem.clone(),
        }
    }
}

/// How many certificates a PEM document holds, or why it cannot be read.
pub fn certificate_count(pem: &str) -> std::result::Result<usize, String> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    for c in &certs {
        x509_parser::parse_x509_certificate(c)
            .map_err(|e| format!("a certificate does not parse: {e}"))?;
    }
    Ok(certs.len())
}

/// The last certificate of a PEM chain: without `--dtr-ca`, the top-most certificate of the
/// user's chain is what clients must trust.
pub fn last_pem_block(pem: &str) -> String {
    match pem.rfind("-----BEGIN CERTIFICATE-----") {
        Some(i) => pem[i..].to_string(),
        None => pem.to_string(),
    }
}

/// A verifier that accepts any certificate (`--ucp-insecure-tls`, a storage section's
/// `skipverify`): handshake signatures are still checked, so the session is encrypted, but the
/// server is not authenticated.
#[derive(Debug)]
pub struct AnyCertificate(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_chain_to_the_ca_and_carry_their_names() {
        let ca = generate_ca("dtr test CA").unwrap();
        let leaf = issue(
            &ca.cert_pem,
            &ca.key_pem,
            "etcd",
            &["dtr-etcd-0123456789ab".into(), "127.0.0.1".into()],
            Usage::ServerAndClient,
        )
        .unwrap();
        let der = parse_certs(&leaf.cert_pem, "leaf").unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
        let ca_der = parse_certs(&ca.cert_pem, "ca").unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der[0]).unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        cert.verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
        let sans = format!(
            "{:?}",
            cert.subject_alternative_name()
                .unwrap()
                .unwrap()
                .value
                .general_names
        );
        assert!(
            sans.contains("dtr-etcd-0123456789ab") && sans.contains("IPAddress([127, 0, 0, 1])"),
            "{sans}"
        );
    }

    #[test]
    fn the_token_key_is_for_documents_only_never_tls() {
        let ca = generate_ca("ca").unwrap();
        let token = issue(
            &ca.cert_pem,
            &ca.key_pem,
            "dtr token",
            &[],
            Usage::TokenSigning,
        )
        .unwrap();
        let der = parse_certs(&token.cert_pem, "token").unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(!eku.any && !eku.server_auth && !eku.client_auth, "{eku:?}");
        assert_eq!(
            eku.other
                .iter()
                .map(|o| o.to_id_string())
                .collect::<Vec<_>>(),
            ["1.3.6.1.5.5.7.3.36"]
        );
    }

    #[test]
    fn user_material_must_match() {
        let ca = generate_ca("ca").unwrap();
        let a = issue(
            &ca.cert_pem,
            &ca.key_pem,
            "a",
            &["a.example".into()],
            Usage::Server,
        )
        .unwrap();
        let b = issue(
            &ca.cert_pem,
            &ca.key_pem,
            "b",
            &["b.example".into()],
            Usage::Server,
        )
        .unwrap();
        assert!(TlsMaterial::new(
            a.cert_pem.clone(),
            a.key_pem.clone(),
            Some(ca.cert_pem.clone())
        )
        .is_ok());
        let err = TlsMaterial::new(a.cert_pem.clone(), b.key_pem.clone(), None).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(TlsMaterial::new("garbage".into(), a.key_pem.clone(), None).is_err());
        assert!(TlsMaterial::new(a.cert_pem, Secret::new("garbage".into()), None).is_err());
    }

    #[test]
    fn errors_never_contain_the_key() {
        let ca = generate_ca("ca").unwrap();
        let a = issue(
            &ca.cert_pem,
            &ca.key_pem,
            "a",
            &["a.example".into()],
            Usage::Server,
        )
        .unwrap();
        let b = issue(
            &ca.cert_pem,
            &ca.key_pem,
            "b",
            &["b.example".into()],
            Usage::Server,
        )
        .unwrap();
        let err = TlsMaterial::new(a.cert_pem, b.key_pem.clone(), None).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }
}
