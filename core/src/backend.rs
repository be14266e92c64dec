//! The contract between the selector and an operating system.

use core::time::Duration;

use crate::{Error, Events, OsError, RawFd, Token};

/// What an OS crate implements: the kernel's interest set and its wait call.
///
/// The [`Selector`](crate::Selector) owns the key table and decides every
/// policy question before a backend is called: an fd is added only when it is
/// not registered, modified or deleted only when it is, events are always
/// valid ([`Events::is_valid`]) and tokens always unique. So every backend
/// gives the same errors for the same misuse, and a backend only translates:
/// one `Events → native` and one `native → Events` mapping, and the calls.
///
/// # Contract
/// - **Atomic.** A method that returns `Err` leaves the kernel's interest set
///   as it was (a backend that needs two kernel changes for one `modify`
///   rolls the first back when the second fails).
/// - Sources: a backend names what it watches by [`Source`](Self::Source):
///   `BorrowedFd<'_>` for the OS backends, so the caller proves the fd is
///   open for the duration of the call and no backend ever makes a
///   `BorrowedFd` out of a number (I/O safety); a plain number for
///   [`SoftBackend`](crate::SoftBackend). [`fd`](Self::fd) gives the number
///   the key table files it under.
/// - `delete` succeeds when the source is no longer watched afterwards,
///   including when the kernel does not know it (`ENOENT`: the number was
///   closed and now names another file): Python's selectors succeed too.
/// - [`delete_closed`](Self::delete_closed) is told of a key whose fd the
///   application says it closed while it was registered: the fd cannot be
///   borrowed, and its number may name another file by now.
/// - Tokens: a backend stores [`Token::get`] with the registration and hands
///   that raw value back, unchanged, with each event. It never makes up a
///   token of its own but a [reserved](Token::reserved) one: its own
///   registrations (a waker's) are made under [`Token::INTERNAL`] on fds it
///   owns and never hands out, so no `add`, `modify` or `delete` of an
///   application's source can reach them.
/// - `wait` stores the events in the backend's own fixed-size buffer and
///   returns how many it stored; [`event`](Self::event) reads them back until
///   the next `wait`. A token appears at most once per `wait` (merge read and
///   write readiness of one fd into one event). Error and hang-up conditions
///   are reported as `READ | WRITE`, the way Python's selectors do; the
///   selector masks them with the key's registered events.
/// - Timeouts: `None` blocks until an event; `Some(Duration::ZERO)` polls; a
///   positive timeout never returns early by the backend's clock (round up, never down, so a
///   sub-millisecond timeout does not become a busy poll), and
///   `Duration::MAX` neither overflows nor fails. Returning `Ok(0)` means the
///   time ran out. An interrupted wait (`EINTR`) is retried with the time
///   that is left, never reported. A backend without a clock refuses a
///   positive timeout with [`Error::NoClock`] rather than return early.
/// - Events tagged with a reserved token ([`Token::INTERNAL`]: a backend's
///   own waker, say) are allowed: the selector never delivers them.
/// - Every event a `wait` returns belongs to a registration the backend
///   holds at that moment: one the selector added and has not deleted (or
///   reported closed), or a reserved one; except, for a backend that says
///   [`REGISTRATIONS_OUTLIVE_FDS`](Self::REGISTRATIONS_OUTLIVE_FDS), a
///   registration the kernel kept for a key the selector no longer has,
///   which the selector reports ([`Error::StaleRegistration`]).
///
/// # Example
/// A complete backend for a world where every watched fd is always ready for
/// what it is watched for (as `poll` treats regular files):
///
/// ```
/// use core::time::Duration;
/// use ioselect_core::{Backend, Error, Events, OsError, RawFd, Selector, Token};
///
/// #[derive(Default)]
/// struct AlwaysReady {
///     watched: heapless::Vec<(RawFd, Events, Token), 8>,
///     ready: heapless::Vec<(u64, Events), 8>,
/// }
///
/// impl AlwaysReady {
///     fn position(&self, fd: RawFd) -> Result<usize, OsError> {
///         self.watched.iter().position(|w| w.0 == fd).ok_or(OsError::ENOENT)
///     }
/// }
///
/// impl Backend for AlwaysReady {
///     type Source<'a> = RawFd;
///     fn fd(source: RawFd) -> RawFd {
///         source
///     }
///     fn add(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
///         self.watched.push((fd, events, token)).map_err(|_| OsError::ENOMEM)
///     }
///     fn modify(&mut self, fd: RawFd, _old: Events, new: Events, token: Token) -> Result<(), OsError> {
///         let i = self.position(fd)?;
///         self.watched[i] = (fd, new, token);
///         Ok(())
///     }
///     fn delete(&mut self, fd: RawFd, _events: Events, _token: Token) -> Result<(), OsError> {
///         if let Ok(i) = self.position(fd) {
///             self.watched.swap_remove(i);
///         }
///         Ok(())
///     }
///     fn wait(&mut self, _timeout: Option<Duration>) -> Result<usize, Error> {
///         self.ready.clear();
///         for &(_, events, token) in &self.watched {
///             let _ = self.ready.push((token.get(), events));
///         }
///         Ok(self.ready.len())
///     }
///     fn event(&self, index: usize) -> Option<(u64, Events)> {
///         self.ready.get(index).copied()
///     }
///     fn batch_len(&self) -> usize {
///         self.ready.len()
///     }
/// }
///
/// let mut sel: Selector<AlwaysReady, &str, 8> = Selector::new(AlwaysReady::default());
/// // Keys are made by the selector, which hands the backend their tokens.
/// sel.register(3, Events::READ, "three")?;
/// sel.register(4, Events::READ | Events::WRITE, "four")?;
/// sel.select(Some(Duration::ZERO))?;
/// let mut seen = 0;
/// while let Some((key, ready)) = sel.next_ready() {
///     assert_eq!(ready, key.events());
///     seen += 1;
/// }
/// assert_eq!(seen, 2);
/// # Ok::<(), ioselect_core::Error>(())
/// ```
pub trait Backend {
    /// How a caller names an I/O source to this backend: `BorrowedFd<'a>`
    /// for the OS backends, a plain [`RawFd`] for a software one.
    type Source<'a>: Copy;

