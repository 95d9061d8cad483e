//! The C10K binary, small: 200 standing connections (half long polls, half websockets) are served, all long
//! polls are answered on release, and the server's fds return to their baseline.

#[test]
fn two_hundred_standing_connections_are_served_and_released_without_leaks() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_c10k"))
        .args(["--conns", "200", "--backend", "epoll"])
        .output()
        .expect("run c10k");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("upgraded=100/100"), "{report}");
    assert!(report.contains("long_polls_answered=100/100"), "{report}");
    assert!(report.trim_end().ends_with("OK"), "{report}");
}
