//! Real `nats-server` processes for integration tests, plus a deadline poller.
//!
//! Every [`NatsServer`] is a separate single-node JetStream server on free
//! loopback ports, with its own generated config file, store directory and log
//! file inside a private [`tempfile::TempDir`]. Nothing has to be running
//! beforehand; the binary comes from [`nats_server_binary`].
//!
//! Every server has the repository's users and permissions
//! (`nats-permissions.conf`, see [`APP_USER`], [`INSPECTOR_USER`]) plus an
//! unrestricted [`HARNESS_USER`] for the tests' own probes.
//!
//! Readiness is always polled against a deadline (TCP connect to the client
//! port AND `GET /healthz?js-enabled-only=true` answering 200 on the
//! monitoring port), never a fixed sleep.
//!
//! Not every test binary uses every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Env var naming the nats-server binary (set by `scripts/test.sh`).
pub const NATS_SERVER_ENV: &str = "ORDERFLOW_NATS_SERVER";

/// How long [`NatsServer::start`] / [`NatsServer::restart`] wait for readiness.
pub const READY_DEADLINE: Duration = Duration::from_secs(10);

/// Attempts at picking fresh ports when a start loses a port race.
const START_ATTEMPTS: usize = 5;

/// Interval between polls in [`eventually`] and the readiness loop.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A NATS user of the generated configs: the repo's `orderflow` and
/// `inspector` (with the permissions of `nats-permissions.conf`) and the
/// harness's own unrestricted `harness`, which tests use to look around.
#[derive(Clone, Copy, Debug)]
pub struct NatsUser {
    /// The user name.
    pub name: &'static str,
    /// Its password: test-only, valid for the harness's servers alone.
    pub password: &'static str,
}

/// The app's least-privilege user; nodes in tests connect as it.
pub const APP_USER: NatsUser = NatsUser {
    name: "orderflow",
    password: "orderflow-test-password",
};

/// The read-only operator user.
pub const INSPECTOR_USER: NatsUser = NatsUser {
    name: "inspector",
    password: "inspector-test-password",
};

/// Unrestricted; only the harness and tests' own probes use it.
pub const HARNESS_USER: NatsUser = NatsUser {
    name: "harness",
    password: "harness-test-password",
};

/// The nats-server binary used by the harness.
///
/// `$ORDERFLOW_NATS_SERVER` if set, else `<CARGO_MANIFEST_DIR>/.tools/bin/nats-server`
/// if it exists; otherwise panics and says how to install it.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(NATS_SERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{NATS_SERVER_ENV}={} does not point to a file; run scripts/install-nats-server.sh \
             (or unset {NATS_SERVER_ENV} to use .tools/bin/nats-server)",
            path.display()
        );
        return path;
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/nats-server");
    if local.is_file() {
        return local;
    }
    panic!(
        "nats-server not found: {NATS_SERVER_ENV} is unset and {} does not exist. \
         Run scripts/install-nats-server.sh (or use scripts/test.sh, which does it for you).",
        local.display()
    );
}

/// A currently free TCP port on 127.0.0.1 (bind port 0, read it, release it).
///
/// Another process can take the port before it is used again; [`NatsServer::start`]
/// detects that and retries with new ports.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to pick a free port")
}

