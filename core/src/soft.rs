//! A software backend: readiness set by the application.

use core::cell::Cell;
use core::sync::atomic::{AtomicU8, Ordering};
use core::time::Duration;

use heapless::Vec;

use crate::{Backend, Error, Events, OsError, RawFd, Renew, Token};

/// Readiness flags for `M` software event sources, numbered `0..M`, that an
/// application sets and clears: from an interrupt handler on bare metal, from
/// another thread, or from a test.
///
/// Readiness is level-triggered, like a socket's: it stays set until the
/// application clears it. All methods take `&self` and are lock-free
/// (`fetch_or`/`fetch_and` on an `AtomicU8`), so a `static` instance can be
/// shared with interrupt handlers. Numbers outside `0..M` are ignored.
pub struct SoftReadiness<const M: usize> {
    ready: [AtomicU8; M],
}

impl<const M: usize> SoftReadiness<M> {
    /// All sources not ready. `const`, for a `static`.
    pub const fn new() -> Self {
        Self {
            ready: [const { AtomicU8::new(0) }; M],
        }
    }

    /// Marks `fd` ready for `events` (added to what it was ready for).
    pub fn set(&self, fd: RawFd, events: Events) {
        if let Some(r) = self.flag(fd) {
            r.fetch_or(events.bits(), Ordering::Release);
        }
    }

    /// Marks `fd` no longer ready for `events`.
    pub fn clear(&self, fd: RawFd, events: Events) {
        if let Some(r) = self.flag(fd) {
            r.fetch_and(!events.bits(), Ordering::Release);
        }
    }

    /// What `fd` is ready for now.
    pub fn get(&self, fd: RawFd) -> Events {
        self.flag(fd).map_or(Events::empty(), |r| {
            Events::from_bits_retain(r.load(Ordering::Acquire))
        })
    }

    fn flag(&self, fd: RawFd) -> Option<&AtomicU8> {
        usize::try_from(fd).ok().and_then(|i| self.ready.get(i))
    }
}

impl<const M: usize> Default for SoftReadiness<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`Backend`] without an operating system: sources `0..M` of a
/// [`SoftReadiness`], watched like a kernel would.
///
/// It behaves like a level-triggered kernel mechanism, so the selector's
/// rules can be tested on any host, deterministically, and bare-metal
/// applications whose readiness comes from interrupts get the same selector
/// API. `add` of a number outside `0..M` fails with `EBADF`; `modify` of an
/// unwatched source with `ENOENT`. `fail_next` (feature `testing`) makes the
/// next call fail, to test error paths.
///
/// It cannot sleep by itself: when nothing is ready and the timeout is not
/// zero, `wait` calls the idle hook (if one is set, e.g. one that executes
/// `wfi` or advances a test's clock) once with the timeout and looks again.
/// Without a hook it returns no events. `wait` scans all `M` sources and
/// reports the ready ones in ascending order (a deterministic order tests
/// may rely on).
pub struct SoftBackend<'r, const M: usize> {
    readiness: &'r SoftReadiness<M>,
    interest: [Option<(Events, Token)>; M],
    ready: Vec<(Token, Events), M>,
    idle: Option<fn(Option<Duration>)>,
    fail_next: Cell<Option<OsError>>,
}

impl<'r, const M: usize> SoftBackend<'r, M> {
    /// A backend watching nothing yet, reading readiness from `readiness`.
    pub const fn new(readiness: &'r SoftReadiness<M>) -> Self {
        Self {
            readiness,
            interest: [None; M],
            ready: Vec::new(),
            idle: None,
            fail_next: Cell::new(None),
        }
    }

    /// Sets the hook `wait` calls when nothing is ready and the timeout is
    /// not zero.
    #[must_use]
    pub const fn with_idle(mut self, idle: fn(Option<Duration>)) -> Self {
        self.idle = Some(idle);
        self
    }

    /// Test hook (feature `testing`, not part of the API): makes the next
    /// `add`, `modify`, `delete` or `wait` fail with `error`, changing
    /// nothing: a kernel refusing a call.
    #[cfg(any(test, feature = "testing"))]
    pub fn fail_next(&self, error: OsError) {
        self.fail_next.set(Some(error));
    }

    /// What `fd` is watched for (the "kernel's" view), or `None`.
    pub fn interest(&self, fd: RawFd) -> Option<Events> {
        self.slot(fd)
            .ok()
            .and_then(|i| self.interest[i])
            .map(|(events, _)| events)
    }

    fn slot(&self, fd: RawFd) -> Result<usize, OsError> {
        usize::try_from(fd)
            .ok()
            .filter(|&i| i < M)
            .ok_or(OsError::EBADF)
    }

    fn injected(&self) -> Result<(), OsError> {
        self.fail_next.take().map_or(Ok(()), Err)
    }

    fn scan(&mut self) {
        self.ready.clear();
        for (fd, interest) in self.interest.iter().enumerate() {
            if let Some((events, token)) = *interest {
                let ready =
                    Events::from_bits_retain(self.readiness.ready[fd].load(Ordering::Acquire));
                // Report all of the readiness, as a kernel reports error and
                // hang-up beyond the interest; the selector masks it.
                if ready.intersects(events) && self.ready.push((token, ready)).is_err() {
                    break;
                }
            }
        }
    }
}

impl<const M: usize> Backend for SoftBackend<'_, M> {
    type Source<'a> = RawFd;

    #[inline]
    fn fd(source: RawFd) -> RawFd {
        source
    }

    fn add(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        self.injected()?;
        let i = self.slot(fd)?;
        if self.interest[i].is_some() {
            return Err(OsError::EEXIST);
        }
        self.interest[i] = Some((events, token));
        Ok(())
    }

    fn modify(
        &mut self,
        fd: RawFd,
        _old: Events,
        new: Events,
        token: Token,
    ) -> Result<(), OsError> {
        self.injected()?;
        let i = self.slot(fd)?;
        match &mut self.interest[i] {
            Some(entry) => {
                *entry = (new, token);
                Ok(())
            }
            None => Err(OsError::ENOENT),
        }
    }

    fn delete(&mut self, fd: RawFd, _events: Events, _token: Token) -> Result<(), OsError> {
        self.injected()?;
        if let Ok(i) = self.slot(fd) {
            self.interest[i] = None;
        }
        Ok(())
    }

    fn forget(&mut self, fd: RawFd, _events: Events, _token: Token) {
        if let Ok(i) = self.slot(fd) {
            self.interest[i] = None;
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        self.ready.clear();
        self.injected()?;
        self.scan();
        if let Some(idle) = self.idle
            && self.ready.is_empty()
            && timeout != Some(Duration::ZERO)
        {
            idle(timeout);
            self.scan();
        }
        Ok(self.ready.len())
    }

    fn event(&self, index: usize) -> Option<(Token, Events)> {
        self.ready.get(index).copied()
    }
}

impl<const M: usize> Renew for SoftBackend<'_, M> {
    /// A backend over the same readiness, with the same idle hook, watching
    /// nothing.
    fn renew(&self) -> Result<Self, OsError> {
        Ok(Self {
            readiness: self.readiness,
            interest: [None; M],
            ready: Vec::new(),
            idle: self.idle,
            fail_next: Cell::new(None),
        })
    }
}

impl<const M: usize> core::fmt::Debug for SoftBackend<'_, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SoftBackend")
            .field("sources", &M)
            .finish_non_exhaustive()
    }
}
