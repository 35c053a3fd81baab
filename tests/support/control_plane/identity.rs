//! A mock of Linkerd's identity service, from `linkerd2-proxy-api`'s own
//! `identity_server` trait: it checks the token, really signs the CSR with
//! a test CA (as Linkerd's issuer, for the name it was asked for), and
//! lets a test shorten the validity (to see renewal) or answer for another
//! name (to see a bad answer refused).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use linkerd2_proxy_api::identity::identity_server::Identity;
use linkerd2_proxy_api::identity::{CertifyRequest, CertifyResponse};
use ringside::tls::mint::{self, Minted, Validity};
use tonic::{Request, Response, Status};

/// The token the mock takes; a pod's token file holds it.
pub const TOKEN: &str = "a-service-account-token";

/// The identity service; clones share their CA and settings.
#[derive(Clone)]
pub struct IdentityService {
    ca: Arc<Minted>,
    issuing: Arc<Mutex<Issuing>>,
}

/// How the next answers are made, and what was asked.
struct Issuing {
    validity: Duration,
    /// Answer for this name, whatever was asked.
    name: Option<String>,
    /// Certificates issued, in order (DER).
    issued: Vec<Vec<u8>>,
    /// Requests refused (a wrong token, a bad CSR).
    refused: usize,
}

impl IdentityService {
    /// A new CA; certificates valid for an hour.
    pub fn new() -> IdentityService {
        let ca = mint::ca(Validity::days_from_now(1)).unwrap();
        IdentityService {
            ca: Arc::new(ca),
            issuing: Arc::new(Mutex::new(Issuing {
                validity: Duration::from_secs(3600),
                name: None,
                issued: Vec::new(),
                refused: 0,
            })),
        }
    }

    /// The CA's certificate, PEM: the pods' trust anchors.
    pub fn trust_anchors(&self) -> &str {
        &self.ca.cert_pem
    }

    /// A folder per `(folder, name)`, each with `cert.pem` and `key.pem`
    /// issued by this CA for a day, and `trust-anchors.pem`, as
    /// `ringside identity issue` lays them out (for the doubles of meshed
    /// peers that must trust, and be trusted by, the pods it certifies).
    pub fn issue_into(&self, identities: &[(&str, &str)]) -> super::TempDir {
        let dir = super::TempDir::new();
        for (folder, name) in identities {
            let leaf = mint::issue(&self.ca, name, None, Validity::days_from_now(1)).unwrap();
            let out = dir.join(folder);
            std::fs::create_dir_all(&out).unwrap();
            let write = |file: &str, text: &str| std::fs::write(format!("{out}/{file}"), text);
            write("cert.pem", &leaf.cert_pem).unwrap();
            write("key.pem", &leaf.key_pem).unwrap();
            write("trust-anchors.pem", &self.ca.cert_pem).unwrap();
        }
        dir
    }

    pub fn ca(&self) -> &Minted {
        &self.ca
    }

    /// Certificates from now on are valid this long.
    pub fn validity(&self, validity: Duration) {
        self.issuing.lock().unwrap().validity = validity;
    }

    /// Answers for `name` whatever is asked (`None`: what is asked).
    pub fn answer_for(&self, name: Option<&str>) {
        self.issuing.lock().unwrap().name = name.map(str::to_string);
    }

    /// The certificates issued so far, DER, oldest first.
    pub fn issued(&self) -> Vec<Vec<u8>> {
        self.issuing.lock().unwrap().issued.clone()
    }

    pub fn refused(&self) -> usize {
        self.issuing.lock().unwrap().refused
    }

    fn sign(&self, request: &CertifyRequest) -> Result<CertifyResponse, Status> {
        let mut issuing = self.issuing.lock().unwrap();
        if request.token != TOKEN.as_bytes() {
            issuing.refused += 1;
            return Err(Status::unauthenticated("not a token of this cluster"));
        }
        let name = issuing.name.clone().unwrap_or(request.identity.clone());
        let now = SystemTime::now();
        let valid_until = now + issuing.validity;
        let validity = Validity {
            not_before: now - Duration::from_secs(60),
            not_after: valid_until,
        };
        let csr = &request.certificate_signing_request;
        let leaf = match mint::sign_request(&self.ca, csr, &name, validity) {
            Ok(leaf) => leaf,
            Err(err) => {
                issuing.refused += 1;
                return Err(Status::invalid_argument(err.to_string()));
            }
        };
        issuing.issued.push(leaf.clone());
        Ok(CertifyResponse {
            leaf_certificate: leaf,
            intermediate_certificates: Vec::new(),
            valid_until: Some(valid_until.into()),
        })
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn certify(
        &self,
        request: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        self.sign(request.get_ref()).map(Response::new)
    }
}