    /// True for a backend whose kernel can go on watching a file after
    /// the number it was registered under is closed (epoll: a file closed
    /// while registered that lives on in a `dup` or a child, which no
    /// `epoll_ctl` can name any more). The selector then looks out for
    /// events of registrations it no longer has and reports them
    /// ([`Error::StaleRegistration`]) instead of letting them end every
    /// wait in silence. False (the default) when every event a `wait`
    /// returns belongs to a registration the backend holds: the selector
    /// then keeps no such watch, and its code is left out.
    const REGISTRATIONS_OUTLIVE_FDS: bool = false;

    /// The number the key table files `source` under (its fd).
    fn fd(source: Self::Source<'_>) -> RawFd;

    /// Starts watching `source` for `events`; its readiness comes back
    /// tagged with `token`. The source is not watched yet.
    ///
    /// # Errors
    /// The kernel's refusal (`EPERM` for a file epoll cannot watch,
    /// `ENOMEM`, `EEXIST` when the kernel still watches this open file under
    /// this number for a key the selector no longer has, …); the interest
    /// set is unchanged.
    fn add(
        &mut self,
        source: Self::Source<'_>,
        events: Events,
        token: Token,
    ) -> Result<(), OsError>;

    /// Changes the events `source` is watched for from `old` to `new` (they
    /// differ), keeping `token`.
    ///
    /// # Errors
    /// The kernel's refusal; the source is then watched for `old` as before.
    fn modify(
        &mut self,
        source: Self::Source<'_>,
        old: Events,
        new: Events,
        token: Token,
    ) -> Result<(), OsError>;

    /// Stops watching `source`, which was watched for `events` under `token`
    /// (the token lets a backend that needs several kernel changes add back
    /// what it deleted when a later change fails).
    ///
    /// # Errors
    /// Only when the source is still watched afterwards, for `events` as
    /// before.
    fn delete(
        &mut self,
        source: Self::Source<'_>,
        events: Events,
        token: Token,
    ) -> Result<(), OsError>;

    /// The application says it closed `fd` while it was registered for
    /// `events` under `token`
    /// ([`Selector::unregister_closed`](crate::Selector::unregister_closed)):
    /// remove whatever is left of that registration, without an fd to
    /// borrow. The number may be open still (the application was wrong, or
    /// is about to close it), or name another file by now; a backend that
    /// makes a kernel call here must touch no registration but the one the
    /// number names, and never its own. It cannot fail: what cannot be
    /// removed (epoll: an open file that lives on in a `dup` under a closed
    /// number) shows up as events the selector reports as
    /// [`Error::StaleRegistration`]. The default does nothing: closing the
    /// last fd of a file removed it from epoll's and kqueue's interest sets.
    fn delete_closed(&mut self, fd: RawFd, events: Events, token: Token) {
        let _ = (fd, events, token);
    }

    /// Waits for readiness, at most `timeout` (`None`: forever), and returns
    /// the number of events stored for [`event`](Self::event), which
    /// [`batch_len`](Self::batch_len) then answers.
    ///
    /// # Errors
    /// [`Error::Os`] when the kernel refuses the wait itself, or
    /// [`Error::NoClock`] for a positive timeout a backend cannot measure;
    /// never `EINTR`, never a timeout (that is `Ok(0)`).
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error>;

    /// The raw token ([`Token::get`]) and readiness of event `index` of the
    /// last `wait`, or `None` when `index` is not below the count that
    /// `wait` returned.
    fn event(&self, index: usize) -> Option<(u64, Events)>;

    /// The count the last successful [`wait`](Self::wait) returned: the
    /// events [`event`](Self::event) answers for. 0 for a backend that has
    /// not waited yet. The selector reads its batch's length here, and only
    /// here (one count, kept by the backend that stores the events); after
    /// a failed wait it reads nothing, whatever this says. A debug build
    /// checks, at every successful `select`, that it is `wait`'s count; a
    /// release build that meets a larger one looks at the indices past the
    /// count, for which `event` (and so the default `event_in_batch`)
    /// answers `None`, and delivers nothing more; a backend that overrides
    /// `event_in_batch` has only its count between old entries and keys.
    fn batch_len(&self) -> usize;

    /// [`event`](Self::event) for an `index` the caller knows is below the
    /// count that the last `wait` returned: the selector's hot path, which
    /// already checks its cursor against that count. A backend may skip
    /// checking it again (epoll does: 2 instructions an event). Past the
    /// count, and past the buffer, it must still stay within its buffer:
    /// an entry of it (an event of this or an earlier wait, or an empty
    /// one) or `None`, and never a panic. The default is `event`.
    #[inline]
    fn event_in_batch(&self, index: usize) -> Option<(u64, Events)> {
        self.event(index)
    }
}

/// A backend that opens its kernel object without arguments: the OS
/// backends (`Epoll`, `Kqueue`). It gives every selector over it the same
/// constructor on every platform: [`Selector::open`](crate::Selector::open).
pub trait OpenBackend: Backend + Sized {
    /// Creates the kernel object (e.g. `epoll_create1(EPOLL_CLOEXEC)`).
    ///
    /// # Errors
    /// The kernel's refusal, e.g. `EMFILE` when the process is out of fds.
    fn open() -> Result<Self, OsError>;
}

/// A backend that can start over: what
/// [`SelectorIn::rebuild`](crate::SelectorIn::rebuild) needs.
pub trait Renew: Backend + Sized {
    /// A new backend with an empty interest set that keeps this one's own
    /// registrations (its waker: wakers made for this backend wake the new
    /// one).
    ///
    /// # Errors
    /// The kernel's refusal, e.g. `EMFILE`.
    fn renew(&self) -> Result<Self, OsError>;
}
