//! The host under load, at CI scale: 200 concurrent clients (`RBEE_LOAD_CLIENTS` sets another
//! number; `cargo xtask load` runs 1,000) submit echo jobs and stream them, cancel them,
//! disconnect, wait for the answer or never read. No job is lost and every stream read to its
//! end carries exactly one terminal event: in the plain mix (run twice: the open files come back
//! down after each run, and the second leaves the host no larger than the first did), with
//! jobs that panic or fail among them (isolated and `--in-process`), through a SIGTERM,
//! and when the hive goes away.

use rbee_tests::{
    FakeHive, Host,
    load::{LoadReport, Plan, run_load},
    wait_until,
};
use std::time::Duration;

#[test]
fn many_clients_lose_no_job_and_leave_no_memory_or_file_behind() {
    let clients = clients();
    let host = load_host(clients, &[]);
    let first = run_load(&host, &Plan::clients(clients));
    let second = run_load(&host, &Plan::clients(clients));
    println!("first run:\n{first}\nsecond run:\n{second}");
    for report in [&first, &second] {
        assert_nothing_lost(report);
        assert_eq!(report.rejected, 0, "{report}");
        assert_eq!(report.accepted, clients, "{report}");
        let (fds_before, _, fds_after) = report.fds;
        assert!(fds_after <= fds_before, "file descriptors leaked: {report}");
    }
    assert!(
        second.rss_mib.2 <= first.rss_mib.2 + 8.0,
        "memory grew from one run to the next: {first}\n{second}"
    );
}

/// The load test's number of clients: `RBEE_LOAD_CLIENTS`, or 200.
fn clients() -> usize {
    std::env::var("RBEE_LOAD_CLIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
}

/// An echo host for `clients` clients at once, with `extra` flags.
fn load_host(clients: usize, extra: &[&str]) -> Host {
    let queue = (clients * 2).to_string();
    let mut args = vec![
        "--queue-size",
        queue.as_str(),
        "--unread-timeout",
        "3",
        "--header-timeout",
        "5",
        "--plugin-options",
        r#"{"parallel": 64}"#,
    ];
    args.extend_from_slice(extra);
    Host::start_echo(&args)
}

fn assert_nothing_lost(report: &LoadReport) {
    assert_eq!(report.errors, Vec::<String>::new(), "{report}");
    assert_eq!((report.lost, report.bad_streams), (0, 0), "{report}");
}

#[test]
fn jobs_that_panic_or_fail_under_load_end_only_themselves() {
    faults_end_only_their_jobs(&[]);
}

#[test]
fn the_same_holds_with_the_plugin_in_the_hosts_own_process() {
    faults_end_only_their_jobs(&["--in-process"]);
}

/// One client in ten asks for a job that panics and one for a job that fails: those end in
/// an error, and every other job as usual.
fn faults_end_only_their_jobs(extra: &[&str]) {
    let clients = clients();
    let host = load_host(clients, extra);
    let plan = Plan {
        faults: true,
        ..Plan::clients(clients)
    };
    let report = run_load(&host, &plan);
    println!("{report}");
    assert_nothing_lost(&report);
    assert_eq!(report.error_ends, clients / 10 * 2, "{report}");
    assert_eq!(report.accepted, clients, "{report}");
    assert_eq!(host.get("/health").status(), 200);
}

#[test]
fn sigterm_under_load_gives_every_accepted_job_its_terminal_event() {
    let clients = clients();
    let mut host = load_host(clients, &["--shutdown-timeout", "30"]);
    let plan = Plan {
        stop_after: Some(Duration::from_millis(500)),
        word_delay_ms: 100,
        ..Plan::clients(clients)
    };
    let report = run_load(&host, &plan);
    println!("{report}");
    assert_eq!((report.lost, report.bad_streams), (0, 0), "{report}");
    assert!(
        report.seconds > 0.5 && report.accepted > 0,
        "the jobs were still running at SIGTERM: {report}"
    );
    assert!(host.wait_exit(Duration::from_secs(60)).success());
}

#[test]
fn the_hive_going_away_under_load_changes_nothing() {
    let clients = clients();
    let hive = FakeHive::start(0);
    let url = hive.url();
    let host = load_host(
        clients,
        &["--hive-url", url.as_str(), "--heartbeat-interval", "1"],
    );
    let before = run_load(&host, &Plan::clients(clients));
    drop(hive);
    let after = run_load(&host, &Plan::clients(clients));
    println!("with the hive:\n{before}\nwithout:\n{after}");
    assert_nothing_lost(&before);
    assert_nothing_lost(&after);
    wait_until("the host to notice", Duration::from_secs(10), || {
        host.log().contains("the hive is unreachable")
    });
    assert_nothing_lost(&run_load(&host, &Plan::clients(clients)));
}
