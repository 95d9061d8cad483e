//! IOStream, TcpServer and connect through real sockets on 127.0.0.1, on every built-in poller backend.

use gale_ioloop::{IOLoop, sleep, spawn};
use gale_iostream::{CloseReason, IOStream, StreamError, StreamOptions, TcpServer, connect};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

fn each_backend(test: impl Fn(IOLoop)) {
    for name in gale_poller::BACKENDS {
        eprintln!("-- backend {name}");
        test(IOLoop::with_poller(gale_poller::by_name(name).unwrap()));
    }
}

fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// An echo server on an ephemeral port of 127.0.0.1: each line comes back.
fn echo_server(io_loop: &IOLoop) -> (TcpServer<impl gale_iostream::StreamHandler>, u16) {
    let server = TcpServer::new(io_loop, |stream: IOStream, _| async move {
        while let Ok(line) = stream.read_until(b"\n", Some(1 << 20)).await {
            if stream.write(line).await.is_err() {
                break;
            }
        }
    });
    server.listen(0, Some("127.0.0.1")).unwrap();
    let port = server.local_addrs()[0].port();
    (server, port)
}

#[test]
fn echo_round_trips_through_the_tcp_server() {
    each_backend(|io_loop| {
        let (server, port) = echo_server(&io_loop);
        let replies = io_loop.run_sync(async move {
            let c = connect("127.0.0.1", port, Some(Duration::from_secs(5))).await.unwrap();
            let mut replies = Vec::new();
            for msg in ["one\n", "two\n", "three\n"] {
                c.write(msg.as_bytes().to_vec()).await.unwrap();
                replies.push(c.read_until(b"\n", None).await.unwrap());
            }
            replies
        });
        assert_eq!(replies, vec!["one\n", "two\n", "three\n"]);
        drop(server);
    });
}

#[test]
fn a_blocking_std_client_talks_to_the_server() {
    each_backend(|io_loop| {
        let (_server, port) = echo_server(&io_loop);
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"ping\n").unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            buf
        });
        io_loop.run_sync(async move {
            while !client.is_finished() {
                sleep(Duration::from_millis(2)).await;
            }
            assert_eq!(&client.join().unwrap(), b"ping\n");
        });
    });
}

#[test]
fn read_until_finds_a_delimiter_split_across_reads() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            b.write_all(b"GET / HTTP/1.1\r\n\r").unwrap();
            std::thread::sleep(Duration::from_millis(30));
            b.write_all(b"\nbody").unwrap();
            b
        });
        let (head, rest) = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            let head = s.read_until(b"\r\n\r\n", None).await.unwrap();
            let rest = s.read_bytes(4, false).await.unwrap();
            (head, rest)
        });
        writer.join().unwrap();
        assert_eq!(&head[..], b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(&rest[..], b"body");
    });
}

#[test]
fn read_until_finds_a_delimiter_after_the_buffer_grew_over_many_reads() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let big = vec![b'x'; 300 * 1024];
            for chunk in big.chunks(7000) {
                b.write_all(chunk).unwrap();
            }
            b.write_all(b"\r\n--END").unwrap();
            b
        });
        let line = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            s.read_until(b"\r\n", None).await.unwrap()
        });
        writer.join().unwrap();
        assert_eq!(line.len(), 300 * 1024 + 2);
        assert!(line.ends_with(b"x\r\n"));
    });
}

#[test]
fn data_that_arrived_with_a_previous_read_is_served_first() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"a\nb\nc\n").unwrap();
        let lines = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            let mut v = Vec::new();
            for _ in 0..3 {
                v.push(s.read_until(b"\n", None).await.unwrap());
            }
            (v, s.bytes_read())
        });
        assert_eq!(lines.0, vec!["a\n", "b\n", "c\n"]);
        assert_eq!(lines.1, 6);
        drop(b);
    });
}

