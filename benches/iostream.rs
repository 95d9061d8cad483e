//! Loopback throughput of a large transfer through two IOStreams on one loop, beside a plain blocking
//! `std::net` copy between two threads measured in the same run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gale_ioloop::IOLoop;
use gale_iostream::{IOStream, StreamError};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

const TOTAL: usize = 64 << 20;
const CHUNK: usize = 256 << 10;

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

fn gale_transfer(io_loop: &IOLoop) {
    let (a, b) = tcp_pair();
    let received = io_loop.run_sync(async move {
        let w = IOStream::new(a).unwrap();
        let r = IOStream::new(b).unwrap();
        let writer = gale_ioloop::spawn(async move {
            let chunk = bytes::Bytes::from(vec![7u8; CHUNK]);
            for _ in 0..TOTAL / CHUNK {
                w.write(chunk.clone()).await.unwrap();
            }
            w.close();
        });
        let mut n = 0;
        loop {
            match r.read_bytes(CHUNK, true).await {
                Ok(b) => n += b.len(),
                Err(StreamError::Closed(_)) => break,
                Err(e) => panic!("{e}"),
            }
        }
        writer.await.unwrap();
        n
    });
    assert_eq!(received, TOTAL);
}

fn std_transfer() {
    let (mut a, mut b) = tcp_pair();
    let t = std::thread::spawn(move || {
        let chunk = vec![7u8; CHUNK];
        for _ in 0..TOTAL / CHUNK {
            a.write_all(&chunk).unwrap();
        }
    });
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0;
    loop {
        let k = b.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        n += k;
    }
    t.join().unwrap();
    assert_eq!(n, TOTAL);
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("loopback_64MiB");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.sample_size(10);
    let io_loop = IOLoop::new().unwrap();
    g.bench_function("gale_iostream_one_loop", |b| b.iter(|| gale_transfer(&io_loop)));
    g.bench_function("std_net_blocking_two_threads", |b| b.iter(std_transfer));
    g.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
