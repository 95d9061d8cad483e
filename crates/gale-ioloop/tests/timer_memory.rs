//! Memory stays flat across a million timer schedule/cancel cycles. In its own test binary so that no other
//! test shares the process whose resident memory is measured.

mod util;

use gale_ioloop::IOLoop;
use std::time::Duration;

#[test]
fn a_million_schedule_and_cancel_cycles_leave_memory_flat() {
    util::init_logger();
    let io_loop = IOLoop::new().unwrap();
    // Warm up the allocator, then measure.
    for _ in 0..10_000 {
        let h = io_loop.call_later(Duration::from_secs(60), || {});
        io_loop.remove_timeout(h);
    }
    let before = util::rss_kib();
    for i in 0..1_000_000u64 {
        let h = io_loop.call_later(Duration::from_micros(i % 10_000 + 1_000_000), || {});
        io_loop.remove_timeout(h);
    }
    let after = util::rss_kib();
    assert_eq!(io_loop.timer_count(), 0);
    assert!(after < before + 4 * 1024, "RSS grew from {before} KiB to {after} KiB");
}
