//! A one-file HTTP server on loopback for ADD of a URL: answers a fixed number of requests
//! with the same body, optionally slowly, then ends.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::thread::JoinHandle;
use std::time::Duration;

/// A server thread; join it to know it served every request.
pub struct Server {
    pub port: u16,
    thread: JoinHandle<()>,
}

impl Server {
    /// Serves `requests` GETs with `body` (at `bytes_per_sec` when given), then ends.
    pub fn serve(requests: usize, body: Vec<u8>, bytes_per_sec: Option<usize>) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let thread = std::thread::spawn(move || {
            for _ in 0..requests {
                let Ok((mut conn, _)) = listener.accept() else {
                    return;
                };
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if conn.write_all(head.as_bytes()).is_err() {
                    continue;
                }
                match bytes_per_sec {
                    None => {
                        let _ = conn.write_all(&body);
                    }
                    // Ten pieces a second.
                    Some(rate) => {
                        for piece in body.chunks((rate / 10).max(1)) {
                            if conn.write_all(piece).is_err() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            }
        });
        Server { port, thread }
    }

    /// Answers every request, for as long as the test runs, with what `answer` makes of its
    /// request line (`GET /path HTTP/1.1`): the whole raw response, head and body.
    pub fn forever(answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let line = request.lines().next().unwrap_or("").to_string();
                let _ = conn.write_all(&answer(&line));
            }
        });
        Server { port, thread }
    }

    /// A whole `200 OK` response carrying `body`.
    pub fn ok_response(body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// Waits until every request was served (the thread ends after the last).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}
