//! A throw-away redis-server for the tests that need a real one.

use super::{skip, wait_until};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// A throw-away redis-server on a free loopback port, killed on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// Settings beyond the port and no persistence (`--requirepass`).
    settings: &'static [&'static str],
}

impl Redis {
    /// A fresh redis-server, or `None` (the test then says why and passes)
    /// where none is installed: `cargo test` runs on a fresh machine; CI
    /// installs redis-server and requires it.
    pub fn start() -> Option<Redis> {
        Redis::start_with(&[])
    }

    /// [`Redis::start`] with more `settings` on its command line.
    pub fn start_with(settings: &'static [&'static str]) -> Option<Redis> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            skip("redis-server (apt-get install redis-server)");
            return None;
        }
        Some(Redis::launch(settings))
    }

    pub fn launch(settings: &'static [&'static str]) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            child: None,
            port,
            settings,
        };
        r.restart();
        r
    }

    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(self.settings)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        wait_until("redis-server answers", || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
