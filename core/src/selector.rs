//! The selector: a backend plus the key table, with Python's API.

use core::time::Duration;

use crate::map::{Found, Vacancy};
use crate::{
    Backend, DataError, Error, Events, KeyMapIn, KeyMut, OpenBackend, OsError, RawFd, Renew,
    SelectorKey, Slot, Storage, Token,
};

/// Python's `selectors.BaseSelector`, allocation-free: at most `N` keys with
/// user data `T`, over the kernel mechanism `B`, the table inline.
///
/// OS crates wrap it for their backend (`ioselect_linux::DefaultSelector<T,
/// N>`, a struct over this type with `BorrowedFd` methods); core's
/// [`SoftBackend`](crate::SoftBackend) drives it without an OS.
/// It is [`SelectorIn`] with inline storage: see there for every method, and
/// for tables too large to build on the stack.
pub type Selector<B, T, const N: usize> = SelectorIn<B, T, [Slot<T>; N]>;

/// A selector whose key table lives in storage `S` ([`Storage`]): inline
/// (`[Slot<T>; N]`, the [`Selector`] alias) or in memory the application
/// provides (`&mut [Slot<T>]`, `Box<[Slot<T>]>`, a `static` array).
///
/// # Memory and stack
/// The table takes `capacity * size_of::<Slot<T>>()` bytes
/// (`size_of::<Slot<u64>>()` is 40 on 64-bit targets: 2.6 MB for 65,536
/// keys), plus the backend's event buffer (epoll: 12 bytes per event on
/// x86_64 and i686, 16 elsewhere). A [`Selector`] holds both inline:
/// building one by value passes it through the stack, several times over in
/// a debug build.
/// For large tables, give the table its own memory with
/// [`with_storage`](Self::with_storage) or [`open_in`](Self::open_in):
/// that takes O(1) stack whatever the capacity, and the selector itself is
/// then the backend plus a few words. A `static` built by the `const`
/// [`Selector::new`] takes no stack at all.
///
/// ```
/// use ioselect_core::{Events, SelectorIn, Slot, SoftBackend, SoftReadiness};
///
/// static READINESS: SoftReadiness<4> = SoftReadiness::new();
/// // 100,000 slots on the heap, never on the stack (no `alloc` in the library:
/// // the application brings the memory).
/// let table: Vec<Slot<u64>> = std::iter::repeat_with(Slot::new).take(100_000).collect();
/// let mut sel = SelectorIn::with_storage(SoftBackend::new(&READINESS), table)?;
/// sel.register(1, Events::READ, 7)?;
/// assert_eq!(sel.map().capacity(), 100_000);
/// # Ok::<(), ioselect_core::Error>(())
/// ```
///
/// # Handling events while changing registrations
/// [`select`](Self::select) waits and keeps the batch of ready events inside
/// the selector; [`next_ready`](Self::next_ready) hands them out one at a
/// time. Between two calls of `next_ready` the selector is free to use, so a
/// handler may `register`, `unregister` or `modify`, the way PyMOTW's selectors
/// echo server's callbacks do. Each event is checked against the key table when it
/// is handed out: an event for a key that was unregistered meanwhile (even if
/// its fd number was registered again) is dropped, and the reported events
/// are masked by the key's events *at that moment*.
///
/// ```
/// use core::time::Duration;
/// use ioselect_core::{Events, Selector, SoftBackend, SoftReadiness};
///
/// type Sel = Selector<SoftBackend<'static, 8>, Handler, 8>;
/// // A type alias cannot name itself (`fn(&mut Sel, ..)` inside `Sel`), so the
/// // callback is wrapped in a struct, which may.
/// #[derive(Clone, Copy)]
/// struct Handler(fn(&mut Sel, i32, Events));
///
/// fn on_read(sel: &mut Sel, fd: i32, _mask: Events) {
///     // The handler changes the selector while the batch is being handled.
///     sel.unregister(fd).unwrap();
/// }
///
/// static READINESS: SoftReadiness<8> = SoftReadiness::new();
/// let mut sel: Sel = Selector::new(SoftBackend::new(&READINESS));
/// sel.register(3, Events::READ, Handler(on_read))?;
/// READINESS.set(3, Events::READ); // an interrupt handler would do this
///
/// sel.select(Some(Duration::from_millis(10)))?;
/// while let Some((key, mask)) = sel.next_ready() {
///     let (fd, Handler(callback)) = (key.fd(), *key.data());
///     callback(&mut sel, fd, mask);
/// }
/// assert!(sel.is_empty());
/// # Ok::<(), ioselect_core::Error>(())
/// ```
pub struct SelectorIn<B, T, S: Storage<T>> {
    backend: B,
    keys: KeyMapIn<T, S>,
    /// Events of the last `select` not yet handed out:
    /// `cursor..backend.batch_len()` (`usize::MAX` after a failed wait: none).
    cursor: usize,
    /// Backends whose registrations outlive their fds only: the state of
    /// the last batch, read by `select` with one compare (settled when
    /// `cursor >= end`), and by the cold path that meets an event naming
    /// no key:
    ///  - the batch's length, after the wait: nothing removed since;
    ///  - 0 once a key was removed since the wait: an event that names no
    ///    key may be one of that key's, so none is looked for;
    ///  - [`STALE`] once an event of the batch named no key although none
    ///    was removed since the wait (a registration the kernel kept for a
    ///    key the table no longer has): the next `select` reports it. A
    ///    removal keeps it.
    end: usize,
}

