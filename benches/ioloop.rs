//! IOLoop throughput: callbacks, timers, cancellation, cross-thread wake-ups and task spawning, with tokio's
//! current-thread runtime measured beside it for the same work.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gale_ioloop::IOLoop;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

const BATCH: u64 = 10_000;

fn callbacks(c: &mut Criterion) {
    let mut g = c.benchmark_group("ioloop");
    g.throughput(Throughput::Elements(BATCH));
    let io_loop = IOLoop::new().unwrap();
    g.bench_function("add_callback+run", |b| {
        b.iter(|| {
            let n = Rc::new(Cell::new(0u64));
            for _ in 0..BATCH {
                let n = n.clone();
                io_loop.add_callback(move || n.set(n.get() + 1));
            }
            let l = io_loop.clone();
            io_loop.add_callback(move || l.stop());
            io_loop.start().unwrap();
            assert_eq!(n.get(), BATCH);
        })
    });
    g.bench_function("call_later+fire", |b| {
        b.iter(|| {
            let n = Rc::new(Cell::new(0u64));
            let now = Instant::now();
            for i in 0..BATCH {
                let n = n.clone();
                io_loop.call_at(now + Duration::from_nanos(i % 1000), move || n.set(n.get() + 1));
            }
            let l = io_loop.clone();
            io_loop.call_at(now + Duration::from_micros(1), move || l.stop());
            io_loop.start().unwrap();
            assert_eq!(n.get(), BATCH);
        })
    });
    g.bench_function("call_later+remove_timeout", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                let h = io_loop.call_later(Duration::from_secs(60 + i % 100), || {});
                io_loop.remove_timeout(h);
            }
        })
    });
    g.bench_function("spawn+complete", |b| {
        b.iter(|| {
            io_loop.run_sync(async {
                let mut sum = 0;
                for i in 0..BATCH {
                    sum += gale_ioloop::spawn(async move { i }).await.unwrap();
                }
                sum
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("tokio_current_thread");
    g.throughput(Throughput::Elements(BATCH));
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    g.bench_function("spawn+complete", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut sum = 0;
                for i in 0..BATCH {
                    sum += tokio::spawn(async move { i }).await.unwrap();
                }
                sum
            })
        })
    });
    g.bench_function("sleep_until+fire", |b| {
        b.iter(|| {
            rt.block_on(async {
                let now = tokio::time::Instant::now();
                let mut handles = Vec::with_capacity(BATCH as usize);
                for i in 0..BATCH {
                    handles.push(tokio::spawn(tokio::time::sleep_until(now + Duration::from_nanos(i % 1000))));
                }
                for h in handles {
                    h.await.unwrap();
                }
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("ioloop");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("spawn(sleep_until)+fire", |b| {
        b.iter(|| {
            io_loop.run_sync(async {
                let now = Instant::now();
                let mut handles = Vec::with_capacity(BATCH as usize);
                for i in 0..BATCH {
                    handles.push(gale_ioloop::spawn(gale_ioloop::sleep_until(now + Duration::from_nanos(i % 1000))));
                }
                for h in handles {
                    h.await.unwrap();
                }
            })
        })
    });
    g.finish();
}

fn cross_thread(c: &mut Criterion) {
    // Round trip: another thread sends a callback to the loop, which answers through a channel.
    let mut g = c.benchmark_group("ioloop");
    {
        g.bench_function("cross_thread_wake_round_trip", |b| {
            let (to_test_tx, to_test_rx) = std::sync::mpsc::channel::<()>();
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let t = std::thread::spawn(move || {
                let io_loop = IOLoop::new().unwrap();
                handle_tx.send(io_loop.handle()).unwrap();
                io_loop.start().unwrap();
            });
            let handle = handle_rx.recv().unwrap();
            b.iter(|| {
                let tx = to_test_tx.clone();
                handle.add_callback(move || tx.send(()).unwrap());
                to_test_rx.recv().unwrap();
            });
            handle.stop();
            t.join().unwrap();
        });
    }
    g.finish();
}

criterion_group!(benches, callbacks, cross_thread);
criterion_main!(benches);
