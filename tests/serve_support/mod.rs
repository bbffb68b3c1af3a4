//! Shared by the tests that drive the `serve` example over HTTP: finding the built binary,
//! starting it as a child process, and a raw HTTP/1.1 client over `TcpStream`.
//!
//! `cargo test` builds the examples before it runs the tests; `cargo test --test NAME` alone
//! does not, so build the example first then (`cargo build --example serve`).

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The reference's worked-example data.
pub const DATA: &str = "tests/data/contract/tasks.jsonl";
/// How long a child may take to print its `listening on` line (debug builds load slowly).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `serve` binary cargo built beside this test (`target/<profile>/examples/serve`).
/// `OTA_SERVE_BIN` overrides it (to measure a release build, say).
pub fn serve_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("OTA_SERVE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut dir = exe
        .parent()
        .expect("the test binary's folder")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir
        .join("examples")
        .join(format!("serve{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test` (which builds the examples) or `cargo build --example serve`",
        bin.display()
    );
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    for source in ["examples/serve/main.rs", "examples/serve/app.rs"] {
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
        if let (Some(built), Some(edited)) = (modified(&bin), modified(&source)) {
            assert!(
                built >= edited,
                "{} is older than {}: rebuild it (`cargo build --example serve`)",
                bin.display(),
                source.display()
            );
        }
    }
    bin
}

/// A running `serve`; killed when dropped, so a failing test leaves no child behind.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// The lines printed before `listening on`.
    pub banner: Vec<String>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(serve_binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_in, lines) = mpsc::channel();
        // Reads stdout to the end, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_in.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            banner: Vec::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => panic!(
                    "serve {args:?} printed no `listening on` line ({e}); printed {:?}",
                    server.banner
                ),
            };
            if let Some(rest) = line.strip_prefix("listening on http://") {
                server.addr = rest
                    .trim()
                    .parse()
                    .expect("a socket address after `listening on`");
                return server;
            }
            server.banner.push(line);
        }
    }

    /// Starts on a free loopback port with the reference's data file.
    pub fn with_data(extra: &[&str]) -> Server {
        let mut args = vec!["--addr", "127.0.0.1:0", "--data", DATA];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends `signal` (`INT`, `TERM`) and waits for the exit.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.pid()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for serve") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop on SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, target: &str) -> Reply {
        self.request("GET", target, &[], b"")
    }

    pub fn post_form(&self, target: &str, body: &str) -> Reply {
        self.request(
            "POST",
            target,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    }

    /// One request on a fresh connection (`Connection: close`).
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        self.send_raw(&raw)
    }

    pub fn send_raw(&self, raw: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(self.addr).expect("connect to serve");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("set a read timeout");
        // The server may answer (413) and close before reading a long body: a failed write
        // is not the test's verdict, the answer is.
        let _ = stream.write_all(raw);
        let mut response = Vec::new();
        if let Err(e) = stream.read_to_end(&mut response) {
            assert!(!response.is_empty(), "no answer from serve: {e}");
        }
        Reply::parse(&response)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn parse(raw: &[u8]) -> Reply {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&raw[..split]).expect("ASCII response head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("a status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let body = raw[split + 4..].to_vec();
        let reply = Reply {
            status,
            headers,
            body,
        };
        if let Some(len) = reply.header("content-length") {
            assert_eq!(
                len.parse::<usize>().ok(),
                Some(reply.body.len()),
                "body length"
            );
        }
        reply
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json;charset=utf-8"),
            "every answer is JSON"
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The answer's error code (`code` / `Code`), `""` on success.
    pub fn code(&self) -> String {
        let json = self.json();
        let code = json.get("code").or_else(|| json.get("Code"));
        code.and_then(Value::as_str).expect("a code").to_owned()
    }

    /// The task ids of a camelCase success answer, in order.
    pub fn task_ids(&self) -> Vec<String> {
        let json = self.json();
        assert_eq!(json["success"], Value::Bool(true), "{json}");
        json["data"]["simpleOTATaskInfo"]
            .as_array()
            .expect("a task list")
            .iter()
            .map(|t| t["taskId"].as_str().expect("a taskId").to_owned())
            .collect()
    }

    /// The body with its request id replaced by `R`, after checking it is a fresh UUID.
    pub fn body_without_request_id(&self) -> String {
        let (text, id) = strip_request_id(&self.body);
        assert!(is_uuid(&id), "request id {id:?} is not a fresh UUID");
        text
    }
}

/// `body` with the value of `requestId` / `RequestId` replaced by `R`, and that value.
pub fn strip_request_id(body: &[u8]) -> (String, String) {
    let text = std::str::from_utf8(body).expect("UTF-8 body");
    for key in ["\"requestId\":\"", "\"RequestId\":\""] {
        if let Some(at) = text.find(key) {
            let start = at + key.len();
            let len = text[start..].find('"').expect("a closed request id");
            let id = text[start..start + len].to_owned();
            return (format!("{}R{}", &text[..start], &text[start + len..]), id);
        }
    }
    panic!("no request id in {text}");
}

pub fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// One keep-alive HTTP/1.1 connection: requests one after another, each answer read by its
/// `Content-Length`.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
    host: String,
}

impl KeepAlive {
    /// Connects to `server`.
    pub fn connect(server: &Server) -> KeepAlive {
        KeepAlive::connect_to(server.addr)
    }

    /// Connects to a server at `addr` (one hosted in the test process, say).
    pub fn connect_to(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect(addr).expect("connect to serve");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("set a read timeout");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        KeepAlive {
            reader: BufReader::new(stream),
            host: addr.to_string(),
        }
    }

    /// `GET target` on this connection.
    pub fn get(&mut self, target: &str) -> Reply {
        let request = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send a request");
        let mut head = Vec::new();
        loop {
            let before = head.len();
            self.reader
                .read_until(b'\n', &mut head)
                .expect("read the answer's head");
            assert!(head.len() > before, "the connection closed mid-answer");
            if head.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        let text = std::str::from_utf8(&head).expect("ASCII response head");
        let length = text
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .expect("a Content-Length");
        let mut raw = head;
        let start = raw.len();
        raw.resize(start + length, 0);
        self.reader
            .read_exact(&mut raw[start..])
            .expect("read the answer's body");
        Reply::parse(&raw)
    }
}
