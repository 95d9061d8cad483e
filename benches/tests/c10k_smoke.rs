//! The C10K binary, small: 200 standing connections (100 long polls, 100 websockets) on one worker, held and
//! released twice; every long poll answered at each release, every websocket echoing and closing, and the
//! server back to its baseline of fds, handlers, connections, tasks and timers after each.

use serde_json::Value;
use std::process::Command;

fn run(backend: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_c10k"))
        .args(["--conns", "200", "--backend", backend, "--requests", "200", "--json"])
        .output()
        .expect("run c10k");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn two_hundred_standing_connections_on_epoll_are_served_and_released_without_leaks() {
    let o = run("epoll");
    assert_eq!(o["backend"], "epoll");
    assert_eq!(o["long_polls"], 100);
    assert_eq!(o["woken"], 100, "{o}");
    assert_eq!(o["long_polls_answered"], 100, "{o}");
    assert_eq!(o["websockets_upgraded"], 100, "{o}");
    assert_eq!(o["websockets_echoed"], 100, "{o}");
    assert_eq!(o["websockets_closed"], 100, "{o}");
    // Held: one fd and one connection per standing connection, counted by the server's own handlers.
    assert_eq!(o["held"]["fds"].as_u64().unwrap(), o["baseline"]["fds"].as_u64().unwrap() + 200, "{o}");
    assert_eq!(o["held"]["server"]["long_polls"], 100, "{o}");
    assert_eq!(o["held"]["server"]["websockets"], 100, "{o}");
    // Released twice: exactly back to the baseline, the second time in the memory of the first.
    assert_eq!(o["cycles"], 2, "{o}");
    assert_eq!(o["rss_after_release_kib"].as_array().map(Vec::len), Some(2), "{o}");
    assert_eq!(o["after"]["fds"], o["baseline"]["fds"], "{o}");
    assert_eq!(o["after"]["server"], o["baseline"]["server"], "{o}");
    assert_eq!(o["after"]["server"]["long_polls"], 0, "{o}");
    assert_eq!(o["after"]["server"]["websockets"], 0, "{o}");
    assert_eq!(o["failures"], Value::Array(Vec::new()), "{o}");
}

#[test]
fn the_poll_and_select_backends_serve_and_release_the_same() {
    for backend in ["poll", "select"] {
        let o = run(backend);
        assert_eq!(o["backend"], backend);
        assert_eq!(o["long_polls_answered"], 100, "{o}");
        assert_eq!(o["websockets_closed"], 100, "{o}");
        assert_eq!(o["after"]["fds"], o["baseline"]["fds"], "{o}");
        assert_eq!(o["after"]["server"], o["baseline"]["server"], "{o}");
    }
}