/// [`SelectorIn::end`] when the last batch held an event of a stale
/// registration: above every cursor of a batch.
const STALE: usize = usize::MAX;

impl<B: Backend, T, const N: usize> SelectorIn<B, T, [Slot<T>; N]> {
    /// A selector with no keys over `backend`, the table inline. `const`, so
    /// it can be built in a `static` initialiser when the backend can.
    ///
    /// `backend` may come with registrations of its own, made with
    /// [reserved](Token::reserved) tokens: their events are never delivered.
    /// No other token can be made outside the selector, so no registration
    /// made through the [`Backend`] methods can reach a key. A kernel call
    /// on the backend's own fd (`epoll_ctl` on an `Epoll`'s `as_fd()`) can:
    /// it voids the promise that every event reaches the key it belongs to.
    pub const fn new(backend: B) -> Self {
        Self::from_parts(backend, KeyMapIn::new())
    }
}

impl<B: OpenBackend, T, const N: usize> SelectorIn<B, T, [Slot<T>; N]> {
    /// Opens a new backend and a selector over it: Python's
    /// `selectors.DefaultSelector()`. The same call on every platform:
    /// `ioselect_linux::DefaultSelector::<T, N>::open()` (epoll),
    /// `ioselect_bsd::DefaultSelector::<T, N>::open()` (kqueue).
    ///
    /// # Errors
    /// [`Error::Os`] when the kernel object cannot be created.
    pub fn open() -> Result<Self, Error> {
        Ok(Self::new(B::open()?))
    }
}

impl<B: OpenBackend, T, S: Storage<T>> SelectorIn<B, T, S> {
    /// [`open`](Selector::open) with the table in `storage`: O(1) stack
    /// whatever its size (see [`with_storage`](Self::with_storage)).
    ///
    /// # Errors
    /// [`Error::InvalidCapacity`] for storage without slots (or more than
    /// `u32::MAX - 1`), checked first; [`Error::Os`] when the kernel object
    /// cannot be created. The storage comes back in the error.
    pub fn open_in(storage: S) -> Result<Self, DataError<S>> {
        // The storage is checked before any kernel object is made.
        if let Err(error) = KeyMapIn::<T, S>::capacity_of(&storage) {
            return Err(DataError {
                error,
                data: storage,
            });
        }
        match B::open() {
            Ok(backend) => Self::with_storage(backend, storage).map_err(|refused| DataError {
                error: refused.error,
                data: refused.data.1,
            }),
            Err(e) => Err(DataError {
                error: Error::Os(e),
                data: storage,
            }),
        }
    }
}

impl<B: Backend, T, S: Storage<T>> SelectorIn<B, T, S> {
    /// A selector with no keys over `backend` (see [`new`](Selector::new)
    /// on a backend's own registrations), its table in `storage`, which
    /// holds at most as many keys as it has slots. Slots still holding keys
    /// (storage reused from an earlier selector) are emptied. O(capacity)
    /// time, O(1) stack.
    ///
    /// # Errors
    /// [`Error::InvalidCapacity`] for storage without slots (a
    /// `Vec::with_capacity(n)` has none: see [`Slot`]) or with more than
    /// `u32::MAX - 1`; the backend and the storage come back in the error.
    pub fn with_storage(backend: B, storage: S) -> Result<Self, DataError<(B, S)>> {
        match KeyMapIn::with_storage(storage) {
            Ok(keys) => Ok(Self::from_parts(backend, keys)),
            Err(DataError { error, data }) => Err(DataError {
                error,
                data: (backend, data),
            }),
        }
    }

