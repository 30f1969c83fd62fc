//! The disk holding the model cache fills up during a hub download (issue #19): the load fails
//! with an error naming the full disk, the host neither crashes nor hangs, the cache keeps no
//! partial file, and once there is room the model downloads afresh and serves. The hub is a
//! stand-in on loopback serving the LLM test model; the cache is a small tmpfs the test mounts
//! (this needs root).

use rbee_tests::{Host, LLM_TEST_MODEL, ModelsFile, models_dir, plugins_dir};
use reqwest::blocking::Response;
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader, Read, Seek, SeekFrom, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

/// The repository the stand-in hub serves the test model in.
const REPO: &str = "rbee-test/smollm";
/// Its directory in a Hugging Face cache.
const REPO_DIR: &str = "models--rbee-test--smollm";
/// The tmpfs size that cannot hold the model (about 98 MB).
const TOO_SMALL: &str = "20m";
/// The tmpfs size that can.
const LARGE_ENOUGH: &str = "200m";

/// The hub reference of the test model.
fn reference() -> String {
    format!("{REPO}:{LLM_TEST_MODEL}")
}

/// The test model's file.
fn model_file() -> PathBuf {
    let model = models_dir().join(LLM_TEST_MODEL);
    assert!(
        model.is_file(),
        "the test model is missing at {}: run `cargo xtask models`",
        model.display()
    );
    model
}

/// A stand-in Hugging Face hub on loopback serving the test model as `REPO`, with what hf-hub
/// reads: its metadata request (`Range: bytes=0-0`, reading `etag`, `x-repo-commit` and
/// `Content-Range`) and its download (`Range: bytes=N-`). It records the ranges asked for.
struct FakeHub {
    url: String,
    ranges: Arc<Mutex<Vec<String>>>,
}

impl FakeHub {
    /// Listens on a free loopback port, answering each connection on a thread of its own.
    fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fake hub");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let record = ranges.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let record = record.clone();
                std::thread::spawn(move || answer(stream, &record));
            }
        });
        FakeHub { url, ranges }
    }

    /// The `Range` headers of the requests so far.
    fn ranges(&self) -> Vec<String> {
        self.ranges.lock().unwrap().clone()
    }
}

/// Answers one request on `stream`, then closes it. A client that goes away mid-body (its
/// disk is full) only ends the copy.
fn answer(mut stream: TcpStream, ranges: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    let _ = reader.read_line(&mut request_line);
    let mut range = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && !line.trim().is_empty() {
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = value.trim().to_string();
        }
        line.clear();
    }
    let path = request_line.split(' ').nth(1).unwrap_or_default();
    if path != format!("/{REPO}/resolve/main/{LLM_TEST_MODEL}") {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        return;
    }
    ranges.lock().unwrap().push(range.clone());
    let mut file = std::fs::File::open(model_file()).unwrap();
    let size = file.metadata().unwrap().len();
    let (start, end) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .map_or((0, size - 1), |(from, to)| {
            (from.parse().unwrap_or(0), to.parse().unwrap_or(size - 1))
        });
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\netag: \"5b1c0ffee\"\r\n\
         x-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\n\
         content-range: bytes {start}-{end}/{size}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        end + 1 - start
    );
    file.seek(SeekFrom::Start(start)).unwrap();
    if stream.write_all(head.as_bytes()).is_ok() {
        let _ = std::io::copy(&mut file.take(end + 1 - start), &mut stream);
    }
}

/// A tmpfs mounted on a temp dir, unmounted when dropped (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on a new temp dir.
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let options = format!("size={size}");
        run_mount(&["-t", "tmpfs", "-o", &options, "tmpfs", path_str(dir.path())]);
        Tmpfs { dir }
    }

    /// Gives the tmpfs a new size, keeping its files.
    fn resize(&self, size: &str) {
        let options = format!("remount,size={size}");
        run_mount(&["-o", &options, path_str(self.path())]);
    }

    /// Where it is mounted.
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .args(["--lazy", path_str(self.path())])
            .status();
    }
}

/// Runs `mount args`, failing the test with mount's complaint if it fails.
fn run_mount(args: &[&str]) {
    let output = Command::new("mount")
        .args(args)
        .output()
        .expect("running mount");
    assert!(
        output.status.success(),
        "mount {args:?} failed (the test mounts a tmpfs, which needs root): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `path` as a `&str`.
fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The files under `dir`, none if it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map_or(Vec::new(), |entries| {
        entries.map(|entry| entry.unwrap().path()).collect()
    })
}

/// What in `cache` is not a whole copy of the test model: a snapshot entry that does not lead
/// to a file of the model's size, or a partial download (`.part`) in `blobs/`.
fn corrupt_entries(cache: &Path) -> Vec<String> {
    let size = model_file().metadata().unwrap().len();
    let repo = cache.join(REPO_DIR);
    let mut found = Vec::new();
    for snapshot in files_in(&repo.join("snapshots")) {
        for entry in files_in(&snapshot) {
            match std::fs::metadata(&entry) {
                Ok(meta) if meta.len() == size => {}
                other => found.push(format!("{}: {other:?}", entry.display())),
            }
        }
    }
    for blob in files_in(&repo.join("blobs")) {
        if blob.extension().is_some_and(|e| e == "part") {
            found.push(format!("{}: a partial download", blob.display()));
        }
    }
    found
}

/// How many snapshot entries of the test model `cache` holds.
fn snapshot_entries(cache: &Path) -> usize {
    files_in(&cache.join(REPO_DIR).join("snapshots"))
        .iter()
        .map(|snapshot| files_in(snapshot).len())
        .sum()
}

/// A short chat with `model`.
fn chat(host: &Host, model: &str) -> Response {
    host.post(
        "/v1/chat/completions",
        &json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}),
    )
}

