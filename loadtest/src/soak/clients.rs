//! The soak's byte-stream clients: one blocking connection per transfer,
//! each checked by digest. A client picked for the client-reset fault stops
//! part way and closes with SO_LINGER 0; a paced one sleeps between pieces
//! so that it is still in flight when the drain starts.

use super::http1::{self, Framing, PIECE_BYTES};
use super::ledger::{Kind, Outcome};
use super::origins::{download_path, reset};
use super::payload::{Digest, Payload, StreamHash};
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Echo bytes a client lets be in flight before it reads: well under what
/// the socket buffers, a pipe and the echo origin hold, so that writing
/// never waits on a reader that is waiting on us.
const ECHO_WINDOW_BYTES: u64 = 256 * 1024;

/// One transfer to make.
#[derive(Clone, Debug)]
pub struct Plan {
    pub kind: Kind,
    pub target: SocketAddr,
    pub seed: u64,
    pub size: usize,
    /// Reset the connection after about this many payload bytes.
    pub reset_after: Option<u64>,
    /// Sleep this long between pieces.
    pub pace: Option<Duration>,
    /// Longest any connect, read or write may block: past it, the transfer failed.
    pub io_timeout: Duration,
}

/// Why a transfer stopped short, kept apart from a corrupt one.
enum Stop {
    Status(u16, String),
    Failed(String),
    Corrupt(String),
}

impl From<std::io::Error> for Stop {
    fn from(error: std::io::Error) -> Self {
        Stop::Failed(error.to_string())
    }
}

const RESET_BY_CLIENT: &str = "reset by the client";

/// Runs a byte-stream transfer (not [`Kind::H2Stream`]) to its end.
pub fn run(plan: &Plan) -> Outcome {
    let result = connect(plan).and_then(|stream| match plan.kind {
        Kind::OpaqueEcho => echo(plan, stream),
        Kind::H1UploadFixed => upload(plan, stream, Framing::Length(plan.size as u64)),
        Kind::H1UploadChunked => upload(plan, stream, Framing::Chunked),
        Kind::H1DownloadFixed => download(plan, stream, false),
        Kind::H1DownloadChunked => download(plan, stream, true),
        Kind::H2Stream => unreachable!("HTTP/2 streams run in soak::h2"),
    });
    match result {
        Ok(()) => Outcome::Exact,
        Err(Stop::Status(code, reason)) => Outcome::Status(code, reason),
        Err(Stop::Failed(cause)) => Outcome::Failed(cause),
        Err(Stop::Corrupt(detail)) => Outcome::Corrupt(detail),
    }
}

fn connect(plan: &Plan) -> Result<TcpStream, Stop> {
    let stream = TcpStream::connect_timeout(&plan.target, plan.io_timeout)
        .map_err(|error| Stop::Failed(format!("connect: {error}")))?;
    stream.set_read_timeout(Some(plan.io_timeout))?;
    stream.set_write_timeout(Some(plan.io_timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Compares what arrived with what was meant to.
fn check(what: &str, got: Digest, expected: Digest) -> Result<(), Stop> {
    match Outcome::compare(what, got, expected) {
        Outcome::Exact => Ok(()),
        Outcome::Corrupt(detail) => Err(Stop::Corrupt(detail)),
        Outcome::Failed(cause) | Outcome::Status(_, cause) => Err(Stop::Failed(cause)),
    }
}

fn echo(plan: &Plan, mut stream: TcpStream) -> Result<(), Stop> {
    let mut payload = Payload::new(plan.seed, plan.size);
    let mut piece = vec![0u8; PIECE_BYTES];
    let mut scratch = vec![0u8; 64 * 1024];
    let (mut sent, mut received) = (StreamHash::default(), StreamHash::default());
    loop {
        if plan.reset_after.is_some_and(|limit| sent.len() >= limit) {
            reset(&stream);
            return Err(Stop::Failed(RESET_BY_CLIENT.into()));
        }
        let bytes = payload.next(&mut piece);
        if bytes.is_empty() {
            break;
        }
        stream.write_all(bytes)?;
        sent.update(bytes);
        if let Some(pause) = plan.pace {
            std::thread::sleep(pause);
        }
        while received.len() + ECHO_WINDOW_BYTES < sent.len() {
            match stream.read(&mut scratch)? {
                0 => break,
                n => received.update(&scratch[..n]),
            }
        }
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    loop {
        match stream.read(&mut scratch)? {
            0 => break,
            n => received.update(&scratch[..n]),
        }
    }
    check("echo", received.finish(), sent.finish())
}

fn upload(plan: &Plan, stream: TcpStream, framing: Framing) -> Result<(), Stop> {
    let mut writer = BufWriter::new(stream.try_clone()?);
    write!(
        writer,
        "POST /upload HTTP/1.1\r\nhost: soak\r\n{}\r\n",
        http1::framing_header(framing)
    )?;
    let payload = Payload::new(plan.seed, plan.size);
    http1::write_body(&mut writer, framing, payload, plan.reset_after, plan.pace)?;
    if plan.reset_after.is_some() {
        reset(&stream);
        return Err(Stop::Failed(RESET_BY_CLIENT.into()));
    }
    let mut reader = BufReader::new(stream);
    let head = response_head(&mut reader)?;
    let Framing::Length(len @ 0..=64) = head.framing()? else {
        return Err(Stop::Corrupt("upload answer is not a short digest".into()));
    };
    let mut text = vec![0u8; len as usize];
    reader.read_exact(&mut text)?;
    let got: Digest = String::from_utf8_lossy(&text)
        .parse()
        .map_err(|()| Stop::Corrupt("upload answer is not a digest".into()))?;
    check("upload", got, Payload::digest(plan.seed, plan.size))
}

fn download(plan: &Plan, stream: TcpStream, chunked: bool) -> Result<(), Stop> {
    let path = download_path(plan.seed, plan.size, chunked);
    (&stream).write_all(format!("GET {path} HTTP/1.1\r\nhost: soak\r\n\r\n").as_bytes())?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let head = response_head(&mut reader)?;
    let mut hash = StreamHash::default();
    let ended = http1::read_body(&mut reader, head.framing()?, &mut hash, plan.reset_after)?;
    if !ended {
        reset(&stream);
        return Err(Stop::Failed(RESET_BY_CLIENT.into()));
    }
    check(
        "download",
        hash.finish(),
        Payload::digest(plan.seed, plan.size),
    )
}

/// A response head; anything but 200 failed, with ringside's reason if it gave one.
fn response_head(reader: &mut BufReader<TcpStream>) -> Result<http1::Head, Stop> {
    let head = http1::read_head(reader, false)?
        .ok_or_else(|| Stop::Failed("closed before a response".into()))?;
    if head.code != 200 {
        let reason = head.header("ringside-proxy-error").unwrap_or("no reason");
        return Err(Stop::Status(head.code, reason.to_owned()));
    }
    Ok(head)
}