    const fn from_parts(backend: B, keys: KeyMapIn<T, S>) -> Self {
        Self {
            backend,
            keys,
            cursor: 0,
            end: 0,
        }
    }

    /// Registers `source` for `events` with `data` (Python's `register`).
    ///
    /// On the OS backends `source` is a `BorrowedFd` (`sock.as_fd()`): the
    /// kernel is only ever handed an fd the caller proves open. The key is
    /// filed under its number.
    ///
    /// ```
    /// # use ioselect_core::{Events, Selector, SoftBackend, SoftReadiness};
    /// # static R: SoftReadiness<8> = SoftReadiness::new();
    /// # let mut sel: Selector<SoftBackend<'static, 8>, &str, 4> = Selector::new(SoftBackend::new(&R));
    /// sel.register(3, Events::READ, "three")?;
    /// assert_eq!(sel.get_key(3).map(|k| *k.data()), Some("three"));
    /// // A second registration of the same fd is refused, and the data comes back.
    /// let refused = sel.register(3, Events::WRITE, "again").unwrap_err();
    /// assert_eq!(refused.into_parts(), (ioselect_core::Error::AlreadyRegistered, "again"));
    /// # Ok::<(), ioselect_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// In Python's order of checks: [`Error::InvalidEvents`],
    /// [`Error::InvalidFd`] for a negative fd, [`Error::AlreadyRegistered`],
    /// [`Error::Full`], or the kernel's [`Error::Os`] (or, on epoll,
    /// [`Error::StaleRegistration`] when it watches that open file for a key
    /// closed while registered and refuses to hand it over). The data comes
    /// back in the error, and neither the table nor the kernel changed.
    // `register` and `unregister` are thin and always inlined: their kernel
    // call then runs in the caller's own frame, with the table work in
    // out-of-line helpers before and after it. On machines that clear the
    // return-stack predictor on kernel exit, every return from a frame that
    // was live across a syscall mispredicts; measured ~200 ns per syscall on
    // the benchmark VM (`tests/benches/select/`, table C).
    #[inline(always)]
    pub fn register(
        &mut self,
        source: B::Source<'_>,
        events: Events,
        data: T,
    ) -> Result<(), DataError<T>> {
        let fd = B::fd(source);
        let at = match self.vacancy(fd, events) {
            Ok(at) => at,
            Err(error) => return Err(Self::refused(fd, error, data)),
        };
        match self.backend.add(source, events, at.token) {
            Ok(()) => {
                self.insert(at, fd, events, data);
                Ok(())
            }
            Err(e) => {
                self.keys.give_back(at);
                Err(Self::refused(fd, Self::add_error(e), data))
            }
        }
    }

