//! A software backend: readiness set by the application, from interrupt
//! handlers on bare metal.

#[cfg(any(test, feature = "testing"))]
use core::sync::atomic::AtomicI32;
use core::sync::atomic::{AtomicBool, Ordering, fence};
use core::time::Duration;

use crate::platform::{Platform, Poll, Waiting};
use crate::{Backend, Error, Events, OsError, RawFd, Renew, Token};

/// Readiness flags for `M` software event sources, numbered `0..M`, that an
/// application sets and clears: from an interrupt handler on bare metal, from
/// another thread, or from a test.
///
/// Readiness is level-triggered, like a socket's: it stays set until the
/// application clears it. There is one atomic flag per (source, event),
/// written with plain atomic stores and read with plain loads, never a
/// read-modify-write: so it builds for targets without compare-and-swap
/// (`thumbv6m-none-eabi`: Cortex-M0/M0+, `riscv32imc-unknown-none-elf`), and
/// an interrupt handler setting `READ` cannot undo the thread clearing
/// `WRITE` of the same source, or the other way round. All methods take
/// `&self`, so a `static` instance is shared with interrupt handlers.
/// Numbers outside `0..M`, and bits other than `READ` and `WRITE`, are
/// ignored.
pub struct SoftReadiness<const M: usize> {
    read: [AtomicBool; M],
    write: [AtomicBool; M],
}

impl<const M: usize> SoftReadiness<M> {
    /// All sources not ready. `const`, for a `static`.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            read: [const { AtomicBool::new(false) }; M],
            write: [const { AtomicBool::new(false) }; M],
        }
    }

    /// Marks `fd` ready for `events` (added to what it was ready for).
    #[inline]
    pub fn set(&self, fd: RawFd, events: Events) {
        self.store(fd, events, true);
    }

    /// Marks `fd` no longer ready for `events`.
    #[inline]
    pub fn clear(&self, fd: RawFd, events: Events) {
        self.store(fd, events, false);
    }

    /// What `fd` is ready for now.
    #[inline]
    pub fn get(&self, fd: RawFd) -> Events {
        index(fd, M).map_or(Events::empty(), |i| self.at(i))
    }

    fn store(&self, fd: RawFd, events: Events, value: bool) {
        if let Some(i) = index(fd, M) {
            if events.contains(Events::READ) {
                self.read[i].store(value, Ordering::Release);
            }
            if events.contains(Events::WRITE) {
                self.write[i].store(value, Ordering::Release);
            }
        }
    }

    /// The readiness of source `i < M`.
    #[inline]
    fn at(&self, i: usize) -> Events {
        let ready = self.at_relaxed(i);
        fence(Ordering::Acquire);
        ready
    }

    /// The readiness of source `i < M`, read with relaxed loads: the caller
    /// puts an `Acquire` fence after them before it hands out what it read
    /// (one fence for a whole scan, not one barrier per flag).
    #[inline]
    fn at_relaxed(&self, i: usize) -> Events {
        let mut ready = Events::empty();
        if self.read[i].load(Ordering::Relaxed) {
            ready |= Events::READ;
        }
        if self.write[i].load(Ordering::Relaxed) {
            ready |= Events::WRITE;
        }
        ready
    }
}

impl<const M: usize> Default for SoftReadiness<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// `fd` as an index below `m`.
#[inline]
fn index(fd: RawFd, m: usize) -> Option<usize> {
    usize::try_from(fd).ok().filter(|&i| i < m)
}

/// What the backend keeps for one source: 12 bytes on 32-bit targets (the
/// token as two halves, so that the entry needs no 8-byte alignment).
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    /// `Token.0` split in halves (low, high).
    token: [u32; 2],
    /// `Events` bits watched for; 0: not watched.
    interest: u8,
    /// `Events` bits reported by the last `wait`, for a source in its batch
    /// (`ready[..len]`; not read for the others); 0: dropped by an `add`
    /// since (a new registration of the source).
    fired: u8,
}

impl Entry {
    const EMPTY: Self = Self {
        token: [0; 2],
        interest: 0,
        fired: 0,
    };

    /// The raw token, put together again.
    fn raw_token(self) -> u64 {
        u64::from(self.token[0]) | (u64::from(self.token[1]) << 32)
    }

    fn watched(events: Events, token: Token) -> Self {
        let raw = token.get();
        Self {
            // Halves of a u64: the casts keep exactly 32 bits each.
            #[allow(clippy::cast_possible_truncation)]
            token: [raw as u32, (raw >> 32) as u32],
            interest: events.bits(),
            fired: 0,
        }
    }
}

