//! A local stand-in for the Hugging Face hub's file-resolve endpoint, on 127.0.0.1, for tests.
//!
//! It answers `GET /{repo}/resolve/{revision}/{file}` as the hub does for what `hf-hub` reads:
//! `Range: bytes=0-0` → 206 with `Content-Range: bytes 0-0/{size}`, an `etag` and `x-repo-commit`;
//! `Range: bytes=N-` → 206 with the rest; no range → 200 with the whole file; anything else 404.
//! It serves a bounded number of requests and stops when dropped. [`HubServer::with_faults`] makes
//! it misbehave first: the given [`Fault`]s answer the first requests, in order, then it behaves.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A way to answer one request badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status (and a short body).
    Status(u16),
    /// Send the headers of the whole file, then this many bytes of it, then close the connection.
    CutAfter(usize),
}

/// The ports [`unused_port`] has handed out in this test process; no [`HubServer`] listens on them.
static UNUSED_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A port of 127.0.0.1 with nobody listening, for tests of an unreachable server. It was free when
/// asked for, and every [`HubServer`] started afterwards in this process avoids it, so a test running
/// beside the caller cannot start its server there (the kernel hands a freed port out again).
pub fn unused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().unwrap().port();
    // Recorded while still bound: a server that gets the port after the drop sees it in the list.
    UNUSED_PORTS.lock().unwrap().push(port);
    port
}

/// A listener on a free port of 127.0.0.1 that [`unused_port`] has not handed out.
fn free_listener() -> TcpListener {
    let mut passed_over = Vec::new();
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        if !UNUSED_PORTS.lock().unwrap().contains(&port) {
            return listener;
        }
        // Held until a good port is found, so the next bind cannot return the same one.
        passed_over.push(listener);
    }
}

pub struct HubServer {
    pub endpoint: String,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl HubServer {
    /// Serves `files`: URL path (`/org/name/resolve/main/file`) → bytes.
    pub fn start(files: HashMap<String, Vec<u8>>) -> Self {
        Self::with_faults(files, Vec::new())
    }

    /// Serves `files`, answering the first requests with `faults`, one each, in order.
    pub fn with_faults(files: HashMap<String, Vec<u8>>, faults: Vec<Fault>) -> Self {
        let listener = free_listener();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let handle = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !stop2.load(Ordering::SeqCst)
                && std::time::Instant::now() < deadline
                && requests2.load(Ordering::SeqCst) < 100
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let k = requests2.fetch_add(1, Ordering::SeqCst);
                        let _ = serve(stream, &files, faults.get(k).copied());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { endpoint, requests, stop, handle: Some(handle) }
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve(stream: TcpStream, files: &HashMap<String, Vec<u8>>, fault: Option<Fault>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = v.trim().strip_prefix("bytes=").map(str::to_string);
            }
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut out = stream;
    if let Some(Fault::Status(code)) = fault {
        let msg = "Internal Error";
        write!(out, "HTTP/1.1 {code} Fault\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len())?;
        return Ok(());
    }
    let Some(body) = files.get(&path) else {
        let msg = "Entry not found";
        write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len())?;
        return Ok(());
    };
    let (start, end) = match range.as_deref().and_then(|r| r.split_once('-')) {
        Some((a, b)) => {
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = if b.is_empty() { body.len() - 1 } else { b.parse().unwrap_or(body.len() - 1) };
            (a.min(body.len()), (b + 1).min(body.len()))
        }
        None => (0, body.len()),
    };
    let status = if range.is_some() { "206 Partial Content" } else { "200 OK" };
    let etag = format!("{:016x}", (body.len() as u64 * 2654435761) ^ body.iter().map(|&b| b as u64).sum::<u64>());
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\netag: \"{etag}\"\r\n\
         x-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\nConnection: close\r\n\r\n",
        end - start,
        end.saturating_sub(1),
        body.len()
    )?;
    match fault {
        Some(Fault::CutAfter(n)) => {
            out.write_all(&body[start..end.min(start + n)])?;
            out.flush()?;
            out.shutdown(std::net::Shutdown::Both)
        }
        _ => {
            out.write_all(&body[start..end])?;
            out.flush()
        }
    }
}
