//! The selector's own wake-up source: a non-blocking, close-on-exec pipe
//! whose read end each kqueue of the selector watches (the protocol:
//! [`crate::plan::wake`]). [`Kqueue`](crate::Kqueue) owns one, registers
//! it and reads it back; a [`Waker`](crate::Waker) holds `dup`s of its ends
//! and writes it.

use ioselect_core::{OsError, Token};
use rustix::event::kqueue::{Event, EventFilter, EventFlags};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;

use crate::kqueue::kevent::{apply_one, os_error, udata};
use crate::plan::wake::{self, READ_END, ReadEnd, Trigger, WriteEnd, Written};

/// Both ends of the wake-up pipe.
#[derive(Debug)]
pub(crate) struct WakePipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl WakePipe {
    /// A new pipe, both ends non-blocking and close-on-exec: `pipe2` in one
    /// call on the BSDs; on Apple's OSes, which have no `pipe2`, `pipe` and
    /// then an `fcntl` per end for each flag (kernel notes: [fork and
    /// exec](crate::kernels#fork-and-exec)).
    pub(crate) fn new() -> Result<Self, OsError> {
        #[cfg(not(target_vendor = "apple"))]
        let (read, write) = {
            use rustix::pipe::{PipeFlags, pipe_with};
            pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).map_err(os_error)?
        };
        #[cfg(target_vendor = "apple")]
        let (read, write) = {
            use rustix::io::{FdFlags, fcntl_setfd};
            let (read, write) = rustix::pipe::pipe().map_err(os_error)?;
            for end in [&read, &write] {
                fcntl_setfd(end, FdFlags::CLOEXEC).map_err(os_error)?;
                rustix::fs::fcntl_setfl(end, rustix::fs::OFlags::NONBLOCK).map_err(os_error)?;
            }
            (read, write)
        };
        Ok(Self { read, write })
    }

    /// `dup`s of both ends (`F_DUPFD_CLOEXEC`; the duplicates share the pipe
    /// and its `O_NONBLOCK`, which belongs to the open file), made read end
    /// first so it takes the lower number: for a fresh kqueue of the same
    /// selector, or a [`Waker`](crate::Waker). A waker keeps the read end
    /// too, so that the pipe always has a reader while a waker can write
    /// (a write to a pipe without one raises `SIGPIPE`).
    pub(crate) fn dup(&self) -> Result<Self, OsError> {
        Ok(Self {
            read: dup_cloexec(&self.read)?,
            write: dup_cloexec(&self.write)?,
        })
    }

    /// Registers the read end in `kq` under [`Token::INTERNAL`], as
    /// [`READ_END`] says: `EV_ADD | EV_CLEAR`. The registration belongs to
    /// this read end's number and goes when it is closed.
    pub(crate) fn register(&self, kq: BorrowedFd<'_>) -> Result<(), OsError> {
        let trigger = match READ_END {
            Trigger::Edge => EventFlags::CLEAR,
            Trigger::Level => EventFlags::empty(),
        };
        apply_one(
            kq,
            Event::new(
                EventFilter::Read(self.read.as_raw_fd()),
                EventFlags::ADD | trigger | EventFlags::RECEIPT,
                udata(Token::INTERNAL),
            ),
        )
    }

    /// The read end's number: the selector's own, never an application's.
    pub(crate) fn read_fd(&self) -> i32 {
        self.read.as_raw_fd()
    }

    /// The read end (a waker's `AsFd`).
    pub(crate) fn read_end(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// One wake ([`wake::wake`]): one byte written. Async-signal-safe: one
    /// `write`.
    pub(crate) fn wake(&self) -> Result<(), OsError> {
        wake::wake(&WriteFd(self.write.as_fd())).map_err(os_error)
    }

    /// After a `wait` ([`wake::consume`]): when the batch held the pipe's
    /// event, its wake-ups are consumed and the pipe is read empty.
    pub(crate) fn consume(&self, woken: bool) -> Result<(), OsError> {
        wake::consume(self, woken).map_err(os_error)
    }
}

/// `fcntl(F_DUPFD_CLOEXEC)`.
fn dup_cloexec(fd: &OwnedFd) -> Result<OwnedFd, OsError> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).map_err(os_error)
}

impl ReadEnd for WakePipe {
    type Error = Errno;

    /// Reads until a read comes back short (usually one `read`).
    fn drain(&self) -> Result<(), Errno> {
        let mut buf = [0u8; 256];
        loop {
            match rustix::io::read(&self.read, &mut buf) {
                Ok(n) if n < buf.len() => return Ok(()),
                Err(Errno::AGAIN) => return Ok(()),
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A write end as [`WriteEnd`].
struct WriteFd<'a>(BorrowedFd<'a>);

impl WriteEnd for WriteFd<'_> {
    type Error = Errno;

    fn write_byte(&self) -> Result<Written, Errno> {
        loop {
            match rustix::io::write(self.0, &[1]) {
                Ok(_) => return Ok(Written::Byte),
                Err(Errno::AGAIN) => return Ok(Written::Full),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