/// A [`Backend`] without an operating system: sources `0..M` of a
/// [`SoftReadiness`], watched like a kernel would, waiting through the
/// [`Platform`] `P`.
///
/// It behaves like a level-triggered kernel mechanism, so the selector's
/// rules can be tested on any host, deterministically, and bare-metal
/// applications whose readiness comes from interrupts get the same selector
/// API. `add` of a number outside `0..M` fails with `EBADF`; `modify` of an
/// unwatched source with `ENOENT`. `fail_next` (feature `testing`) makes the
/// next call fail, to test error paths.
///
/// # Waiting
/// - With [`SoftBackend::new`] (platform [`Poll`]) it never waits: `wait`
///   reports what is ready at that moment, whatever the timeout. For host
///   tests and models, which set readiness themselves between calls.
/// - With [`SoftBackend::with_platform`] it waits as a kernel does:
///   `select(None)` returns only with at least one event; `select(Some(t))`
///   returns with events, or with none once `t` has passed by the platform's
///   clock, never earlier; a platform without a clock answers a positive
///   timeout with [`Error::NoClock`]. It sleeps through
///   [`Platform::sleep`], which cannot miss an interrupt that lands between
///   the backend's last look and the sleep, and it looks again only after
///   the platform wakes it (an interrupt or the deadline): no spinning.
///
/// `wait` scans the `M` sources, reading the flags of the watched ones only,
/// and reports the ready ones in ascending order (a deterministic order
/// tests may rely on).
///
/// # Size
/// 12 bytes per source plus 2 for the batch, and a few words: a
/// `SoftBackend<8>` with a zero-sized platform is 120 bytes on
/// `thumbv7m-none-eabi`, measured by
/// `demos/firmware`'s `contract` program.
pub struct SoftBackend<'r, const M: usize, P = Poll> {
    readiness: &'r SoftReadiness<M>,
    entries: [Entry; M],
    /// Sources with an event in the last `wait`, in order: `ready[..len]`.
    ready: [u16; M],
    len: u16,
    /// The errno the next call fails with (feature `testing`); 0: none. An
    /// atomic, not a `Cell`, so the test hook leaves the type `Sync`.
    #[cfg(any(test, feature = "testing"))]
    fail_next: AtomicI32,
    platform: P,
}

impl<'r, const M: usize> SoftBackend<'r, M, Poll> {
    /// A backend watching nothing yet, reading readiness from `readiness`,
    /// that never waits (platform [`Poll`]).
    pub const fn new(readiness: &'r SoftReadiness<M>) -> Self {
        Self::build(readiness, Poll)
    }
}

impl<'r, const M: usize, P: Platform> SoftBackend<'r, M, P> {
    /// A backend watching nothing yet, reading readiness from `readiness`,
    /// that waits through `platform`. `M` is at most 65,535 (a compile-time
    /// check).
    pub const fn with_platform(readiness: &'r SoftReadiness<M>, platform: P) -> Self {
        Self::build(readiness, platform)
    }
}

impl<'r, const M: usize, P> SoftBackend<'r, M, P> {
    const fn build(readiness: &'r SoftReadiness<M>, platform: P) -> Self {
        const {
            assert!(
                M <= u16::MAX as usize,
                "SoftBackend: at most 65,535 sources"
            );
        };
        Self {
            readiness,
            entries: [Entry::EMPTY; M],
            ready: [0; M],
            len: 0,
            #[cfg(any(test, feature = "testing"))]
            fail_next: AtomicI32::new(0),
            platform,
        }
    }

    /// Test hook (feature `testing`, not part of the API): makes the next
    /// `add`, `modify`, `delete` or `wait` fail with `error`, changing
    /// nothing: a kernel refusing a call.
    #[cfg(any(test, feature = "testing"))]
    pub fn fail_next(&self, error: OsError) {
        self.fail_next.store(error.raw(), Ordering::Relaxed);
    }

    /// What `fd` is watched for (the "kernel's" view), or `None`.
    pub fn interest(&self, fd: RawFd) -> Option<Events> {
        index(fd, M)
            .map(|i| self.entries[i].interest)
            .filter(|&bits| bits != 0)
            .map(Events::from_bits_retain)
    }

    /// The platform, e.g. to read its clock.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The platform, mutably.
    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    fn slot(fd: RawFd) -> Result<usize, OsError> {
        index(fd, M).ok_or(OsError::EBADF)
    }

