//! Kernel pipes for splice(2), and the per-shard pool that lends them.
//!
//! A pipe is only borrowed while bytes are in flight: an idle connection
//! holds none, so 10,000 idle connections cost no pipes at all. Pipes are
//! returned empty; one that still holds bytes (its connection failed midway)
//! is closed instead, so no stale byte can reach another connection.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// How many empty pipes a shard keeps for reuse; beyond that they are closed.
const MAX_POOLED_PIPES: usize = 256;

/// One kernel pipe, both ends non-blocking.
#[derive(Debug)]
pub struct Pipe {
    read: File,
    write: File,
    /// Bytes spliced in and not yet spliced out.
    pub(crate) buffered: usize,
}

impl Pipe {
    /// Opens a pipe and asks the kernel to raise its capacity toward
    /// `size_bytes`; a refusal (pipe-max-size, per-user limits) is not an
    /// error, the pipe just stays smaller.
    pub fn open(size_bytes: usize) -> io::Result<Pipe> {
        let (read, write) = pipe2_nonblocking()?;
        let _ = set_pipe_size(write.as_raw_fd(), size_bytes);
        Ok(Pipe {
            read: File::from(read),
            write: File::from(write),
            buffered: 0,
        })
    }

    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// Takes buffered bytes out of the pipe into user space (the slow path,
    /// used only when the destination socket is full).
    pub fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&self.read).read(buf)?;
        self.buffered -= n;
        Ok(n)
    }

    /// Puts bytes read in user space into the pipe, ahead of what is spliced
    /// after them.
    pub fn write_from(&mut self, bytes: &[u8]) -> io::Result<()> {
        (&self.write).write_all(bytes)?;
        self.buffered += bytes.len();
        Ok(())
    }
}

/// The pipes of one shard.
#[derive(Debug)]
pub struct PipePool {
    idle: RefCell<Vec<Pipe>>,
    size_bytes: usize,
    /// Pipes lent out right now (a gauge on /metrics: it must return to 0).
    in_use: Cell<usize>,
}

impl PipePool {
    pub fn new(size_bytes: usize) -> PipePool {
        PipePool {
            idle: RefCell::new(Vec::new()),
            size_bytes,
            in_use: Cell::new(0),
        }
    }

    pub fn take(&self) -> io::Result<Pipe> {
        let pipe = match self.idle.borrow_mut().pop() {
            Some(pipe) => pipe,
            None => Pipe::open(self.size_bytes)?,
        };
        self.in_use.set(self.in_use.get() + 1);
        Ok(pipe)
    }

    pub fn give_back(&self, pipe: Pipe) {
        self.in_use.set(self.in_use.get() - 1);
        let mut idle = self.idle.borrow_mut();
        if pipe.buffered == 0 && idle.len() < MAX_POOLED_PIPES {
            idle.push(pipe);
        }
    }

    pub fn in_use(&self) -> usize {
        self.in_use.get()
    }

    pub fn idle(&self) -> usize {
        self.idle.borrow().len()
    }
}

/// splice(2) between a socket and a pipe, never blocking: with
/// `SPLICE_F_NONBLOCK` and O_NONBLOCK sockets it returns `WouldBlock`
/// instead of parking the shard's thread.
pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both fds are open for the duration of the call (borrowed from
    // live owners by the caller); null offsets are valid for pipes and
    // sockets; the kernel does not touch user memory.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn pipe2_nonblocking() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_pipe_size(fd: RawFd, size_bytes: usize) -> io::Result<usize> {
    let size = libc::c_int::try_from(size_bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ takes an int argument and only acts on `fd`.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn pool_reuses_empty_pipes_and_drops_dirty_ones() {
        let pool = PipePool::new(1 << 16);
        let pipe = pool.take().unwrap();
        assert_eq!(pool.in_use(), 1);
        pool.give_back(pipe);
        assert_eq!((pool.in_use(), pool.idle()), (0, 1));

        let mut dirty = pool.take().unwrap();
        dirty.write_from(b"left over").unwrap();
        pool.give_back(dirty);
        assert_eq!((pool.in_use(), pool.idle()), (0, 0));
    }

    #[test]
    fn splice_moves_socket_bytes_through_a_pipe() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        c.set_nonblocking(true).unwrap();
        let mut pipe = Pipe::open(1 << 16).unwrap();

        assert_eq!(
            splice(b.as_raw_fd(), pipe.write_fd(), 4096)
                .unwrap_err()
                .kind(),
            io::ErrorKind::WouldBlock
        );
        a.write_all(b"hello, pipe").unwrap();
        let n = splice(b.as_raw_fd(), pipe.write_fd(), 4096).unwrap();
        pipe.buffered += n;
        let n = splice(pipe.read_fd(), c.as_raw_fd(), pipe.buffered).unwrap();
        pipe.buffered -= n;
        let mut out = [0u8; 11];
        d.read_exact(&mut out).unwrap();
        assert_eq!(&out, b"hello, pipe");
        assert_eq!(pipe.buffered, 0);
    }
}