    /// [`register`](Self::register) for data that owns its source (the
    /// socket itself, or an enum of them): `source_of` names the source
    /// through the data, so the data can be moved into the key while the
    /// kernel is handed a borrow of it. `source_of` is called once, before
    /// the data moves.
    ///
    /// ```
    /// # use ioselect_core::{Events, Selector, SoftBackend, SoftReadiness, RawFd};
    /// # static R: SoftReadiness<8> = SoftReadiness::new();
    /// /// A connection that owns its fd (a number, on the software backend).
    /// struct Conn { fd: RawFd, sent: usize }
    /// let mut sel: Selector<SoftBackend<'static, 8>, Conn, 4> = Selector::new(SoftBackend::new(&R));
    /// sel.register_with(Events::READ, Conn { fd: 5, sent: 0 }, |c| c.fd)?;
    /// // Unregister or change it later by number: the source comes from the data.
    /// sel.modify_events_with(5, Events::WRITE, |c| c.fd)?;
    /// let conn = sel.unregister_with(5, |c| c.fd)?.into_data();
    /// assert_eq!((conn.fd, conn.sent), (5, 0));
    /// # Ok::<(), ioselect_core::Error>(())
    /// ```
    /// On the OS backends, with `std::os::fd::AsFd` in scope:
    /// `sel.register_with(Events::READ, stream, TcpStream::as_fd)?`. Pass a
    /// function, or a closure written in the call (`|c| c.sock.as_fd()`): a
    /// closure stored in a `let` first does not get the signature
    /// `for<'d> Fn(&'d T) -> Source<'d>` and is refused.
    ///
    /// # Errors
    /// As [`register`](Self::register), with the data handed back.
    pub fn register_with<F>(
        &mut self,
        events: Events,
        data: T,
        source_of: F,
    ) -> Result<(), DataError<T>>
    where
        F: for<'d> FnOnce(&'d T) -> B::Source<'d>,
    {
        let source = source_of(&data);
        let fd = B::fd(source);
        let at = match self.vacancy(fd, events) {
            Ok(at) => at,
            Err(error) => return Err(Self::refused(fd, error, data)),
        };
        if let Err(e) = self.backend.add(source, events, at.token) {
            self.keys.give_back(at);
            return Err(Self::refused(fd, Self::add_error(e), data));
        }
        self.insert(at, fd, events, data);
        Ok(())
    }

    /// [`unregister`](Self::unregister) of the key of `fd`, naming its source
    /// to the kernel through the key's own data (see
    /// [`register_with`](Self::register_with)): for data that owns its
    /// socket, which cannot be borrowed from outside the selector while the
    /// selector is called.
    ///
    /// # Errors
    /// As [`unregister`](Self::unregister), and [`Error::InvalidFd`] when
    /// `source_of` names another fd than the key's; the key then stays.
    pub fn unregister_with<F>(&mut self, fd: RawFd, source_of: F) -> Result<SelectorKey<T>, Error>
    where
        F: for<'d> FnOnce(&'d T) -> B::Source<'d>,
    {
        let (key, at) = self
            .keys
            .lookup(fd)
            .map_err(|e| Self::failed("unregister", fd, e))?;
        let source = source_of(&key.data);
        if B::fd(source) != fd {
            return Err(Self::failed("unregister", fd, Error::InvalidFd));
        }
        let events = key.events;
        self.backend
            .delete(source, events, at.token)
            .map_err(|e| Self::failed("unregister", fd, Error::Os(e)))?;
        self.remove(at)
    }

    /// [`modify_events`](Self::modify_events) of the key of `fd`, naming its
    /// source to the kernel through the key's own data (see
    /// [`register_with`](Self::register_with)).
    ///
    /// # Errors
    /// As [`modify_events`](Self::modify_events), and [`Error::InvalidFd`]
    /// when `source_of` names another fd than the key's; nothing changes
    /// then.
    pub fn modify_events_with<F>(
        &mut self,
        fd: RawFd,
        events: Events,
        source_of: F,
    ) -> Result<(), Error>
    where
        F: for<'d> FnOnce(&'d T) -> B::Source<'d>,
    {
        let (key, at) = self
            .keys
            .lookup(fd)
            .map_err(|e| Self::failed("modify", fd, e))?;
        if !events.is_valid() {
            return Err(Self::failed("modify", fd, Error::InvalidEvents));
        }
        if key.events != events {
            let source = source_of(&key.data);
            if B::fd(source) != fd {
                return Err(Self::failed("modify", fd, Error::InvalidFd));
            }
            self.backend
                .modify(source, key.events, events, at.token)
                .map_err(|e| Self::failed("modify", fd, Error::Os(e)))?;
            key.events = events;
        }
        Ok(())
    }

    /// Takes the slot a new registration of `fd` goes to, or says why it is
    /// refused.
    #[inline(always)]
    fn vacancy(&mut self, fd: RawFd, events: Events) -> Result<Vacancy, Error> {
        // Python's order of checks: events, then the fd, then duplicates.
        if !events.is_valid() {
            Err(Error::InvalidEvents)
        } else if fd < 0 {
            Err(Error::InvalidFd)
        } else {
            self.keys.vacancy(fd)
        }
    }

    /// A kernel refusal of `add`: `EEXIST` for an fd the table does not have
    /// is a registration the kernel kept for a key closed while registered,
    /// which the backend could not take over.
    #[cold]
    fn add_error(e: OsError) -> Error {
        if e == OsError::EEXIST {
            Error::StaleRegistration
        } else {
            Error::Os(e)
        }
    }

    /// Enters the key the backend has just added where `at` says.
    #[inline(always)]
    fn insert(&mut self, at: Vacancy, fd: RawFd, events: Events, data: T) {
        self.keys.insert(at, fd, events, data);
    }

    /// A refused `register`: logged (with the `defmt` feature), the data
    /// handed back.
    #[cold]
    fn refused(fd: RawFd, error: Error, data: T) -> DataError<T> {
        DataError {
            error: Self::failed("register", fd, error),
            data,
        }
    }

    /// A refused call on `fd`: logged at debug level (with the `defmt`
    /// feature), out of the hot path.
    #[cold]
    #[inline(never)]
    fn failed(call: &'static str, fd: RawFd, error: Error) -> Error {
        log!("{=str} fd={=i32} refused: {}", call, fd, error);
        let _ = (call, fd);
        error
    }

    /// Unregisters `source`, returning its key (Python's `unregister`).
    ///
    /// Only an open fd can be named here. For a key whose fd the application
    /// already closed, use [`unregister_closed`](Self::unregister_closed).
    /// When the number has meanwhile been reused by another file, which the
    /// kernel does not watch, this succeeds too: the key goes and the kernel
    /// is not touched.
    ///
    /// ```
    /// # use ioselect_core::{Events, Selector, SoftBackend, SoftReadiness};
    /// # static R: SoftReadiness<8> = SoftReadiness::new();
    /// # let mut sel: Selector<SoftBackend<'static, 8>, &str, 4> = Selector::new(SoftBackend::new(&R));
    /// sel.register(3, Events::READ, "three")?;
    /// let key = sel.unregister(3)?;
    /// assert_eq!((key.fd(), key.into_data()), (3, "three"));
    /// assert_eq!(sel.unregister(3).unwrap_err(), ioselect_core::Error::NotRegistered);
    /// # Ok::<(), ioselect_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidFd`] for a negative fd, [`Error::NotRegistered`]; or
    /// [`Error::Os`] when the kernel still watches the fd afterwards, and then
    /// the key stays.
    #[inline]
    pub fn unregister(&mut self, source: B::Source<'_>) -> Result<SelectorKey<T>, Error> {
        // Thin, like `register`: the kernel call runs in the caller's frame.
        let fd = B::fd(source);
        let (events, at) = self.registered("unregister", fd)?;
        if let Err(e) = self.backend.delete(source, events, at.token) {
            return Err(Self::failed("unregister", fd, Error::Os(e)));
        }
        self.remove(at)
    }

    /// Unregisters the key of `fd`, which the application has closed, or is
    /// about to close, without borrowing it (there may be no open fd to
    /// name). Python's `unregister` of a closed file object.
    ///
    /// Whatever the kernel still watches under this number for the key goes
    /// too: if `fd` is in fact still open (this was called just before
    /// `close`, or a child process holds the file), its registration is
    /// removed. One thing cannot be removed: on epoll, a file closed while
    /// registered whose open file lives on in a `dup` under another number
    /// stays watched under the old key's token; the selector never delivers
    /// its events, and the next [`select`](Self::select) after one of them
    /// returns [`Error::StaleRegistration`] instead of spinning.
    /// [`rebuild`](Self::rebuild) clears it. Unregister before closing to
    /// avoid all of this.
    ///
    /// # Errors
    /// [`Error::InvalidFd`] for a negative fd, [`Error::NotRegistered`].
    pub fn unregister_closed(&mut self, fd: RawFd) -> Result<SelectorKey<T>, Error> {
        let (events, at) = self.registered("unregister_closed", fd)?;
        self.backend.delete_closed(fd, events, at.token);
        self.remove(at)
    }

    /// The events and place of the key of `fd`.
    #[inline(always)]
    fn registered(&mut self, call: &'static str, fd: RawFd) -> Result<(Events, Found), Error> {
        match self.keys.lookup(fd) {
            Ok((key, at)) => Ok((key.events, at)),
            Err(e) => Err(Self::failed(call, fd, e)),
        }
    }

    /// Takes the key `at` out of the table (the kernel side is done).
    #[inline(always)]
    fn remove(&mut self, at: Found) -> Result<SelectorKey<T>, Error> {
        if B::REGISTRATIONS_OUTLIVE_FDS {
            // 0, or `STALE` kept: `STALE` is the only value with the top
            // bit set (a batch is far shorter), which the arithmetic shift
            // spreads over the word (one instruction).
            #[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
            {
                self.end = ((self.end as isize) >> (usize::BITS - 1)) as usize;
            }
        }
        self.keys.remove(at).ok_or(Error::NotRegistered)
    }

    /// Changes the events of `source` and replaces its data, returning the
    /// old data (Python's `modify(fileobj, events, data)`).
    ///
    /// ```
    /// # use ioselect_core::{Events, Selector, SoftBackend, SoftReadiness};
    /// # static R: SoftReadiness<8> = SoftReadiness::new();
    /// # let mut sel: Selector<SoftBackend<'static, 8>, &str, 4> = Selector::new(SoftBackend::new(&R));
    /// sel.register(3, Events::READ, "reading")?;
    /// // Output is pending: wait for room to write, as PyMOTW's selectors echo client does.
    /// let old = sel.modify(3, Events::WRITE, "writing")?;
    /// assert_eq!(old, "reading");
    /// assert_eq!(sel.get_key(3).map(|k| k.events()), Some(Events::WRITE));
    /// # Ok::<(), ioselect_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidFd`] or [`Error::NotRegistered`] (checked first, as in
    /// Python), [`Error::InvalidEvents`] or [`Error::Os`]; the new data comes
    /// back, and the key (old events, old data) and the kernel are
    /// unchanged, unlike Python, which drops the key when the kernel refuses.
    pub fn modify(
        &mut self,
        source: B::Source<'_>,
        events: Events,
        data: T,
    ) -> Result<T, DataError<T>> {
        if let Err(error) = self.modify_events(source, events) {
            return Err(DataError { error, data });
        }
        self.modify_data(B::fd(source), data)
    }

    /// Changes only the events of `source` (Python's `modify(fileobj,
    /// events)`, keeping the data). Setting the events a key already has
    /// makes no kernel call.
    ///
    /// # Errors
    /// [`Error::InvalidFd`] or [`Error::NotRegistered`] (checked first, as in
    /// Python), [`Error::InvalidEvents`] or [`Error::Os`]; the key and the
    /// kernel are then unchanged.
    pub fn modify_events(&mut self, source: B::Source<'_>, events: Events) -> Result<(), Error> {
        // Python's order: the fd is looked up before the events are checked.
        let fd = B::fd(source);
        let (key, at) = self
            .keys
            .lookup(fd)
            .map_err(|e| Self::failed("modify", fd, e))?;
        if !events.is_valid() {
            return Err(Self::failed("modify", fd, Error::InvalidEvents));
        }
        if key.events != events {
            if let Err(e) = self.backend.modify(source, key.events, events, at.token) {
                return Err(Self::failed("modify", fd, Error::Os(e)));
            }
            key.events = events;
        }
        Ok(())
    }

    /// Replaces only the data of `fd`, returning the old data. No kernel call.
    ///
    /// # Errors
    /// [`Error::InvalidFd`] or [`Error::NotRegistered`], with the data handed
    /// back.
    pub fn modify_data(&mut self, fd: RawFd, data: T) -> Result<T, DataError<T>> {
        match self.keys.lookup(fd) {
            Ok((key, _)) => Ok(core::mem::replace(&mut key.data, data)),
            Err(error) => Err(DataError {
                error: Self::failed("modify_data", fd, error),
                data,
            }),
        }
    }

    /// Waits until a registered fd is ready or `timeout` passes (Python's
    /// `select`), then keeps the batch for [`next_ready`](Self::next_ready).
    ///
    /// `None` waits forever, `Some(Duration::ZERO)` polls, and a positive
    /// timeout never returns early (it is rounded up, never down, and
    /// `Duration::MAX` is fine). Running out of time is not an error: the
    /// batch is just empty. Events of an earlier batch that were not handed
    /// out are dropped (readiness is level-triggered: they come again).
    ///
    /// One `select` reports at most as many events as the backend's buffer
    /// holds (epoll and kqueue: `E`, which the OS crates' `DefaultSelector` sets
    /// to `N`); a backend's own events (a waker's) take room in it too. The
    /// rest come with the next `select`, none lost.
    ///
    /// ```
    /// # use core::time::Duration;
    /// # use ioselect_core::{Events, Selector, SoftBackend, SoftReadiness};
    /// static R: SoftReadiness<8> = SoftReadiness::new();
    /// let mut sel: Selector<SoftBackend<'static, 8>, &str, 4> = Selector::new(SoftBackend::new(&R));
    /// sel.register(3, Events::READ, "three")?;
    /// sel.select(Some(Duration::ZERO))?; // nothing ready yet: an empty batch
    /// assert!(sel.next_ready().is_none());
    /// R.set(3, Events::READ);
    /// sel.select(Some(Duration::ZERO))?;
    /// assert_eq!(sel.next_ready().map(|(k, mask)| (k.fd(), mask)), Some((3, Events::READ)));
    /// # Ok::<(), ioselect_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Os`] when the wait itself fails (never for `EINTR`, which is
    /// retried), [`Error::NoClock`] for a positive timeout on a backend
    /// without a clock; the batch is then empty.
    ///
    /// [`Error::StaleRegistration`], without waiting, when the last batch
    /// held an event of a registration the kernel kept for a key the table
    /// no longer has (see [`unregister_closed`](Self::unregister_closed)):
    /// such an event ends every wait at once and is never delivered, so the
    /// selector says so instead of spinning in silence. It is reported once
    /// per batch that held one; [`rebuild`](Self::rebuild) removes the
    /// registration.
    #[inline(always)]
    pub fn select(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        // The common case stays in the caller's frame (see `register`): the
        // last batch was handed out whole, and held nothing stale. One
        // compare for both (`end`); a backend whose registrations never
        // outlive their fds needs neither.
        let outlive = B::REGISTRATIONS_OUTLIVE_FDS;
        if outlive && self.cursor < self.end {
            // The errors are built here, not returned by the cold calls: a
            // `Result` made of plain values lets the compiler send the
            // caller's `Ok` straight on (callgrind: 7 user-space
            // instructions a select fewer than when the cold calls
            // returned it).
            if self.settle() {
                return Err(Error::StaleRegistration);
            }
        }
        match self.backend.wait(timeout) {
            Ok(n) => {
                // The batch is read through `batch_len` from here on: a
                // backend that answers another count breaks its contract.
                debug_assert_eq!(
                    self.backend.batch_len(),
                    n,
                    "Backend::batch_len must answer the count wait returned"
                );
                self.cursor = 0;
                if outlive {
                    self.end = n;
                }
                Ok(())
            }
            Err(e) => {
                self.wait_failed(e);
                Err(e)
            }
        }
    }

    /// Before a wait, when events of the last batch were not handed out
    /// (they are looked at for a stale registration first), or one was
    /// reported: true when `select` returns [`Error::StaleRegistration`]
    /// instead of waiting.
    #[cold]
    #[inline(never)]
    fn settle(&mut self) -> bool {
        if self.cursor < self.backend.batch_len() {
            self.look_at_rest();
        }
        if self.end == STALE {
            self.report_stale();
            return true;
        }
        false
    }

    /// A failed wait: the batch is empty.
    #[cold]
    #[inline(never)]
    fn wait_failed(&mut self, error: Error) {
        // Whatever the backend's count says now: nothing to hand out, and
        // nothing to settle (no `end` is above it: a batch that held a
        // stale event is reported before any wait).
        self.cursor = usize::MAX;
        Self::failed("select", -1, error);
    }

    /// Looks at the events of the batch that were not handed out, for one
    /// that names no key (see [`unkeyed`](Self::unkeyed)).
    #[cold]
    fn look_at_rest(&mut self) {
        let len = self.backend.batch_len();
        for index in self.cursor..len {
            if let Some((raw, _)) = self.backend.event(index) {
                if self.keys.slot_of(raw).is_none() {
                    self.unkeyed(raw);
                }
            }
        }
        self.cursor = len;
    }

    /// An event that names no key: a backend's own (a reserved token), one
    /// of a key removed since the `select` (stale, dropped as it should be),
    /// or, when no key was removed since, one of a registration the kernel
    /// kept for a key the table no longer has.
    #[cold]
    #[inline(never)]
    fn unkeyed(&mut self, raw: u64) {
        // `end` is the batch's length (nothing removed since the wait), 0
        // (a key removed) or already `STALE`.
        if self.end != 0 && !Token::is_raw_reserved(raw) {
            self.end = STALE;
        }
    }

    #[cold]
    fn report_stale(&mut self) {
        self.end = 0;
        Self::failed("select", -1, Error::StaleRegistration);
    }

    /// The next ready key of the last [`select`](Self::select) batch and its
    /// ready events, masked by the key's registered events; `None` when the
    /// batch is done. Each fd comes at most once per batch.
    ///
    /// Events for keys that were unregistered since the `select` (or whose
    /// mask no longer includes what was ready) are skipped. The key's data
    /// may be changed through the [`KeyMut`]; its fd and events only through
    /// the selector.
    ///
    /// ```
    /// # use core::time::Duration;
    /// # use ioselect_core::{Events, Selector, SoftBackend, SoftReadiness};
    /// static R: SoftReadiness<8> = SoftReadiness::new();
    /// let mut sel: Selector<SoftBackend<'static, 8>, u32, 4> = Selector::new(SoftBackend::new(&R));
    /// sel.register(3, Events::READ | Events::WRITE, 0)?;
    /// R.set(3, Events::WRITE);
    /// sel.select(Some(Duration::ZERO))?;
    /// while let Some((mut key, mask)) = sel.next_ready() {
    ///     assert_eq!(mask, Events::WRITE);
    ///     *key.data_mut() += 1; // count the events in the key's data
    /// }
    /// assert_eq!(sel.get_key(3).map(|k| *k.data()), Some(1));
    /// # Ok::<(), ioselect_core::Error>(())
    /// ```
    #[inline(always)]
    pub fn next_ready(&mut self) -> Option<(KeyMut<'_, T>, Events)> {
        let (index, mask) = loop {
            if self.cursor >= self.backend.batch_len() {
                return None;
            }
            let index = self.cursor;
            self.cursor += 1;
            let Some((raw, ready)) = self.backend.event_in_batch(index) else {
                continue;
            };
            // `None` for a stale token (key gone, slot reused) or a backend's
            // own one.
            let Some((slot, key)) = self.keys.slot_of(raw) else {
                if B::REGISTRATIONS_OUTLIVE_FDS {
                    self.unkeyed(raw);
                }
                continue;
            };
            let mask = ready & key.events;
            if !mask.is_empty() {
                break (slot, mask);
            }
        };
        self.keys.key_mut_at(index).map(|key| (key, mask))
    }

    /// The key of `fd` (Python's `get_key`), or `None` when `fd` is not
    /// registered: an absent key is an answer, not an error.
    #[inline]
    pub fn get_key(&self, fd: RawFd) -> Option<&SelectorKey<T>> {
        self.keys.get(fd)
    }

    /// The key of `fd` with mutable access to its data (only), or `None`.
    #[inline]
    pub fn get_key_mut(&mut self, fd: RawFd) -> Option<KeyMut<'_, T>> {
        self.keys.get_mut(fd)
    }

    /// The read-only map view of all keys (Python's `get_map`).
    #[inline]
    pub fn map(&self) -> &KeyMapIn<T, S> {
        &self.keys
    }

    /// The number of registered keys.
    #[inline]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is registered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True when `fd` is registered.
    #[inline]
    pub fn contains(&self, fd: RawFd) -> bool {
        self.keys.contains(fd)
    }

    /// The backend, e.g. to attach a waker to it. Shared only: its
    /// registrations are the selector's.
    #[inline]
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Closes the selector (Python's `close`): forgets all keys, dropping
    /// their data, and releases the backend. For epoll and kqueue that
    /// closes its fd, which drops every registration of the selector's
    /// (wakers hold no copy of it). Dropping the selector does the same. The registered fds themselves
    /// stay open: they are the application's.
    pub fn close(self) {
        drop(self);
    }

    /// Test hook (feature `testing`, not part of the API): sets the count
    /// of registrations, which tags them, so a test can cross its wraps
    /// quickly.
    #[cfg(feature = "testing")]
    pub fn set_next_tag(&mut self, tag: u64) {
        self.keys.set_next_tag(tag);
    }
}

