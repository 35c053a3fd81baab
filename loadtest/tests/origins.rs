//! Each origin answers correctly, over real sockets on 127.0.0.1:0.

use loadtest::origins::{Origin, OriginKind, BANNER};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};

fn start(kind: OriginKind, size: usize) -> Origin {
    Origin::start(kind, "127.0.0.1:0".parse().unwrap(), size).expect("origin starts")
}

#[test]
fn sink_reads_everything_and_counts_it() {
    let origin = start(OriginKind::Sink, 0);
    let mut stream = TcpStream::connect(origin.addr()).unwrap();
    let payload = vec![7u8; 3 * 1024 * 1024 + 17];
    stream.write_all(&payload).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    // The sink closes after the client's EOF, having counted every byte first.
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "a sink never answers");
    assert_eq!(origin.bytes_received(), payload.len() as u64);
}

#[test]
fn echo_returns_the_same_bytes() {
    let origin = start(OriginKind::Echo, 0);
    let mut stream = TcpStream::connect(origin.addr()).unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let payload = payload.clone();
        std::thread::spawn(move || {
            stream.write_all(&payload).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).unwrap();
    writer.join().unwrap();
    assert_eq!(echoed, payload);
}

#[test]
fn banner_speaks_first_then_echoes() {
    let origin = start(OriginKind::Banner, 0);
    let mut stream = TcpStream::connect(origin.addr()).unwrap();
    let mut greeting = vec![0u8; BANNER.len()];
    stream.read_exact(&mut greeting).unwrap();
    assert_eq!(greeting, BANNER);
    stream.write_all(b"EHLO test\r\n").unwrap();
    let mut reply = [0u8; 11];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"EHLO test\r\n");
}

#[test]
fn http1_answers_pipelined_keep_alive_requests_with_the_fixed_size() {
    let origin = start(OriginKind::Http1, 100);
    let mut stream = TcpStream::connect(origin.addr()).unwrap();
    // Two GETs and a POST with a body, in one write, the POST split across a second write.
    stream.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\nGET /x HTTP/1.1\r\nhost: a\r\n\r\nPOST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhe").unwrap();
    stream.write_all(b"llo").unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..3 {
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK\r\n");
        let mut content_length = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = Some(value.trim().parse::<usize>().unwrap());
            }
        }
        assert_eq!(content_length, Some(100));
        let mut body = vec![0u8; 100];
        reader.read_exact(&mut body).unwrap();
        assert!(body.iter().all(|&b| b == b'x'));
    }
}

#[test]
fn http1_closes_after_answering_a_request_that_asks_for_it() {
    let origin = start(OriginKind::Http1, 10);
    let mut stream = TcpStream::connect(origin.addr()).unwrap();
    // The second request, behind the one asking to close, is not answered.
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: keep-alive, Close\r\n\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    // Ends: the origin closed after its one answer.
    stream.read_to_string(&mut answer).unwrap();
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 10\r\nconnection: close\r\n\r\nxxxxxxxxxx"
    );
}

#[test]
fn h2_answers_concurrent_streams_with_the_fixed_size() {
    let origin = start(OriginKind::H2, 70_000);
    let addr = origin.addr();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(socket).await.unwrap();
        tokio::spawn(connection);
        let mut readers = Vec::new();
        for _ in 0..4 {
            let mut client = client.clone().ready().await.unwrap();
            let request = http::Request::get(format!("http://{addr}/"))
                .body(())
                .unwrap();
            let (response, _) = client.send_request(request, true).unwrap();
            // Bodies are read concurrently: the connection window is shared, so
            // reading one stream at a time could stall on the others' unread data.
            readers.push(tokio::spawn(read_body(response)));
        }
        for reader in readers {
            let received = reader.await.unwrap();
            assert_eq!(
                received, 70_000,
                "a body larger than the initial window arrives whole"
            );
        }
    });
}

async fn read_body(response: h2::client::ResponseFuture) -> usize {
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        received += chunk.len();
        body.flow_control().release_capacity(chunk.len()).unwrap();
    }
    received
}

#[test]
fn standalone_origin_reports_its_port_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["origin", "echo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream.write_all(b"ping").unwrap();
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ping");
    child.kill().unwrap();
    child.wait().unwrap();
}
