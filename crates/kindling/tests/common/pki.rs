//! A test PKI (rcgen): a CA, a server certificate for 127.0.0.1 and localhost, a client
//! certificate from that CA, and a client certificate from another CA.

/// PEM texts.
pub struct Pki {
    pub ca_pem: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    pub other_cert: String,
    pub other_key: String,
}

pub fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let ca_params = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let ca =
        CertifiedIssuer::self_signed(ca_params("kindling test CA"), KeyPair::generate().unwrap())
            .unwrap();
    let other_ca =
        CertifiedIssuer::self_signed(ca_params("another CA"), KeyPair::generate().unwrap())
            .unwrap();
    let leaf =
        |sans: Vec<String>, usage: ExtendedKeyUsagePurpose, issuer: &rcgen::Issuer<'_, KeyPair>| {
            let mut p = CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(DnType::CommonName, "leaf");
            p.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
    let (server_cert, server_key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        &ca,
    );
    let (client_cert, client_key) = leaf(
        vec!["operator".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        &ca,
    );
    let (other_cert, other_key) = leaf(
        vec!["intruder".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        &other_ca,
    );
    Pki {
        ca_pem: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
        other_cert,
        other_key,
    }
}

impl Pki {
    /// Writes every PEM into `dir`: `ca.pem`, `server.pem`, `server.key`, `client.pem`,
    /// `client.key`, `other.pem`, `other.key`.
    pub fn write(&self, dir: &std::path::Path) {
        for (name, text) in [
            ("ca.pem", &self.ca_pem),
            ("server.pem", &self.server_cert),
            ("server.key", &self.server_key),
            ("client.pem", &self.client_cert),
            ("client.key", &self.client_key),
            ("other.pem", &self.other_cert),
            ("other.key", &self.other_key),
        ] {
            std::fs::write(dir.join(name), text).expect("write PEM");
        }
    }
}
