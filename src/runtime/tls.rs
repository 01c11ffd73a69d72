//! TLS settings: loading certificates, keys and CAs from PEM files and building rustls configurations.
//!
//! One place for every TLS endpoint the node has: the client listener (`--tls-listen`) uses `server_config`;
//! peer links (`--tls-cluster`) use `cluster_configs`, mutual TLS under the cluster CA: the accepting side is
//! `server_config` with `ClientAuth::Yes`, the connecting side presents the node's own certificate and verifies
//! the acceptor's chain against the CA with `ClusterCertVerifier`. Files are read once, when the configuration
//! is built (at start), so a missing or malformed file is an error before anything listens. The crypto provider
//! is rustls's `ring` one, passed explicitly: nothing depends on a process default. Both configurations offer
//! TLS 1.3 and 1.2 (rustls's safe defaults); two Shoal nodes always agree on 1.3.
//!
//! Names on peer links: peers dial the IP address a node advertises, and a certificate is not checked against
//! it. A peer certificate is valid when its chain verifies against the cluster CA (and it is in its validity
//! period, and its key signed the handshake), on both sides, as Redis does for its cluster bus by default and as
//! client certificates always are. So the CA in `--tls-ca-cert-file` should sign only the cluster's nodes (and,
//! with `--tls-listen`, its clients): whoever holds a certificate it signed passes TLS as any node. Which node a
//! peer is, is then proven by the peer handshake under the cluster secret (it binds the address dialed). A node
//! presents the same certificate on both ends of its links, so one with an extended key usage needs both
//! serverAuth and clientAuth (webpki requires each only if the extension is present).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::verify_server_cert_signed_by_trust_anchor;
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::{ParsedCertificate, VerifierBuilderError, WebPkiClientVerifier};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// Why a TLS configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("reading the {what} {}: {source}", path.display())]
    Pem {
        /// Which file it was (certificate, key, CA certificate).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: pem::Error,
    },
    /// A certificate or CA file that holds no certificate.
    #[error("the {what} {} holds no PEM certificate", path.display())]
    NoCertificate {
        /// Which file it was.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// Client certificates are required or optional but no CA to verify them was given.
    #[error("--tls-auth-clients {0} needs --tls-ca-cert-file, the CA that signs client certificates")]
    NoClientCa(ClientAuth),
    /// rustls refused the certificate, key or CA.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built from the CA.
    #[error("TLS client certificate verifier: {0}")]
    Verifier(#[from] VerifierBuilderError),
}

/// Whether clients must present a certificate signed by the CA (Redis's `tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    No,
    /// A client without a valid certificate is refused in the handshake (Redis's default).
    #[default]
    Yes,
    /// A certificate is asked for and verified if sent; a client may also connect without one.
    Optional,
}

impl FromStr for ClientAuth {
    type Err = String;

    fn from_str(text: &str) -> Result<ClientAuth, String> {
        match text.to_ascii_lowercase().as_str() {
            "no" => Ok(ClientAuth::No),
            "yes" => Ok(ClientAuth::Yes),
            "optional" => Ok(ClientAuth::Optional),
            other => Err(format!("{other:?}: expected no, yes or optional")),
        }
    }
}

impl std::fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientAuth::No => "no",
            ClientAuth::Yes => "yes",
            ClientAuth::Optional => "optional",
        })
    }
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain, leaf first (`--tls-cert-file`).
    pub cert_file: PathBuf,
    /// The leaf's private key, PKCS#8, PKCS#1 or SEC1 (`--tls-key-file`).
    pub key_file: PathBuf,
}

/// The rustls provider every configuration here uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The certificates in the PEM file at `path`; at least one.
pub fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem { what, path: path.to_path_buf(), source };
    let certs = CertificateDer::pem_file_iter(path).map_err(pem_error)?.collect::<Result<Vec<_>, _>>();
    let certs = certs.map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what, path: path.to_path_buf() });
    }
    Ok(certs)
}

