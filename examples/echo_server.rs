//! Tornado's tcpecho demo on gale's `TcpServer`: every line a client sends comes back.
//!
//! ```text
//! cargo run --release --example echo_server -- --port 8888
//! printf 'hello\nworld\n' | nc -q1 127.0.0.1 8888
//! ```

use gale_examples::Options;
use gale_ioloop::IOLoop;
use gale_iostream::{IOStream, StreamError, TcpServer};

fn main() -> Result<(), gale_examples::CliError> {
    gale_examples::init_logging();
    let port = Options::from_env().port();
    let io_loop = IOLoop::new()?;
    let server = TcpServer::new(&io_loop, |stream: IOStream, peer| async move {
        log::info!("connection from {peer}");
        loop {
            match stream.read_until(b"\n", Some(64 * 1024)).await {
                Ok(line) => {
                    if stream.write(line).await.is_err() {
                        break;
                    }
                }
                Err(StreamError::Closed(_)) => break,
                Err(e) => {
                    log::warn!("{peer}: {e}");
                    break;
                }
            }
        }
        log::info!("{peer} left");
    });
    server.listen(port, Some("127.0.0.1")).map_err(|e| gale_examples::port_error(port, e))?;
    println!("echo server listening on 127.0.0.1:{port}");
    Ok(io_loop.start()?)
}