#[test]
fn fresh_input_is_offered_for_consumption_and_only_the_rest_is_buffered() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"HEAD|rest").unwrap();
        let (seen, buffered, calls) = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            let mut seen = Vec::new();
            let mut calls = 0;
            // Nothing buffered: the consumer sees the fresh bytes and takes "HEAD|".
            let n = std::future::poll_fn(|cx| {
                s.poll_fill_with(cx, |input| {
                    calls += 1;
                    seen = input.to_vec();
                    5
                })
            })
            .await
            .unwrap();
            assert_eq!(n, 9);
            let buffered = s.with_read_buf(|buf| buf.to_vec());
            // Something buffered: new input is appended and the consumer is not asked.
            b.write_all(b"+more").unwrap();
            std::future::poll_fn(|cx| {
                s.poll_fill_with(cx, |_| {
                    calls += 1;
                    0
                })
            })
            .await
            .unwrap();
            assert_eq!(s.with_read_buf(|buf| buf.to_vec()), b"rest+more");
            assert_eq!(s.bytes_read(), 14);
            (seen, buffered, calls)
        });
        assert_eq!(seen, b"HEAD|rest");
        assert_eq!(buffered, b"rest", "only what the consumer left is kept");
        assert_eq!(calls, 1);
    });
}

#[test]
fn a_large_leftover_is_kept_whole_and_reads_of_other_sizes_still_work() {
    each_backend(|io_loop| {
        let pattern: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let (a, mut b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        b.write_all(&pattern).unwrap();
        d.write_all(&pattern[..3000]).unwrap();
        let expected = pattern.clone();
        io_loop.run_sync(async move {
            // Most of a large read is left over: the stream keeps it (without a copy of its own).
            let s = IOStream::new(a).unwrap();
            let n = std::future::poll_fn(|cx| s.poll_fill_with(cx, |_| 10)).await.unwrap();
            assert_eq!(n, 40_000);
            assert_eq!(s.with_read_buf(|buf| buf.to_vec()), &expected[10..]);
            // New input is appended to it as to any buffer.
            b.write_all(b"tail").unwrap();
            assert_eq!(s.fill().await.unwrap(), 4);
            let all = s.with_read_buf(|buf| buf.split().to_vec());
            assert_eq!(&all[..all.len() - 4], &expected[10..]);
            assert_eq!(&all[all.len() - 4..], b"tail");
            // A stream reading smaller chunks gets no more than a chunk per read.
            let options = StreamOptions { read_chunk_size: 1000, ..Default::default() };
            let t = IOStream::with_options(&IOLoop::current(), c, options).unwrap();
            let n = std::future::poll_fn(|cx| t.poll_fill_with(cx, |input| input.len() / 2)).await.unwrap();
            assert_eq!(n, 1000);
            assert_eq!(t.with_read_buf(|buf| buf.to_vec()), &expected[500..1000]);
            assert_eq!(t.fill().await.unwrap(), 1000);
            assert_eq!(t.with_read_buf(|buf| buf.to_vec()), &expected[500..2000]);
            drop(d);
        });
    });
}

#[test]
fn try_write_sends_in_place_only_when_nothing_is_queued() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            assert_eq!(s.try_write(b"first ").unwrap(), 6);
            assert_eq!(s.bytes_written(), 6);
            // Fill the socket until the kernel refuses: then the rest waits in the queue...
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            loop {
                let n = s.try_write(&chunk).unwrap();
                sent += n;
                if n < chunk.len() {
                    s.queue_write(bytes::Bytes::copy_from_slice(&chunk[n..])).unwrap();
                    sent += chunk.len() - n;
                    break;
                }
            }
            // ...and a direct write must not overtake it.
            assert_eq!(s.try_write(b"late").unwrap(), 0, "queued bytes go first");
            s.queue_write(&b"late"[..]).unwrap();
            let flushed = s.flush();
            let reader = std::thread::spawn(move || {
                let mut all = Vec::new();
                let mut buf = vec![0; 64 * 1024];
                while all.len() < 6 + sent + 4 {
                    let n = b.read(&mut buf).unwrap();
                    all.extend_from_slice(&buf[..n]);
                }
                all
            });
            flushed.await.unwrap();
            let all = reader.join().unwrap();
            assert!(all.starts_with(b"first x"));
            assert!(all.ends_with(b"xlate"));
            assert_eq!(all.len(), 6 + sent + 4);
            s.close();
            assert!(s.try_write(b"after").is_err(), "closed streams refuse writes");
        });
    });
}

#[test]
fn read_bytes_partial_returns_what_is_there() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"12345").unwrap();
        let got = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            let first = s.read_bytes(100, true).await.unwrap();
            (first, s.buffered())
        });
        assert_eq!(&got.0[..], b"12345");
        assert_eq!(got.1, 0);
        drop(b);
    });
}