/// The first private key in the PEM file at `path`.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem { what: "key", path: path.to_path_buf(), source })
}

/// A root store holding every certificate in the CA file at `path`.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "CA certificate")? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// The configuration of a TLS listener presenting `identity`, verifying client certificates against the CA at
/// `ca_file` as `auth` says.
pub fn server_config(
    identity: &CertFiles,
    ca_file: Option<&Path>,
    auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match (auth, ca_file) {
        (ClientAuth::No, _) => builder.with_no_client_auth(),
        (_, None) => return Err(TlsError::NoClientCa(auth)),
        (ClientAuth::Yes | ClientAuth::Optional, Some(ca)) => {
            let roots = Arc::new(load_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if auth == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let certs = load_certs(&identity.cert_file, "certificate")?;
    let key = load_key(&identity.key_file)?;
    Ok(Arc::new(builder.with_single_cert(certs, key)?))
}

/// The configuration of a TLS client that trusts the CA at `ca_file` and, given an identity, presents it (mutual
/// TLS, as peer links will use).
pub fn client_config(ca_file: &Path, identity: Option<&CertFiles>) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = builder.with_root_certificates(load_roots(ca_file)?);
    let config = match identity {
        Some(id) => {
            builder.with_client_auth_cert(load_certs(&id.cert_file, "certificate")?, load_key(&id.key_file)?)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The files of mutual TLS on peer links (`--tls-cluster`): this node's certificate and key, and the cluster CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTlsFiles {
    /// The certificate this node presents on both ends of its peer links, and its key.
    pub identity: CertFiles,
    /// The CA every peer certificate must chain to (`--tls-ca-cert-file`).
    pub ca_cert_file: PathBuf,
}

/// The two ends of a peer link: the acceptor requires a client certificate chained to the cluster CA, the
/// connector presents the node's certificate and accepts an acceptor whose chain verifies against the CA,
/// whatever names the certificate holds (see the module docs).
pub fn cluster_configs(files: &ClusterTlsFiles) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), TlsError> {
    let server = server_config(&files.identity, Some(&files.ca_cert_file), ClientAuth::Yes)?;
    let provider = provider();
    let verifier =
        ClusterCertVerifier { roots: Arc::new(load_roots(&files.ca_cert_file)?), provider: provider.clone() };
    let builder = ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
    let certs = load_certs(&files.identity.cert_file, "certificate")?;
    let key = load_key(&files.identity.key_file)?;
    let client =
        builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_client_auth_cert(certs, key)?;
    Ok((server, Arc::new(client)))
}

/// Verifies a peer acceptor's certificate chain against the cluster CA, as webpki does for any server, but not
/// its name: peers are dialed by IP and identified by the cluster handshake, not by certificate names.
#[derive(Debug)]
struct ClusterCertVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ClusterCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        let algorithms = self.provider.signature_verification_algorithms.all;
        verify_server_cert_signed_by_trust_anchor(&cert, &self.roots, intermediates, now, algorithms)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_parses_redis_names() {
        assert_eq!("yes".parse(), Ok(ClientAuth::Yes));
        assert_eq!("NO".parse(), Ok(ClientAuth::No));
        assert_eq!("optional".parse(), Ok(ClientAuth::Optional));
        assert!("maybe".parse::<ClientAuth>().is_err());
        assert_eq!(ClientAuth::default(), ClientAuth::Yes);
        assert_eq!(ClientAuth::Optional.to_string(), "optional");
    }

    /// A CA as PEM, and a signer for certificates under it.
    fn ca(dir: &Path, file: &str) -> rcgen::Issuer<'static, rcgen::KeyPair> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, file);
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.join(file), params.self_signed(&key).unwrap().pem()).unwrap();
        rcgen::Issuer::new(params, key)
    }

    /// A certificate signed by `issuer` for `sans`, as the files `name.pem` and `name.key`.
    fn leaf(dir: &Path, name: &str, sans: &[&str], issuer: &rcgen::Issuer<'static, rcgen::KeyPair>) -> CertFiles {
        let params = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let files = CertFiles { cert_file: dir.join(format!("{name}.pem")), key_file: dir.join(format!("{name}.key")) };
        std::fs::write(&files.cert_file, params.signed_by(&key, issuer).unwrap().pem()).unwrap();
        std::fs::write(&files.key_file, key.serialize_pem()).unwrap();
        files
    }

    /// A TLS handshake over an in-memory pipe between an acceptor on `server` and a connector on `client` that
    /// dials 127.0.0.1; the protocol version both agreed on, or the first side's error.
    fn handshake(server: &ClusterTlsFiles, client: &ClusterTlsFiles) -> Result<rustls::ProtocolVersion, String> {
        let (server, _) = cluster_configs(server).map_err(|e| e.to_string())?;
        let (_, client) = cluster_configs(client).map_err(|e| e.to_string())?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (near, far) = tokio::io::duplex(64 * 1024);
            let accept = tokio_rustls::TlsAcceptor::from(server).accept(far);
            let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
            let connect = tokio_rustls::TlsConnector::from(client).connect(name, near);
            let (accepted, connected) = tokio::join!(accept, connect);
            let (accepted, connected) = match (accepted, connected) {
                (Ok(a), Ok(c)) => (a, c),
                (a, c) => return Err(format!("acceptor: {:?}; connector: {:?}", a.err(), c.err())),
            };
            let version = connected.get_ref().1.protocol_version().ok_or("no version")?;
            assert_eq!(accepted.get_ref().1.protocol_version(), Some(version));
            Ok(version)
        })
    }

    #[test]
    fn peer_links_verify_the_chain_on_both_ends_but_not_names_and_agree_on_tls13() {
        let dir = std::env::temp_dir().join(format!("shoal-tls-peer-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cluster, other) = (ca(&dir, "ca.pem"), ca(&dir, "other-ca.pem"));
        let files = |identity: CertFiles, ca: &str| ClusterTlsFiles { identity, ca_cert_file: dir.join(ca) };
        let a = files(leaf(&dir, "a", &["127.0.0.1"], &cluster), "ca.pem");
        // No name at all, or a name nobody dials: accepted, the chain is what counts.
        let nameless = files(leaf(&dir, "nameless", &[], &cluster), "ca.pem");
        let elsewhere = files(leaf(&dir, "elsewhere", &["10.9.9.9", "db.example"], &cluster), "ca.pem");
        assert_eq!(handshake(&a, &nameless), Ok(rustls::ProtocolVersion::TLSv1_3));
        assert_eq!(handshake(&nameless, &elsewhere), Ok(rustls::ProtocolVersion::TLSv1_3));
        // A certificate from another CA, even for the dialed IP, fails on the side that checks it.
        let foreign = leaf(&dir, "foreign", &["127.0.0.1"], &other);
        let e = handshake(&files(foreign.clone(), "ca.pem"), &a).unwrap_err();
        assert!(e.contains("connector: Some(") && e.contains("UnknownIssuer"), "the connector refuses it: {e}");
        let e = handshake(&a, &files(foreign, "ca.pem")).unwrap_err();
        assert!(e.contains("acceptor: Some(") && e.contains("UnknownIssuer"), "the acceptor refuses it: {e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_and_empty_files_are_named_errors() {
        let dir = std::env::temp_dir().join(format!("shoal-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a pem file\n").unwrap();
        let missing = dir.join("missing.pem");
        let e = load_certs(&missing, "certificate").unwrap_err().to_string();
        assert!(e.contains("certificate") && e.contains("missing.pem"), "{e}");
        let e = load_certs(&empty, "CA certificate").unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        assert!(load_key(&empty).is_err());
        let files = CertFiles { cert_file: missing.clone(), key_file: missing };
        let e = server_config(&files, None, ClientAuth::Yes).unwrap_err().to_string();
        assert!(e.contains("--tls-ca-cert-file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
