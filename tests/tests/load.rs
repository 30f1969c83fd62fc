//! The host under load, at CI scale: 200 concurrent clients (`RBEE_LOAD_CLIENTS` sets another
//! number; `cargo xtask load` runs 1,000) submit echo jobs and stream them, cancel them,
//! disconnect, wait for the answer or never read, twice. No job is lost, every stream read to
//! its end carries exactly one terminal event, the open files come back down after each run,
//! and the second run leaves the host no larger than the first did.

use rbee_tests::{Host, load::run_load};

#[test]
fn many_clients_lose_no_job_and_leave_no_memory_or_file_behind() {
    let clients: usize = std::env::var("RBEE_LOAD_CLIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let queue = (clients * 2).to_string();
    let host = Host::start_echo(&[
        "--queue-size",
        &queue,
        "--unread-timeout",
        "3",
        "--header-timeout",
        "5",
        "--plugin-options",
        r#"{"parallel": 64}"#,
    ]);
    let first = run_load(&host, clients);
    let second = run_load(&host, clients);
    println!("first run:\n{first}\nsecond run:\n{second}");
    for report in [&first, &second] {
        assert_eq!(report.errors, Vec::<String>::new(), "{report}");
        assert_eq!(
            (report.lost, report.bad_streams, report.rejected),
            (0, 0, 0),
            "{report}"
        );
        assert_eq!(report.accepted, clients, "{report}");
        let (fds_before, _, fds_after) = report.fds;
        assert!(fds_after <= fds_before, "file descriptors leaked: {report}");
    }
    assert!(
        second.rss_mib.2 <= first.rss_mib.2 + 8.0,
        "memory grew from one run to the next: {first}\n{second}"
    );
}
