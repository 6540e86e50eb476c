//! The gateway in-process for tests: a test PKI (the city's device CA, the gateway's server
//! certificate, device client certificates), the UiTPAS stand-in, a configuration file
//! read by `Config::load`, and devices that talk to it over real mutual TLS.

// Each test binary uses part of this harness; set-up failures must stop the test loudly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use beid_gateway::{serve, Config, Gateway};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uitpas_standin::{StandIn, CLIENT_SECRET, ORGANIZER_ID};

pub const USE_CASE: &str = "uitpas-kansentarief";

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A CA and what it issued, as PEM files in `dir`.
pub struct Pki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Test City Device CA");
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("device-ca.pem"), ca.pem()).unwrap();
        let pki = Self {
            ca,
            ca_key,
            dir: dir.to_owned(),
        };
        pki.issue(
            "server",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        pki
    }

    /// `<name>.pem` and `<name>.key`, issued by the CA, CN = first name.
    pub fn issue(
        &self,
        name: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    pub fn ca_bundle(&self) -> PathBuf {
        self.dir.join("device-ca.pem")
    }
}

/// The gateway's configuration for `standin`, with `extra` appended.
pub fn config_text(standin: &StandIn, rate: (u32, u32), extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ncert = \"server.pem\"\nkey = \"server.key\"\nclient_ca = \"device-ca.pem\"\n\
         rate_limit_per_minute = {}\nrate_limit_burst = {}\n\n\
         [audit]\nlog = \"audit.jsonl\"\nsecret_file = \"audit.key\"\n\n\
         [uitpas]\napi_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"uitpas-secret\"\n\
         organizer_id = \"{ORGANIZER_ID}\"\nca_bundle = \"uitpas-ca.pem\"\ntimeout_ms = 1000\n\n\
         [[use_cases]]\nid = \"{USE_CASE}\"\nsources = [\"uitpas\"]\n\n{extra}",
        rate.0,
        rate.1,
        standin.api_url(),
        standin.token_url(),
        uitpas_standin::CLIENT_ID,
    )
}

/// Writes the files the configuration names (besides the PKI).
pub fn write_uitpas_files(dir: &Path, standin: &StandIn) {
    let secret = dir.join("uitpas-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::write(dir.join("uitpas-ca.pem"), standin.ca_pem()).unwrap();
}

/// A running gateway with its stand-in.
pub struct Harness {
    pub standin: StandIn,
    pub gateway: Gateway,
    pub url: String,
    pub pki: Pki,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// With `extra` appended to the configuration. Returns once UiTPAS permissions are read.
    pub async fn start_with(extra: &str) -> Self {
        Self::start_rated((600, 50), extra).await
    }

    /// With this rate limit per device (per minute, burst).
    pub async fn start_rated(rate: (u32, u32), extra: &str) -> Self {
        install_crypto();
        let standin = StandIn::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        write_uitpas_files(dir.path(), &standin);
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, config_text(&standin, rate, extra)).unwrap();
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let gateway = Gateway::build(&config).unwrap();
        assert!(
            gateway.refresh_permissions().await,
            "the stand-in's permissions were not read"
        );
        // The gateway's own first reading too (its background task), so that no test's
        // knob reaches it half-way.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while standin.permission_calls() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "no background reading"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, &gateway, async {
            let _ = stopped.await;
        }));
        Self {
            standin,
            gateway,
            url,
            pki,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A device with a client certificate whose CN is `cn`.
    pub fn device(&self, cn: &str) -> Device {
        let (cert, key) = self.pki.issue(
            &format!("device-{cn}"),
            &[cn],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let http = beid_gateway::tls::http_client(
            Some(&self.pki.ca_bundle()),
            Some((&cert, &key)),
            Duration::from_secs(10),
        )
        .unwrap();
        Device {
            http,
            url: self.url.clone(),
            id: cn.to_owned(),
        }
    }

    pub fn audit_log(&self) -> String {
        self.gateway.flush_audit();
        std::fs::read_to_string(self.dir.path().join("audit.jsonl")).unwrap()
    }

    /// Stops serving and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// A device talking to the gateway.
pub struct Device {
    pub http: reqwest::Client,
    pub url: String,
    pub id: String,
}

impl Device {
    /// `POST /v1/eligibility-checks` for `national_number`, with this device's id.
    pub async fn check(&self, national_number: &str) -> (u16, Value) {
        self.check_as(national_number, USE_CASE, &self.id).await
    }

    pub async fn check_as(
        &self,
        national_number: &str,
        use_case: &str,
        device_id: &str,
    ) -> (u16, Value) {
        let request_id = uuid::Uuid::new_v4();
        let body = json!({"requestId": request_id, "useCase": use_case, "nationalNumber": national_number,
            "channel": "counter", "deviceId": device_id});
        let (status, answer) = self.post("/v1/eligibility-checks", &body).await;
        if status == 200 {
            assert_eq!(
                answer["requestId"],
                request_id.to_string(),
                "requestId echoed"
            );
        }
        (status, answer)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }
}

/// Runs the `beid-gateway` binary `binary` with `args` (ending in `--config FILE`) and
/// `RUST_LOG` set to `log_filter` (or unset); returns the child and the URL it prints once
/// it serves. The caller owns the child (and waits for it); a failed start stops it here.
#[allow(clippy::zombie_processes)] // A panic while reading its first line ends the test run.
pub fn spawn_binary(
    binary: &str,
    args: &[&std::ffi::OsStr],
    log_filter: Option<&str>,
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut command = std::process::Command::new(binary);
    match log_filter {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let mut child = command
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the gateway exited before serving");
        }
        if let Some(address) = line.trim().strip_prefix("serving on ") {
            return (child, address.to_owned());
        }
    }
}