/// Polls `f` every ~25 ms until it yields `Some`, and returns the value.
///
/// Panics with `what` once `deadline` has passed; a single call of `f` that
/// hangs past the deadline counts as a timeout too. The deadline is measured
/// in wall-clock time, but each attempt is bounded by a tokio timer, so do not
/// combine this with a paused tokio clock while `f` waits on real I/O.
pub async fn eventually<F, Fut, T>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_sub(start.elapsed());
        match tokio::time::timeout(remaining.max(POLL_INTERVAL), f()).await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(_) => panic!(
                "timed out after {deadline:?} waiting for: {what} \
                 (attempt {attempts} was still running at the deadline)"
            ),
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for: {what} ({attempts} attempts)");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`eventually`] for a condition: polls until `f` returns `true`.
pub async fn eventually_true<F, Fut>(what: &str, deadline: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(what, deadline, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// [`eventually`] for fallible probes: polls until `f` returns `Ok`, and
/// reports the last error in the panic message.
pub async fn eventually_ok<F, Fut, T, E>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Debug,
{
    let start = Instant::now();
    let mut last_err: Option<E> = None;
    loop {
        let remaining = deadline.saturating_sub(start.elapsed());
        match tokio::time::timeout(remaining.max(POLL_INTERVAL), f()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(e)) => last_err = Some(e),
            Err(_) => panic!(
                "timed out after {deadline:?} waiting for: {what} \
                 (an attempt was still running; previous error: {last_err:?})"
            ),
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for: {what} (last error: {last_err:?})");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Extra configuration for [`NatsServer::start_with`].
#[derive(Clone, Debug, Default)]
pub struct NatsOptions {
    /// Lines added inside the generated `jetstream { ... }` block,
    /// e.g. `"sync_interval: always"`.
    pub jetstream_extra: String,
    /// Lines appended at top level of the generated config,
    /// e.g. `accounts { ... }` or `cluster { ... }`.
    pub extra: String,
    /// Permissions of the harness user, in the config's syntax (e.g.
    /// `{ publish: { deny: ["x.>"] } }`); unrestricted when empty.
    pub harness_permissions: String,
}

impl NatsOptions {
    /// The DURABLE profile of `nats-durable.conf`: fsync before every ack.
    pub fn durable() -> Self {
        NatsOptions {
            jetstream_extra: "sync_interval: always".to_owned(),
            ..Default::default()
        }
    }
}

/// A single-node JetStream `nats-server` child process owned by a test.
///
/// Dropping it kills the process (SIGKILL) and deletes its directory.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    monitor_port: u16,
    binary: PathBuf,
    config_path: PathBuf,
    store_dir: PathBuf,
    log_path: PathBuf,
    options: NatsOptions,
    /// Unique per instance (derived from the temp dir), checked in the INFO
    /// line so that readiness never mistakes another process on our port.
    server_name: String,
    /// Length of the log file when the current process was spawned.
    log_offset: u64,
    // Last field: dropped after the process has been killed in `Drop`.
    dir: TempDir,
}

impl NatsServer {
    /// Starts a fresh server (empty store) and waits until it is ready.
    pub async fn start() -> NatsServer {
        Self::start_with(NatsOptions::default()).await
    }

    /// Like [`NatsServer::start`], with extra config text.
    pub async fn start_with(options: NatsOptions) -> NatsServer {
        let binary = nats_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("orderflow-nats-")
            .tempdir()
            .expect("create temp dir for nats-server");
        let store_dir = dir.path().join("jetstream");
        fs::create_dir_all(&store_dir).expect("create JetStream store dir");
        let log_path = dir.path().join("nats-server.log");
        let config_path = dir.path().join("nats-server.conf");
        let server_name = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "orderflow-nats".to_owned());

        let mut server = NatsServer {
            child: None,
            port: 0,
            monitor_port: 0,
            binary,
            config_path,
            store_dir,
            log_path,
            options,
            server_name,
            log_offset: 0,
            dir,
        };
        let mut attempt = 1;
        loop {
            server.pick_ports();
            match server.spawn_and_wait_ready().await {
                Ok(()) => return server,
                // Another process took a port between `free_port` and the bind.
                Err(_) if server.lost_port_race() && attempt < START_ATTEMPTS => {
                    server.kill_and_wait();
                    eprintln!("nats-server start attempt {attempt}/{START_ATTEMPTS} lost a port race; retrying");
                    attempt += 1;
                }
                Err(failure) => panic!("{failure}"),
            }
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Client port (stable across [`NatsServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// HTTP monitoring port (`/varz`, `/jsz`, `/healthz`).
    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }

    /// `http://127.0.0.1:<monitor_port>`.
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// JetStream store directory (kept across stop/restart).
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The generated config file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The server's combined stdout/stderr log (appended to across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// Whether the server process is running (false after [`NatsServer::stop`]).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A connected client with every permission. Panics (with the server log
    /// tail) if it cannot connect.
    pub async fn client(&self) -> async_nats::Client {
        self.client_as(HARNESS_USER).await
    }

    /// A client connected as `user`. Panics (with the server log tail) if it cannot connect.
    pub async fn client_as(&self, user: NatsUser) -> async_nats::Client {
        match async_nats::ConnectOptions::new()
            .name("orderflow-test")
            .connection_timeout(Duration::from_secs(5))
            .user_and_password(user.name.to_owned(), user.password.to_owned())
            .connect(self.url())
            .await
        {
            Ok(client) => client,
            Err(e) => panic!(
                "connect to {}: {e}\n--- nats-server log tail ({}) ---\n{}",
                self.url(),
                self.log_path.display(),
                self.log_tail(40)
            ),
        }
    }

    /// A JetStream context over a new [`NatsServer::client`].
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    /// Kills the server abruptly (SIGKILL, like a crash) and waits for it to
    /// exit. The store directory is kept; [`NatsServer::restart`] brings it back.
    pub async fn stop(&mut self) {
        self.kill_and_wait();
    }

    /// Graceful shutdown (SIGTERM), waiting up to 10 s before falling back to
    /// SIGKILL. The store directory is kept.
    pub async fn stop_graceful(&mut self) {
        let Some(pid) = self.pid() else { return };
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.is_running() && Instant::now() < deadline {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        self.kill_and_wait();
    }

    /// Starts the server again on the same ports with the same store (stopping
    /// it first if it is still running) and waits until it is ready.
    pub async fn restart(&mut self) {
        self.kill_and_wait();
        // The client port may briefly still be held by a dying socket or, very
        // rarely, grabbed by another process: retry within the deadline.
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            match self.spawn_and_wait_ready().await {
                Ok(()) => return,
                Err(failure) => {
                    self.kill_and_wait();
                    if !self.lost_port_race() || Instant::now() >= deadline {
                        panic!("restart: {failure}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Rewrites the config with `options` (same ports and store) and has
    /// the running server reload it; returns once the server says it did.
    pub async fn reload_with(&mut self, options: NatsOptions) {
        self.options = options;
        self.write_config();
        let pid = self.pid().expect("a running nats-server to reload");
        let logged_before = fs::metadata(&self.log_path).map(|m| m.len()).unwrap_or(0);
        let status = Command::new(&self.binary)
            .arg("--signal")
            .arg(format!("reload={pid}"))
            .status()
            .expect("run nats-server --signal reload");
        assert!(status.success(), "nats-server --signal reload={pid}: {status}");
        let log_path = self.log_path.clone();
        eventually_true("nats-server to reload its config", READY_DEADLINE, || {
            let log = fs::read(&log_path).unwrap_or_default();
            let since = log.get(logged_before as usize..).unwrap_or_default().to_vec();
            async move { String::from_utf8_lossy(&since).contains("Reloaded server configuration") }
        })
        .await;
    }

    /// Chooses fresh free ports and rewrites the config file for them.
    fn pick_ports(&mut self) {
        self.port = free_port();
        self.monitor_port = free_port();
        while self.monitor_port == self.port {
            self.monitor_port = free_port();
        }
        self.write_config();
    }

    /// Writes the config file for the current ports and options.
    fn write_config(&self) {
        let config = render_config(
            &self.server_name,
            self.port,
            self.monitor_port,
            &self.store_dir,
            &self.options,
        );
        fs::write(&self.config_path, config).expect("write nats-server config");
    }

    async fn spawn_and_wait_ready(&mut self) -> Result<(), String> {
        self.spawn()?;
        self.wait_ready(READY_DEADLINE).await
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("open {}: {e}", self.log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| format!("clone log file handle: {e}"))?;
        writeln!(&log, "=== harness: starting {} ===", self.binary.display()).ok();
        self.log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config_path)
            .args(["-a", "127.0.0.1"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self, deadline: Duration) -> Result<(), String> {
        let start = Instant::now();
        let client_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let monitor_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.monitor_port));
        let expected_name = self.server_name.clone();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(self.failure(&format!("nats-server exited during startup ({status})")));
            }
            let name = expected_name.clone();
            let probe = tokio::task::spawn_blocking(move || probe_ready(client_addr, monitor_addr, &name))
                .await
                .unwrap_or_else(|e| Err(format!("probe task failed: {e}")));
            let last = match probe {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if start.elapsed() >= deadline {
                return Err(self.failure(&format!(
                    "nats-server not ready after {deadline:?} (last probe: {last})"
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn failure(&self, what: &str) -> String {
        format!(
            "{what}\n  url: {}\n  monitor: {}\n  config: {}\n--- nats-server log tail ({}) ---\n{}",
            self.url(),
            self.monitor_url(),
            self.config_path.display(),
            self.log_path.display(),
            self.log_tail(40)
        )
    }

    /// Whether the current process failed because a port was already taken.
    fn lost_port_race(&self) -> bool {
        let log = fs::read(&self.log_path).unwrap_or_default();
        let since_spawn = log.get(self.log_offset as usize..).unwrap_or_default();
        String::from_utf8_lossy(since_spawn).contains("address already in use")
    }

    fn kill_and_wait(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // SIGKILL and reap before the TempDir (the last field) is removed.
        self.kill_and_wait();
    }
}

impl Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("url", &self.url())
            .field("monitor", &self.monitor_url())
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Quotes a string for the NATS config format.
fn conf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The repository's `nats-permissions.conf`, as the server configs include it.
fn repository_permissions() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("nats-permissions.conf");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The users block: the repo's two users with their repo permissions, and the harness's.
fn render_users(options: &NatsOptions) -> String {
    let user = |u: NatsUser, permissions: &str| {
        format!(
            "    {{ user: {}, password: {}{permissions} }}\n",
            conf_string(u.name),
            conf_string(u.password)
        )
    };
    let harness = match options.harness_permissions.as_str() {
        "" => String::new(),
        p => format!(", permissions: {p}"),
    };
    format!(
        "{permissions}\nauthorization {{\n  users: [\n{app}{inspector}{harness}  ]\n}}\n",
        permissions = repository_permissions(),
        app = user(APP_USER, ", permissions: $ORDERFLOW_PERMISSIONS"),
        inspector = user(INSPECTOR_USER, ", permissions: $INSPECTOR_PERMISSIONS"),
        harness = user(HARNESS_USER, &harness),
    )
}

fn render_config(server_name: &str, port: u16, monitor_port: u16, store_dir: &Path, options: &NatsOptions) -> String {
    format!(
        "# generated by tests/support/nats.rs\n\
         server_name: {name}\n\
         listen: \"127.0.0.1:{port}\"\n\
         http: \"127.0.0.1:{monitor_port}\"\n\
         max_payload: 1MB\n\
         jetstream {{\n\
         \x20   store_dir: {store}\n\
         \x20   max_memory_store: 256MB\n\
         \x20   max_file_store: 1GB\n\
         {jetstream_extra}\n\
         }}\n\
         {users}\n\
         {extra}\n",
        name = conf_string(server_name),
        store = conf_string(&store_dir.to_string_lossy()),
        jetstream_extra = options.jetstream_extra,
        users = render_users(options),
        extra = options.extra,
    )
}

/// One readiness probe: the client port must accept a TCP connection and greet
/// with an `INFO` line naming our server, and
/// `GET /healthz?js-enabled-only=true` on the monitoring port must answer 200.
pub(super) fn probe_ready(client: SocketAddr, monitor: SocketAddr, server_name: &str) -> Result<(), String> {
    let timeout = Duration::from_millis(500);
    let mut nats = TcpStream::connect_timeout(&client, timeout).map_err(|e| format!("connect {client}: {e}"))?;
    nats.set_read_timeout(Some(timeout)).ok();
    let mut info = Vec::new();
    let mut byte = [0u8; 1];
    while !info.ends_with(b"\n") && info.len() < 64 * 1024 {
        match nats.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => info.push(byte[0]),
            Err(e) => return Err(format!("read INFO from {client}: {e}")),
        }
    }
    let info = String::from_utf8_lossy(&info);
    let want = format!("\"server_name\":\"{server_name}\"");
    if !info.starts_with("INFO ") || !info.contains(&want) {
        return Err(format!("{client} is not our nats-server (greeting {:?})", info.trim()));
    }
    drop(nats);
    let mut http = TcpStream::connect_timeout(&monitor, timeout).map_err(|e| format!("connect {monitor}: {e}"))?;
    http.set_read_timeout(Some(timeout)).ok();
    http.set_write_timeout(Some(timeout)).ok();
    http.write_all(b"GET /healthz?js-enabled-only=true HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send healthz request: {e}"))?;
    let mut response = Vec::new();
    http.read_to_end(&mut response)
        .map_err(|e| format!("read healthz response: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let status_line = response.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("healthz answered {:?}", response.trim()))
    }
}

pub(super) fn log_tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    match File::open(path) {
        Ok(mut f) => {
            let _ = f.read_to_string(&mut text);
        }
        Err(e) => return format!("(cannot read {}: {e})", path.display()),
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
