//! A throw-away `redis-server` for the tests that need one: on a free
//! loopback port, no persistence, killed on drop.

use super::{skip, wait_until};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// A fresh redis-server, or `None` (the test then says why and passes)
    /// where none is installed: `cargo test` runs on a fresh machine; CI
    /// installs redis-server and requires it.
    pub fn start() -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            skip("redis-server (apt-get install redis-server)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let addr = format!("127.0.0.1:{port}");
        let r = RedisServer { child, port };
        wait_until("redis-server answers", || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        Some(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