    /// The failure armed by `fail_next` (feature `testing`), if any.
    #[inline]
    #[cfg_attr(
        not(any(test, feature = "testing")),
        allow(
            clippy::unused_self,
            clippy::unnecessary_wraps,
            reason = "the test hook's failure comes from here with the `testing` feature"
        )
    )]
    fn injected(&mut self) -> Result<(), OsError> {
        #[cfg(any(test, feature = "testing"))]
        {
            let errno = core::mem::take(self.fail_next.get_mut());
            if errno != 0 {
                return Err(OsError::from_raw(errno));
            }
        }
        Ok(())
    }

    /// Fills the (empty) batch with every watched source that is ready for
    /// some of what it is watched for, in ascending order; returns the
    /// batch length. An unwatched source's flags are not read.
    fn scan(&mut self) -> usize {
        let mut len = 0;
        for i in 0..M {
            if self.entries[i].interest != 0 {
                self.look(i, &mut len);
            }
        }
        if len > 0 {
            // Pairs with the `Release` stores of `set`: what an interrupt
            // handler wrote before it set a flag this batch reports is
            // visible to the application that handles the event.
            fence(Ordering::Acquire);
        }
        // `len <= M <= 65,535` (checked in `with_platform`).
        #[allow(clippy::cast_possible_truncation)]
        let len16 = len as u16;
        self.len = len16;
        len
    }

    /// Adds watched source `i` to the batch (`ready[..len]`) if it is
    /// ready for some of what it is watched for.
    #[inline]
    fn look(&mut self, i: usize, len: &mut usize) {
        let (Some(entry), Some(slot)) = (self.entries.get_mut(i), self.ready.get_mut(*len)) else {
            return;
        };
        // Report all of the readiness, as a kernel reports error and
        // hang-up beyond the interest; the selector masks it.
        let ready = self.readiness.at_relaxed(i).bits();
        if ready & entry.interest != 0 {
            entry.fired = ready;
            // `i < M <= 65,535` (checked in `with_platform`).
            #[allow(clippy::cast_possible_truncation)]
            let i = i as u16;
            *slot = i;
            *len += 1;
        }
    }
}

/// True when a watched source is ready for some of what it is watched for:
/// the check a [`Platform`] runs with interrupts masked before it sleeps.
fn any_ready<const M: usize>(readiness: &SoftReadiness<M>, entries: &[Entry; M]) -> bool {
    entries
        .iter()
        .enumerate()
        // Relaxed: a `true` here only ends the wait; the `scan` that follows
        // reads the flags again and fences.
        .any(|(i, e)| e.interest != 0 && readiness.at_relaxed(i).bits() & e.interest != 0)
}

impl<const M: usize, P: Waiting> Backend for SoftBackend<'_, M, P> {
    type Source<'a> = RawFd;

    #[inline]
    fn fd(source: RawFd) -> RawFd {
        source
    }

    fn add(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        self.injected()?;
        let i = Self::slot(fd)?;
        if self.entries[i].interest != 0 {
            return Err(OsError::EEXIST);
        }
        self.entries[i] = Entry::watched(events, token);
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
        let i = Self::slot(fd)?;
        let fired = self.entries[i].fired;
        if self.entries[i].interest == 0 {
            return Err(OsError::ENOENT);
        }
        // Same source, same key: an event of the current batch stays (the
        // selector masks it with the new events).
        self.entries[i] = Entry {
            fired,
            ..Entry::watched(new, token)
        };
        Ok(())
    }

    fn delete(&mut self, fd: RawFd, _events: Events, _token: Token) -> Result<(), OsError> {
        self.injected()?;
        if let Ok(i) = Self::slot(fd) {
            // Unwatched. An event of the current batch keeps its token, as
            // a kernel's queued event would: the selector recognises it as
            // stale.
            self.entries[i].interest = 0;
        }
        Ok(())
    }

    fn delete_closed(&mut self, fd: RawFd, _events: Events, _token: Token) {
        if let Ok(i) = Self::slot(fd) {
            self.entries[i].interest = 0;
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        // The last batch is gone: `event` answers `None` until `scan`.
        self.len = 0;
        self.injected()?;
        let poll = P::NEVER_WAITS || timeout == Some(Duration::ZERO);
        // The deadline is measured from the call. `None`: forever (no
        // timeout, or one too large to add to the clock).
        let deadline = match timeout {
            Some(t) if !poll => {
                let now = self.platform.now().ok_or(Error::NoClock)?;
                now.checked_add(t)
            }
            _ => None,
        };
        loop {
            let n = self.scan();
            if n > 0 || poll {
                return Ok(n);
            }
            // Nested, not a let chain: the MSRV is 1.85.
            if let Some(deadline) = deadline {
                if self.platform.now().is_some_and(|now| now >= deadline) {
                    return Ok(0);
                }
            }
            let (readiness, entries) = (self.readiness, &self.entries);
            self.platform
                .sleep(deadline, || any_ready(readiness, entries));
        }
    }

    #[inline]
    fn batch_len(&self) -> usize {
        usize::from(self.len)
    }

    fn event(&self, index: usize) -> Option<(u64, Events)> {
        if index >= usize::from(self.len) {
            return None;
        }
        let entry = self.entries[usize::from(self.ready[index])];
        // 0: deleted and added again since the `wait`.
        (entry.fired != 0).then(|| (entry.raw_token(), Events::from_bits_retain(entry.fired)))
    }
}

impl<const M: usize, P: Waiting + Clone> Renew for SoftBackend<'_, M, P> {
    /// A backend over the same readiness, with a copy of the platform,
    /// watching nothing.
    fn renew(&self) -> Result<Self, OsError> {
        Ok(Self::build(self.readiness, self.platform.clone()))
    }
}

impl<const M: usize, P> core::fmt::Debug for SoftBackend<'_, M, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SoftBackend")
            .field("sources", &M)
            .finish_non_exhaustive()
    }
}