#[test]
fn read_into_fills_the_buffer_or_returns_partially() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"abcdefgh").unwrap();
        let (full, part) = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            let mut four = [0u8; 4];
            s.read_into(&mut four, false).await.unwrap();
            let mut ten = [0u8; 10];
            let n = s.read_into(&mut ten, true).await.unwrap();
            (four, ten[..n].to_vec())
        });
        assert_eq!(&full, b"abcd");
        assert_eq!(part, b"efgh");
        drop(b);
    });
}

#[test]
fn read_until_close_returns_everything() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let w = std::thread::spawn(move || {
            b.write_all(&vec![9u8; 200_000]).unwrap();
        });
        let all = io_loop.run_sync(async move { IOStream::new(a).unwrap().read_until_close().await.unwrap() });
        w.join().unwrap();
        assert_eq!(all.len(), 200_000);
    });
}

#[test]
fn a_read_that_overflows_max_buffer_size_fails_and_closes_the_stream() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(&[b'z'; 4096]).unwrap();
        let (err, closed) = io_loop.run_sync(async move {
            let l = IOLoop::current();
            let opts = StreamOptions { max_buffer_size: 1024, ..Default::default() };
            let s = IOStream::with_options(&l, a, opts).unwrap();
            let err = s.read_until(b"\n", None).await.unwrap_err();
            (err, s.closed())
        });
        assert!(matches!(err, StreamError::BufferFull), "{err:?}");
        assert!(closed);
        drop(b);
    });
}

#[test]
fn read_until_with_max_bytes_fails_when_the_delimiter_is_too_far() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"0123456789abcdef\n").unwrap();
        let err = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            s.read_until(b"\n", Some(8)).await.unwrap_err()
        });
        assert!(matches!(err, StreamError::UnsatisfiableRead), "{err:?}");
        drop(b);
    });
}

#[test]
fn peer_close_during_a_pending_read_resolves_with_the_reason() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let w = std::thread::spawn(move || {
            b.write_all(b"partial").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(b);
        });
        let (err, reason) = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            let err = s.read_until(b"\n", None).await.unwrap_err();
            (err, s.close_reason())
        });
        w.join().unwrap();
        assert!(matches!(err, StreamError::Closed(CloseReason::Eof)), "{err:?}");
        assert_eq!(reason, Some(CloseReason::Eof));
    });
}

#[test]
fn buffered_bytes_are_still_readable_after_the_peer_closed() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"line1\nline2\n").unwrap();
        drop(b);
        let lines = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            let all = s.read_until_close().await.unwrap();
            (all, s.closed())
        });
        assert_eq!(&lines.0[..], b"line1\nline2\n");
        assert!(lines.1);
    });
}

#[test]
fn write_after_close_is_an_error() {
    each_backend(|io_loop| {
        let (a, _b) = UnixStream::pair().unwrap();
        let err = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            s.close();
            s.close();
            s.write(&b"late"[..]).await.unwrap_err()
        });
        assert!(err.is_closed(), "{err:?}");
    });
}

#[test]
fn a_second_concurrent_read_is_an_error_not_a_hang() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (second, first) = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            let s2 = s.clone();
            let first = spawn(async move { s2.read_until(b"\n", None).await });
            sleep(Duration::from_millis(5)).await; // let the first read start
            let second = s.read_bytes(1, true).await;
            b.write_all(b"ok\n").unwrap();
            (second, first.await.unwrap())
        });
        assert!(matches!(second, Err(StreamError::ReadPending)), "{second:?}");
        assert_eq!(&first.unwrap()[..], b"ok\n");
    });
}

#[test]
fn a_write_larger_than_the_socket_buffer_completes_in_the_background() {
    each_backend(|io_loop| {
        let (a, b) = UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut b = b;
            let mut total = 0usize;
            let mut buf = vec![0u8; 65536];
            loop {
                let n = b.read(&mut buf).unwrap();
                if n == 0 {
                    return total;
                }
                total += n;
            }
        });
        io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            // Fire and forget, then await only the last write: all must arrive in order.
            for _ in 0..15 {
                drop(s.write(vec![1u8; 1 << 20]));
            }
            s.write(vec![1u8; 1 << 20]).await.unwrap();
            assert_eq!(s.write_buffer_len(), 0);
            assert_eq!(s.bytes_written(), 16 << 20);
            s.close();
        });
        assert_eq!(reader.join().unwrap(), 16 << 20);
    });
}

