//! The HTTP/1.1 protocol layer on its own, without sockets: parsing a typical browser request head,
//! encoding a typical response head and body, both together, and decoding a chunked body.

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gale_http1::headers::HeaderMap;
use gale_http1::proto::body::{BodyKind, Decoded, Decoder};
use gale_http1::proto::request::RequestParser;
use gale_http1::proto::response::{OutgoingResponse, ResponseContext, ResponseEncoder};
use gale_http1::proto::{Limits, Method, Version};
use std::hint::black_box;

/// What a current desktop browser sends for a page: 14 fields, 710 bytes.
const BROWSER: &[u8] = b"GET /articles/2026/event-loops?page=2&sort=new HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Dest: document\r\n\
Referer: https://www.example.com/articles/2026/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en;q=0.9,fr;q=0.8\r\n\
Cookie: session=2|1:0|10:1764000000|7:session|8:dXNlcjQy|4b3c0e6f1c2d; theme=dark\r\n\r\n";

/// What `wrk` and the instruction counter send: 3 fields.
const SHORT: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: probe\r\nAccept: */*\r\n\r\n";

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("http1/parse");
    for (name, input) in [("browser", BROWSER), ("short", SHORT)] {
        g.throughput(Throughput::Elements(1));
        let mut parser = RequestParser::new(Limits::default());
        g.bench_function(name, |b| {
            b.iter(|| {
                let (head, len) = parser.parse_slice(black_box(input)).unwrap().unwrap();
                black_box((head, len))
            })
        });
    }
    g.finish();
}

fn response_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.append("Content-Type", "text/html; charset=UTF-8");
    h.append("Cache-Control", "no-cache");
    h.append("Etag", "\"8f1e0c5d6a2b\"");
    h.append("Set-Cookie", "theme=dark; Path=/; Max-Age=31536000; SameSite=Lax");
    h.append("X-Frame-Options", "SAMEORIGIN");
    h
}

fn serialize(c: &mut Criterion) {
    let mut g = c.benchmark_group("http1/serialize");
    g.throughput(Throughput::Elements(1));
    let encoder = ResponseEncoder::new();
    let ctx = ResponseContext::new(Version::Http11, &Method::Get, true);
    let headers = response_headers();
    let body = Bytes::from(vec![b'x'; 2048]);
    let mut out = BytesMut::with_capacity(8192);
    g.bench_function("page_response", |b| {
        b.iter(|| {
            out.clear();
            let response = OutgoingResponse::new(200, &headers).with_content_length(body.len() as u64);
            let mut head = encoder.encode(&ctx, black_box(&response), &mut out).unwrap();
            head.body.encode(&body, &mut out).unwrap();
            head.body.finish(&mut out).unwrap();
            black_box(out.len())
        })
    });
    g.finish();
}

/// A request parsed and its response encoded: the protocol work of one request, less the I/O.
fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("http1/parse_and_serialize");
    g.throughput(Throughput::Elements(1));
    let encoder = ResponseEncoder::new();
    let headers = response_headers();
    let body = Bytes::from(vec![b'x'; 2048]);
    let mut parser = RequestParser::new(Limits::default());
    let mut out = BytesMut::with_capacity(8192);
    g.bench_function("browser", |b| {
        b.iter(|| {
            let (head, _) = parser.parse_slice(black_box(BROWSER)).unwrap().unwrap();
            out.clear();
            let ctx = ResponseContext::for_request(&head);
            let response = OutgoingResponse::new(200, &headers).with_content_length(body.len() as u64);
            let mut encoded = encoder.encode(&ctx, &response, &mut out).unwrap();
            encoded.body.encode(&body, &mut out).unwrap();
            encoded.body.finish(&mut out).unwrap();
            black_box(out.len())
        })
    });
    g.finish();
}

/// A 1 MiB body in 4 KiB chunks, with extensions on some chunk lines and a trailer.
fn chunked_body() -> Vec<u8> {
    let mut wire = Vec::new();
    let chunk = vec![b'z'; 4096];
    for i in 0..256 {
        if i % 16 == 0 {
            wire.extend_from_slice(b"1000;name=value\r\n");
        } else {
            wire.extend_from_slice(b"1000\r\n");
        }
        wire.extend_from_slice(&chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\nX-Checksum: 42\r\n\r\n");
    wire
}

fn chunked(c: &mut Criterion) {
    let mut g = c.benchmark_group("http1/chunked_decode");
    let wire = chunked_body();
    g.throughput(Throughput::Bytes(1 << 20));
    // As the connection sees it: the body arrives in 16 KiB reads.
    g.bench_function("1MiB_in_16KiB_reads", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(BodyKind::Chunked);
            let mut buf = BytesMut::new();
            let mut total = 0;
            let mut reads = wire.chunks(16 << 10);
            loop {
                match decoder.decode(&mut buf).unwrap() {
                    Decoded::Data(d) => total += d.len(),
                    Decoded::Done => break,
                    Decoded::NeedMore => buf.extend_from_slice(reads.next().expect("body ends before the input")),
                }
            }
            assert_eq!(total, 1 << 20);
            black_box(total)
        })
    });
    g.finish();
}

criterion_group!(benches, parse, serialize, round_trip, chunked);
criterion_main!(benches);
