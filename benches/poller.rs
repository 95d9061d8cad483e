//! The cost of one `Poller::wait` that returns 1 ready fd while N fds are registered (N = 10, 100, 1,000), for
//! every backend of the platform: epoll and kqueue should stay flat (O(ready)), poll grow with N
//! (O(registered)), select grow with the highest fd number (O(highest fd)).
//!
//! `wait_1_ready_high_fds` isolates select's O(highest fd) term: 10 fds registered, all numbered past 2,000, so
//! poll hands the kernel 10 entries and select 2,000-odd bits. That term is a scan of bit words (Linux skips an
//! empty word of 64 fds at once), so it stays small beside the per-registered-fd work both do.
//!
//! ```text
//! cargo bench -p gale-benches --bench poller
//! ```

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gale_poller::{BACKENDS, Events, Interest, Poller, Token};
use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Registered fd counts.
const SIZES: [usize; 3] = [10, 100, 1_000];

/// How many fds [`wait_1_ready_high_fds`] opens, unregistered, below the registered ones.
const LOW_FDS: usize = 2_000;

/// Raises the soft fd limit to the hard one if it is below `wanted`.
fn allow_fds(wanted: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|soft| soft < wanted) {
        let raised = Rlimit { current: limit.maximum.or(Some(wanted)), maximum: limit.maximum };
        if setrlimit(Resource::Nofile, raised).is_err() {
            eprintln!("could not raise the fd limit to {wanted}; the larger cases may fail");
        }
    }
}

/// `n` socket pairs, every reader registered with `poller` and exactly one of them (the last) readable.
fn ready_one_of(poller: &mut dyn Poller, n: usize) -> Vec<(UnixStream, UnixStream)> {
    let pairs: Vec<_> = (0..n).map(|_| UnixStream::pair().expect("socketpair")).collect();
    for (i, (reader, _)) in pairs.iter().enumerate() {
        poller.register(reader.as_fd(), Token(i), Interest::READABLE).expect("register");
    }
    (&pairs[n - 1].1).write_all(b"x").expect("write");
    let mut events = Events::with_capacity(64);
    poller.wait(&mut events, Some(Duration::from_secs(5))).expect("wait");
    assert_eq!(events.len(), 1, "{}: exactly one fd is ready", poller.name());
    pairs
}

/// Measures waits that each return the one ready fd.
fn bench_wait(c: &mut Criterion, group: &str, name: &str, n: usize, poller: &mut dyn Poller) {
    let mut events = Events::with_capacity(64);
    c.benchmark_group(group).bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
        b.iter(|| {
            poller.wait(&mut events, Some(Duration::ZERO)).expect("wait");
            black_box(events.len())
        })
    });
}

fn wait_1_ready(c: &mut Criterion) {
    allow_fds(2 * SIZES[2] as u64 + 256);
    for &name in BACKENDS {
        for n in SIZES {
            let mut poller = gale_poller::by_name(name).expect("backend");
            let pairs = ready_one_of(&mut *poller, n);
            bench_wait(c, "wait_1_ready", name, n, &mut *poller);
            for (reader, _) in &pairs {
                poller.deregister(reader.as_fd()).expect("deregister");
            }
        }
    }
}

fn wait_1_ready_high_fds(c: &mut Criterion) {
    allow_fds(LOW_FDS as u64 + 256);
    // Held open, never registered, so that the registered fds get high numbers.
    let low: Vec<File> = (0..LOW_FDS).map(|_| File::open("/dev/null").expect("open /dev/null")).collect();
    for &name in BACKENDS {
        let mut poller = gale_poller::by_name(name).expect("backend");
        let pairs = ready_one_of(&mut *poller, 10);
        bench_wait(c, "wait_1_ready_high_fds", name, 10, &mut *poller);
        for (reader, _) in &pairs {
            poller.deregister(reader.as_fd()).expect("deregister");
        }
    }
    drop(low);
}

criterion_group!(benches, wait_1_ready, wait_1_ready_high_fds);
criterion_main!(benches);
