//! Redis servers for the state store tests, on 127.0.0.1 only.
//!
//! [`Redis::shared`] gives the server named by `SWITCHYARD_REDIS_URL` when it is set (CI starts one),
//! or else starts a `redis-server` of its own. [`Redis::owned`] always starts its own, which a test
//! can stop and start again on the same port. The tests that use them are
//! `#[ignore = "needs redis-server"]`: `cargo test --all-features -- --include-ignored` runs them
//! (`.ci/run` does, after installing a server). Without a `redis-server` binary such a test fails,
//! saying what is missing. Servers keep nothing on disk and are killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A Redis server for one test.
pub(crate) struct Redis {
    url: String,
    port: u16,
    child: Option<Child>,
    owned: bool,
}

impl Redis {
    /// The CI server when `SWITCHYARD_REDIS_URL` is set, else a server of this test's own.
    #[allow(clippy::disallowed_methods, reason = "tests read the CI server's address")]
    pub(crate) fn shared() -> Self {
        match std::env::var("SWITCHYARD_REDIS_URL") {
            Ok(url) if !url.is_empty() => Self { url, port: 0, child: None, owned: false },
            _ => Self::owned(),
        }
    }

    /// A server of this test's own on a free loopback port.
    ///
    /// # Panics
    /// When no `redis-server` starts: the test needs one (install it, or set `SWITCHYARD_REDIS_URL`).
    pub(crate) fn owned() -> Self {
        for _ in 0..5 {
            let port = free_port();
            let mut redis = Self { url: format!("redis://127.0.0.1:{port}"), port, child: None, owned: true };
            if redis.start() {
                return redis;
            }
        }
        panic!("this test needs a Redis server: install `redis-server` or set SWITCHYARD_REDIS_URL");
    }

    /// The server's URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// A namespace no other test uses, so that tests can share a server.
    pub(crate) fn namespace(&self, test: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("test:{test}:{}:{nanos}:{n}", std::process::id())
    }

    /// Kills the server (owned servers only).
    pub(crate) fn stop(&mut self) {
        assert!(self.owned, "only a server the test started can be stopped");
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server on its port (again), waiting until it answers `PING`.
    pub(crate) fn start(&mut self) -> bool {
        assert!(self.owned, "only a server the test started can be started");
        self.stop();
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = spawned else {
            return false;
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if ping(self.port) {
                return true;
            }
            if let Some(child) = &mut self.child
                && matches!(child.try_wait(), Ok(Some(_)))
            {
                // Exited: the port was taken, most likely.
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }
}

impl Redis {
    /// Freezes the server (`SIGSTOP`): connections stay open and nothing answers, as when a server
    /// hangs. Its data is kept. Owned servers only.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (`SIGCONT`); it then answers what was sent meanwhile.
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    /// The first line of the server's reply to an inline `command` (`ZCARD key` gives `:1`), on a
    /// connection of its own. Owned servers only.
    pub(crate) fn reply(&self, command: &str) -> String {
        assert!(self.owned, "only a server the test started is asked directly");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the test's redis-server");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("set a read timeout");
        stream.write_all(format!("{command}\r\n").as_bytes()).expect("send a command");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            stream.read_exact(&mut byte).expect("read the reply");
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line[..line.len() - 2]).into_owned()
    }

    fn signal(&self, signal: &str) {
        assert!(self.owned, "only a server the test started can be signalled");
        let pid = self.child.as_ref().map(std::process::Child::id).expect("the server is running");
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server must be woken to be killed cleanly.
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