/// Asserts that `response` is a completed chat.
fn assert_answers(response: Response, host: &Host) {
    let status = response.status();
    let body: Value = response.json().expect("a JSON body");
    assert_eq!(status, 200, "{body}\nlog:\n{}", host.log());
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
}

/// Asserts that `message` says the disk is full and names the cache directory.
fn assert_names_the_full_disk(message: &str, cache: &Path) {
    assert!(
        message.contains("no space left on device") && message.contains(path_str(cache)),
        "the error does not name the full disk and the cache: {message}"
    );
}

/// `--plugins-dir`, `--cache-dir` and two threads.
fn common_args(cache: &Path) -> Vec<String> {
    let plugins = path_str(plugins_dir()).to_string();
    ["--plugins-dir", &plugins, "--cache-dir", path_str(cache)]
        .map(String::from)
        .into_iter()
        .chain(["--threads".into(), "2".into()])
        .collect()
}

/// Starts `rbee-host args` with the stand-in `hub` as `HF_ENDPOINT`.
fn start(args: Vec<String>, hub: &FakeHub) -> Host {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Host::start_with_env(&args, &[("HF_ENDPOINT", hub.url.as_str())])
}

#[test]
fn a_pinned_model_whose_download_fills_the_disk_stops_the_host_with_a_clear_error() {
    let hub = FakeHub::start();
    let cache = Tmpfs::mount(TOO_SMALL);
    let mut args = common_args(cache.path());
    args.extend(["--plugin", "llm-cpu", "--model", &reference()].map(String::from));

    let mut host = start(args.clone(), &hub);
    assert_eq!(host.wait_exit(Duration::from_secs(120)).code(), Some(1));
    let log = host.log();
    assert!(log.contains(&reference()), "{log}");
    assert_names_the_full_disk(&log, cache.path());
    assert_eq!(corrupt_entries(cache.path()), Vec::<String>::new());
    assert_eq!(snapshot_entries(cache.path()), 0);

    cache.resize(LARGE_ENOUGH);
    let downloads_before = hub.ranges().len();
    let host = start(args, &hub);
    host.wait_ready(Duration::from_secs(180));
    assert_answers(chat(&host, "smol"), &host);
    assert_eq!(
        hub.ranges().last().map(String::as_str),
        Some("bytes=0-"),
        "the download resumed a partial file: {:?}",
        &hub.ranges()[downloads_before..]
    );
    assert_eq!(corrupt_entries(cache.path()), Vec::<String>::new());
    assert_eq!(snapshot_entries(cache.path()), 1);
}

#[test]
fn a_model_loaded_on_demand_is_a_json_error_while_the_disk_is_full_then_loads_with_room() {
    let hub = FakeHub::start();
    let cache = Tmpfs::mount(TOO_SMALL);
    let models =
        ModelsFile::new(&[json!({"id": "smol", "plugin": "llm-cpu", "model": reference()})]);
    let mut args = common_args(cache.path());
    args.extend(["--models".into(), path_str(&models.path()).into()]);
    let host = start(args, &hub);
    host.wait_ready(Duration::from_secs(60));

    let response = chat(&host, "smol");
    let status = response.status();
    let body: Value = response.json().expect("a JSON body");
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "model_load_failed", "{body}");
    assert_names_the_full_disk(body["error"]["message"].as_str().unwrap(), cache.path());
    let model: Value = host.get("/v1/models/smol").json().unwrap();
    assert_eq!(model["state"], "unloaded", "{model}");
    assert_names_the_full_disk(model["last_error"].as_str().unwrap(), cache.path());
    assert_eq!(host.get("/health").status(), 200);
    assert_eq!(corrupt_entries(cache.path()), Vec::<String>::new());
    assert_eq!(snapshot_entries(cache.path()), 0);

    cache.resize(LARGE_ENOUGH);
    assert_answers(chat(&host, "smol"), &host);
    assert_eq!(hub.ranges().last().map(String::as_str), Some("bytes=0-"));
    assert_eq!(corrupt_entries(cache.path()), Vec::<String>::new());
    assert_eq!(snapshot_entries(cache.path()), 1);
}