impl<B: Renew, T, S: Storage<T>> SelectorIn<B, T, S> {
    /// Starts over with a fresh kernel object holding exactly the keys of
    /// the table: the way out when the kernel watches files the table no
    /// longer has ([`Error::StaleRegistration`], an fd closed while
    /// registered whose open file lives on in a `dup` or a child).
    ///
    /// `source_of` gives the source of each key (for instance
    /// `|key| Some(key.data().as_fd())` when the data holds the socket). The
    /// backend's own registrations (a waker) carry over, and the keys keep
    /// their tokens. O(keys), a recovery path, not a hot one.
    ///
    /// # Errors
    /// [`Error::InvalidFd`] when `source_of` gives no source for a key, or
    /// one with another fd number; [`Error::Os`] when the kernel refuses the
    /// new object or a registration. The selector is then unchanged: the
    /// new kernel object is dropped, the old one kept.
    pub fn rebuild<'s, F>(&'s mut self, mut source_of: F) -> Result<(), Error>
    where
        F: FnMut(&'s SelectorKey<T>) -> Option<B::Source<'s>>,
    {
        let Self {
            backend,
            keys,
            cursor,
            end,
        } = self;
        let keys: &'s KeyMapIn<T, S> = keys;
        let mut fresh = backend
            .renew()
            .map_err(|e| Self::failed("rebuild", -1, Error::Os(e)))?;
        for (key, token) in keys.entries() {
            let source = match source_of(key) {
                Some(source) if B::fd(source) == key.fd => source,
                _ => return Err(Self::failed("rebuild", key.fd, Error::InvalidFd)),
            };
            if let Err(e) = fresh.add(source, key.events, token) {
                return Err(Self::failed("rebuild", key.fd, Error::Os(e)));
            }
        }
        *backend = fresh;
        // The batch was the old backend's, and so was what it held.
        *cursor = 0;
        *end = 0;
        Ok(())
    }
}

impl<B, T, S> core::fmt::Debug for SelectorIn<B, T, S>
where
    B: core::fmt::Debug,
    T: core::fmt::Debug,
    S: Storage<T>,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Selector")
            .field("backend", &self.backend)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}
