//! Certificates made by the tests (rcgen): a CA, and certificates it signs, as PEM files in a fresh directory
//! removed on drop. Shared by the client TLS tests and the TLS peer link tests.
#![allow(dead_code)]

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use shoal::runtime::tls::{CertFiles, ClusterTlsFiles};

/// A CA (`ca.pem`), a server certificate for 127.0.0.1 and localhost (`server.pem`, `server.key`) and a client
/// certificate without names (`client.pem`, `client.key`); `issue` signs more.
pub struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// A fresh CA and its server and client certificates; `tag` keeps directories of tests apart.
    pub fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("shoal-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, format!("shoal test CA {tag}"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        let pki = Pki { dir, issuer: Issuer::new(ca_params, ca_key) };
        pki.issue("server", &["127.0.0.1", "localhost"]);
        pki.issue("client", &[]);
        pki
    }

    /// Sign a certificate named `name` for the subject alternative names `sans` (IPs or DNS names), written as
    /// `name.pem` and `name.key`.
    pub fn issue(&self, name: &str, sans: &[&str]) -> CertFiles {
        let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("shoal test {name}"));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
        self.files(name)
    }

    /// A file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The certificate and key named `name`.
    pub fn files(&self, name: &str) -> CertFiles {
        CertFiles { cert_file: self.path(&format!("{name}.pem")), key_file: self.path(&format!("{name}.key")) }
    }

    /// Peer TLS files: the certificate named `name` and this CA.
    pub fn cluster_files(&self, name: &str) -> ClusterTlsFiles {
        ClusterTlsFiles { identity: self.files(name), ca_cert_file: self.path("ca.pem") }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
