//! A stand-in hive: a real HTTP server on loopback that records the heartbeats it receives.

use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// One request the hive received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path.
    pub path: String,
    /// The JSON body.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

/// A hive listening on a loopback port until dropped.
pub struct FakeHive {
    /// Its port.
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHive {
    /// Listens on `port` (0 for any free one).
    pub fn start(port: u16) -> FakeHive {
        Self::start_recording(port, Arc::default())
    }

    /// Listens on `port`, appending to `received` (so a restarted hive keeps one record).
    pub fn start_recording(port: u16, received: Arc<Mutex<Vec<Received>>>) -> FakeHive {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("binding the fake hive");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (log, flag) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(request) = serve(stream) {
                            log.lock().unwrap().push(request);
                        }
                    }
                    // Nothing to accept yet: pause briefly before polling the listener again.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeHive {
            port,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// The URL to give rbee-host.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything received so far (shared with a restarted hive on the same record).
    pub fn received(&self) -> Arc<Mutex<Vec<Received>>> {
        self.received.clone()
    }

    /// Waits until `count` requests have arrived whose path ends with `suffix` and whose body
    /// satisfies `accept`; returns them.
    pub fn wait_for(
        &self,
        suffix: &str,
        count: usize,
        timeout: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let matching: Vec<Received> = self
                .received
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.path.ends_with(suffix) && accept(&r.body))
                .cloned()
                .collect();
            if matching.len() >= count {
                return matching;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} '{suffix}' requests arrived",
                matching.len()
            );
            // Pacing between polls; the loop is bounded by `deadline`.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeHive {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream) -> Option<Received> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .ok()?;
    Some(Received {
        path,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    })
}