#[test]
fn max_write_buffer_size_refuses_writes_beyond_it() {
    each_backend(|io_loop| {
        let (a, _b) = UnixStream::pair().unwrap();
        let result = io_loop.run_sync(async move {
            let l = IOLoop::current();
            let opts = StreamOptions { max_write_buffer_size: Some(1 << 20), ..Default::default() };
            let s = IOStream::with_options(&l, a, opts).unwrap();
            // Nobody reads the peer: the kernel buffer fills, then the queue does.
            let mut last = Ok(());
            for _ in 0..64 {
                last = s.queue_write(vec![0u8; 256 * 1024]);
                drop(s.flush());
                if last.is_err() {
                    break;
                }
            }
            (last, s.write_buffer_len())
        });
        assert!(matches!(result.0, Err(StreamError::WriteBufferFull)), "{:?}", result.0);
        assert!(result.1 <= 1 << 20);
    });
}

#[test]
fn a_hundred_mib_transfer_keeps_buffers_within_their_limits() {
    each_backend(|io_loop| {
        let (a, b) = UnixStream::pair().unwrap();
        const TOTAL: usize = 100 << 20;
        let (received, max_read_buf, max_write_q) = io_loop.run_sync(async move {
            let w = IOStream::new(a).unwrap();
            let r = IOStream::new(b).unwrap();
            let writer = spawn(async move {
                let chunk = bytes::Bytes::from(vec![5u8; 1 << 20]);
                let mut max_q = 0;
                for _ in 0..TOTAL / (1 << 20) {
                    let f = w.write(chunk.clone());
                    max_q = max_q.max(w.write_buffer_len());
                    f.await.unwrap();
                }
                w.close();
                max_q
            });
            let mut received = 0usize;
            let mut max_buf = 0;
            loop {
                match r.read_bytes(256 * 1024, true).await {
                    Ok(b) => {
                        assert!(b.iter().all(|&x| x == 5));
                        received += b.len();
                        max_buf = max_buf.max(r.buffer_memory());
                    }
                    Err(StreamError::Closed(_)) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            (received, max_buf, writer.await.unwrap())
        });
        assert_eq!(received, TOTAL);
        assert!(max_write_q <= 1 << 20, "write queue peaked at {max_write_q}");
        assert!(max_read_buf <= 1 << 20, "read buffer peaked at {max_read_buf}");
    });
}

#[test]
fn an_idle_stream_holds_no_buffer_memory() {
    each_backend(|io_loop| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mem = io_loop.run_sync(async move {
            let s = IOStream::new(a).unwrap();
            s.read_until(b"\r\n\r\n", None).await.unwrap();
            s.write(&b"HTTP/1.1 200 OK\r\n\r\n"[..]).await.unwrap();
            s.buffer_memory()
        });
        assert_eq!(mem, 0);
        drop(b);
    });
}

#[test]
fn a_thousand_concurrent_connections_on_one_loop() {
    let limit = raise_fd_limit();
    assert!(limit >= 2200, "RLIMIT_NOFILE hard limit {limit} is too low for this test");
    each_backend(|io_loop| {
        let (server, port) = echo_server(&io_loop);
        let server = Rc::new(server);
        let s2 = server.clone();
        let (ok, peak) = io_loop.run_sync(async move {
            let mut clients = Vec::new();
            for _ in 0..1000 {
                clients.push(connect("127.0.0.1", port, Some(Duration::from_secs(10))).await.unwrap());
            }
            // Every client sends, then every client reads: all 1,000 are open at once.
            for (i, c) in clients.iter().enumerate() {
                c.queue_write(format!("msg {i}\n")).unwrap();
                drop(c.flush());
            }
            let mut ok = 0;
            for (i, c) in clients.iter().enumerate() {
                let line = c.read_until(b"\n", None).await.unwrap();
                if line == format!("msg {i}\n").as_bytes() {
                    ok += 1;
                }
            }
            let peak = s2.open_connections();
            (ok, peak)
        });
        assert_eq!(ok, 1000);
        assert_eq!(peak, 1000);
    });
}

#[test]
fn max_connections_makes_new_clients_wait_in_the_backlog() {
    each_backend(|io_loop| {
        let (server, port) = echo_server(&io_loop);
        server.set_max_connections(Some(1));
        let server = Rc::new(server);
        let s2 = server.clone();
        io_loop.run_sync(async move {
            let first = connect("127.0.0.1", port, None).await.unwrap();
            first.write(&b"a\n"[..]).await.unwrap();
            first.read_until(b"\n", None).await.unwrap();
            // The second connection completes in the kernel backlog, but is not served yet.
            let second = connect("127.0.0.1", port, None).await.unwrap();
            second.write(&b"b\n"[..]).await.unwrap();
            let waited = gale_ioloop::timeout(Duration::from_millis(50), second.read_until(b"\n", None)).await;
            assert!(waited.is_err(), "served beyond max_connections");
            assert_eq!(s2.open_connections(), 1);
            drop(first); // the server sees EOF and drops its stream
            let line = second.read_until(b"\n", None).await.unwrap();
            assert_eq!(&line[..], b"b\n");
        });
    });
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    each_backend(|io_loop| {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = io_loop.run_sync(async move { connect("127.0.0.1", port, Some(Duration::from_secs(5))).await });
        assert_eq!(err.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn connect_resolves_localhost() {
    each_backend(|io_loop| {
        let server = TcpServer::new(&io_loop, |s: IOStream, _| async move {
            let _ = s.write(&b"hi\n"[..]).await;
        });
        server.listen(0, Some("127.0.0.1")).unwrap();
        let port = server.local_addrs()[0].port();
        let line = io_loop.run_sync(async move {
            let c = connect("localhost", port, Some(Duration::from_secs(5))).await;
            match c {
                Ok(c) => c.read_until(b"\n", None).await.unwrap(),
                // `localhost` may resolve to ::1 first on some hosts; then the v4 address is tried next.
                Err(e) => panic!("{e}"),
            }
        });
        assert_eq!(&line[..], b"hi\n");
    });
}

#[test]
fn bind_sockets_binds_an_ephemeral_port_on_every_family_with_the_same_port() {
    let socks = gale_iostream::bind_sockets(0, None, &Default::default()).unwrap();
    assert!(!socks.is_empty());
    let port = socks[0].local_addr().unwrap().port();
    assert!(socks.iter().all(|s| s.local_addr().unwrap().port() == port));
    // The port is taken now: binding it again (without reuse_port) fails with a clear error.
    let err = gale_iostream::bind_sockets(port, Some("127.0.0.1"), &Default::default()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[test]
fn reuse_port_lets_two_listeners_share_a_port() {
    let opts = gale_iostream::BindOptions { reuse_port: true, ..Default::default() };
    let a = gale_iostream::bind_sockets(0, Some("127.0.0.1"), &opts).unwrap();
    let port = a[0].local_addr().unwrap().port();
    let b = gale_iostream::bind_sockets(port, Some("127.0.0.1"), &opts).unwrap();
    assert_eq!(b[0].local_addr().unwrap().port(), port);
}

#[test]
fn unix_socket_servers_bind_and_replace_stale_files() {
    let dir = std::env::temp_dir().join(format!("gale-unix-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("sock");
    let l = gale_iostream::bind_unix_socket(&path, 0o600, 16).unwrap();
    drop(l);
    let l = gale_iostream::bind_unix_socket(&path, 0o600, 16).unwrap(); // stale file replaced
    let mut c = UnixStream::connect(&path).unwrap();
    c.write_all(b"x").unwrap();
    drop(l);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pipes_work_as_streams() {
    each_backend(|io_loop| {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let got = io_loop.run_sync(async move {
            let r = IOStream::new(r).unwrap();
            let w = IOStream::new(w).unwrap();
            w.write(&b"through a pipe\n"[..]).await.unwrap();
            r.read_until(b"\n", None).await.unwrap()
        });
        assert_eq!(&got[..], b"through a pipe\n");
    });
}

#[test]
fn accepted_sockets_get_tcp_nodelay_only_when_asked() {
    each_backend(|io_loop| {
        for on in [true, false] {
            let server = TcpServer::new(&io_loop, |stream: IOStream, _| async move {
                let nodelay = stream.with_io(|s| s.nodelay().unwrap()).unwrap();
                let _ = stream.write(if nodelay { &b"1"[..] } else { &b"0"[..] }).await;
            });
            server.set_nodelay(on);
            server.listen(0, Some("127.0.0.1")).unwrap();
            let port = server.local_addrs()[0].port();
            let seen = io_loop.run_sync(async move {
                let mut seen = Vec::new();
                // The first connection of a listener and those after it take different paths.
                for _ in 0..3 {
                    let c = connect("127.0.0.1", port, Some(Duration::from_secs(5))).await.unwrap();
                    seen.push(c.read_bytes(1, false).await.unwrap()[0]);
                }
                seen
            });
            assert_eq!(seen, [if on { b'1' } else { b'0' }; 3], "nodelay {on}");
        }
    });
}
