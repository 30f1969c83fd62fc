//! Clients that send slowly, or nothing at all: they lose their connection after a time limit,
//! so they can hold neither file descriptors nor the shutdown. And clients whose request head is
//! too large: they get an answer in the error shape.

use rbee_tests::Host;
use serde_json::Value;
use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

/// A raw connection to `host`, which reads for at most `patience`.
fn connect(host: &Host, patience: Duration) -> TcpStream {
    let address = host.url.trim_start_matches("http://");
    let stream = TcpStream::connect(address).expect("connecting");
    stream.set_read_timeout(Some(patience)).unwrap();
    stream
}

/// Reads until the server closes the connection (or `patience` runs out): what it sent.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let host = Host::start_echo(&["--header-timeout", "2"]);
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| connect(&host, Duration::from_secs(20)))
        .collect();
    let opened = Instant::now();
    for mut stream in idle {
        assert_eq!(read_to_close(&mut stream), "");
    }
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(15),
        "closed after {waited:?}"
    );
    assert_eq!(host.get("/health").status(), 200);
}

#[test]
fn a_body_that_stalls_gets_408_in_the_error_shape() {
    let host = Host::start_echo(&["--body-timeout", "2"]);
    let mut stream = connect(&host, Duration::from_secs(20));
    stream
        .write_all(
            b"POST /v1/jobs HTTP/1.1\r\nHost: rbee\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\n{\"task\":",
        )
        .unwrap();
    let answer = read_to_close(&mut stream);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "{answer}\nlog:\n{}",
        host.log()
    );
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["field"], "body", "{body}");
}

#[test]
fn a_half_sent_request_does_not_hold_the_shutdown() {
    let mut host = Host::start_echo(&["--header-timeout", "120", "--shutdown-timeout", "1"]);
    let mut stream = connect(&host, Duration::from_secs(60));
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: rbee\r\n")
        .unwrap();
    let asked = Instant::now();
    host.terminate();
    assert!(host.wait_exit(Duration::from_secs(30)).success());
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "exited {:?} after SIGTERM",
        asked.elapsed()
    );
}

#[test]
fn an_over_long_uri_or_over_large_headers_get_414_or_431_in_the_error_shape() {
    let host = Host::start_echo(&[]);
    let long_uri = format!("GET /v1/jobs/{} HTTP/1.1\r\n", "a".repeat(20 * 1024));
    let one_large_header = format!("X-Large: {}\r\n", "a".repeat(100 * 1024));
    let many_headers: String = (0..200)
        .map(|i| format!("X-Filler-{i}: {}\r\n", "a".repeat(500)))
        .collect();
    let (get_health, too_large) = (
        "GET /health HTTP/1.1\r\n",
        "request_header_fields_too_large",
    );
    for (request_line, headers, status, code) in [
        (long_uri.as_str(), "", "414", "uri_too_long"),
        (get_health, &one_large_header, "431", too_large),
        (get_health, &many_headers, "431", too_large),
    ] {
        let mut stream = connect(&host, Duration::from_secs(20));
        let request = format!("{request_line}Host: rbee\r\n{headers}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let answer = read_to_close(&mut stream);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{}",
            &answer[..answer.len().min(500)]
        );
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    assert_eq!(host.get("/health").status(), 200);
}
