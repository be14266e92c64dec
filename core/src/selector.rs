//! The selector: a backend plus the key table, with Python's API.

use core::time::Duration;

use crate::{Backend, DataError, Error, Events, KeyMap, OpenBackend, RawFd, SelectorKey, Token};

/// Python's `selectors.BaseSelector`, allocation-free: at most `N` keys with
/// user data `T`, over the kernel mechanism `B`.
///
/// OS crates name it for their backend (`ioselect_linux::DefaultSelector<T,
/// N>`); core's [`SoftBackend`](crate::SoftBackend) drives it without an OS.
///
/// # Handling events while changing registrations
/// [`select`](Self::select) waits and keeps the batch of ready events inside
/// the selector; [`next_ready`](Self::next_ready) hands them out one at a
/// time. Between two calls of `next_ready` the selector is free to use, so a
/// handler may `register`, `unregister` or `modify`, the way the seed's
/// callback server does. Each event is checked against the key table when it
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
pub struct Selector<B, T, const N: usize> {
    backend: B,
    keys: KeyMap<T, N>,
    /// Events of the last `select` not yet handed out: `cursor..batch`.
    cursor: usize,
    batch: usize,
}

impl<B: Backend, T, const N: usize> Selector<B, T, N> {
    /// A selector with no keys over `backend`. `const`, so it can be built in
    /// a `static` initialiser when the backend can.
    pub const fn new(backend: B) -> Self {
        Self {
            backend,
            keys: KeyMap::new(),
            cursor: 0,
            batch: 0,
        }
    }

    /// Registers `fd` for `events` with `data` (Python's `register`).
    ///
    /// # Errors
    /// In Python's order of checks: [`Error::InvalidEvents`],
    /// [`Error::InvalidFd`] for a negative fd, [`Error::AlreadyRegistered`],
    /// [`Error::Full`], or the kernel's
    /// [`Error::Os`]. The data comes back in the error, and neither the table
    /// nor the kernel changed.
    // `register` and `unregister` are thin and always inlined: their kernel
    // call then runs in the caller's own frame, with the table work in
    // out-of-line helpers before and after it. On machines that clear the
    // return-stack predictor on kernel exit, every return from a frame that
    // was live across a syscall mispredicts; measured ~200 ns per syscall on
    // the benchmark VM (`tests/benches/select.rs`, table C).
    #[inline(always)]
    pub fn register(&mut self, fd: RawFd, events: Events, data: T) -> Result<(), DataError<T>> {
        let token = match self.vacancy(fd, events) {
            Ok(token) => token,
            Err(error) => return Err(Self::refused(fd, error, data)),
        };
        match self.backend.add(fd, events, token) {
            Ok(()) => self.insert_added(fd, events, data, token),
            Err(e) => Err(Self::refused(fd, Error::Os(e), data)),
        }
    }

    /// The token a new registration of `fd` gets, or why it is refused.
    #[inline(never)]
    fn vacancy(&self, fd: RawFd, events: Events) -> Result<Token, Error> {
        // Python's order of checks: events, then the fd, then duplicates.
        if !events.is_valid() {
            Err(Error::InvalidEvents)
        } else if fd < 0 {
            Err(Error::InvalidFd)
        } else if self.keys.contains(fd) {
            Err(Error::AlreadyRegistered)
        } else {
            self.keys.vacant_token().ok_or(Error::Full)
        }
    }

    /// Enters the key of `fd`, which the backend has just added with `token`.
    #[inline(never)]
    fn insert_added(
        &mut self,
        fd: RawFd,
        events: Events,
        data: T,
        token: Token,
    ) -> Result<(), DataError<T>> {
        match self.keys.insert(fd, events, data) {
            Ok(inserted) => {
                debug_assert_eq!(inserted, token);
                Ok(())
            }
            // Unreachable (`vacancy` said there is room), but if it were:
            // undo the kernel side too.
            Err(data) => {
                let _ = self.backend.delete(fd, events, token);
                Err(Self::refused(fd, Error::Full, data))
            }
        }
    }

    #[cold]
    fn refused(fd: RawFd, error: Error, data: T) -> DataError<T> {
        log!("register fd={} failed: {}", fd, error);
        let _ = fd;
        DataError { error, data }
    }

    /// Unregisters `fd`, returning its key (Python's `unregister`).
    ///
    /// An fd that the application closed while it was registered is still
    /// unregistered here, and succeeds: the kernel already forgot it.
    ///
    /// # Errors
    /// [`Error::InvalidFd`] for a negative fd, [`Error::NotRegistered`]; or
    /// [`Error::Os`] when the kernel still watches the fd afterwards, and then
    /// the key stays.
    #[inline(always)]
    pub fn unregister(&mut self, fd: RawFd) -> Result<SelectorKey<T>, Error> {
        // Thin, like `register`: the kernel call runs in the caller's frame.
        let (events, token) = self.registered(fd)?;
        self.backend.delete(fd, events, token)?;
        self.forget(fd)
    }

    #[inline(never)]
    fn registered(&mut self, fd: RawFd) -> Result<(Events, Token), Error> {
        let (key, token) = self.keys.lookup(fd)?;
        Ok((key.events, token))
    }

    #[inline(never)]
    fn forget(&mut self, fd: RawFd) -> Result<SelectorKey<T>, Error> {
        self.keys.remove(fd).ok_or(Error::NotRegistered)
    }

    /// Changes the events of `fd` and replaces its data, returning the old
    /// data (Python's `modify(fileobj, events, data)`).
    ///
    /// # Errors
    /// [`Error::InvalidFd`] or [`Error::NotRegistered`] (checked first, as in
    /// Python), [`Error::InvalidEvents`] or [`Error::Os`]; the new data comes
    /// back, and the key (old events, old data) and the kernel are unchanged, unlike Python, which drops the key when the
    /// kernel refuses.
    pub fn modify(&mut self, fd: RawFd, events: Events, data: T) -> Result<T, DataError<T>> {
        if let Err(error) = self.modify_events(fd, events) {
            return Err(DataError { error, data });
        }
        self.modify_data(fd, data)
    }

    /// Changes only the events of `fd` (Python's `modify(fileobj, events)`,
    /// keeping the data). Setting the events a key already has makes no
    /// kernel call.
    ///
    /// # Errors
    /// [`Error::InvalidFd`] or [`Error::NotRegistered`] (checked first, as in
    /// Python), [`Error::InvalidEvents`] or [`Error::Os`]; the key and the
    /// kernel are then unchanged.
    pub fn modify_events(&mut self, fd: RawFd, events: Events) -> Result<(), Error> {
        // Python's order: the fd is looked up before the events are checked.
        let (key, token) = self.keys.lookup(fd)?;
        if !events.is_valid() {
            return Err(Error::InvalidEvents);
        }
        if key.events != events {
            self.backend.modify(fd, key.events, events, token)?;
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
            Err(error) => Err(DataError { error, data }),
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
    /// # Errors
    /// [`Error::Os`] when the wait itself fails (never for `EINTR`, which is
    /// retried); the batch is then empty.
    #[inline]
    pub fn select(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.cursor = 0;
        self.batch = 0;
        self.batch = self.backend.wait(timeout)?;
        Ok(())
    }

    /// The next ready key of the last [`select`](Self::select) batch and its
    /// ready events, masked by the key's registered events; `None` when the
    /// batch is done. Each fd comes at most once per batch.
    ///
    /// Events for keys that were unregistered since the `select` (or whose
    /// mask no longer includes what was ready) are skipped.
    pub fn next_ready(&mut self) -> Option<(&mut SelectorKey<T>, Events)> {
        let (token, mask) = loop {
            if self.cursor >= self.batch {
                return None;
            }
            let index = self.cursor;
            self.cursor += 1;
            let Some((token, ready)) = self.backend.event(index) else {
                continue;
            };
            // `None` for a stale token (key gone, slot reused) or a backend's
            // internal one.
            let Some(key) = self.keys.by_token(token) else {
                continue;
            };
            let mask = ready & key.events;
            if !mask.is_empty() {
                break (token, mask);
            }
        };
        self.keys.by_token_mut(token).map(|key| (key, mask))
    }

    /// The key of `fd` (Python's `get_key`), or `None` when `fd` is not
    /// registered: an absent key is an answer, not an error.
    #[inline]
    pub fn get_key(&self, fd: RawFd) -> Option<&SelectorKey<T>> {
        self.keys.get(fd)
    }

    /// The key of `fd` with mutable access to its data, or `None`.
    #[inline]
    pub fn get_key_mut(&mut self, fd: RawFd) -> Option<&mut SelectorKey<T>> {
        self.keys.get_mut(fd).map(|(key, _)| key)
    }

    /// The read-only map view of all keys (Python's `get_map`).
    #[inline]
    pub fn map(&self) -> &KeyMap<T, N> {
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

    /// The backend, e.g. to attach a waker to it.
    #[inline]
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Closes the selector (Python's `close`): forgets all keys and releases
    /// the backend (for epoll and kqueue, closes its fd, which drops every
    /// kernel registration at once). Dropping the selector does the same.
    /// The registered fds themselves stay open: they are the application's.
    pub fn close(self) {
        drop(self);
    }
}

impl<B: OpenBackend, T, const N: usize> Selector<B, T, N> {
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

impl<B, T, const N: usize> core::fmt::Debug for Selector<B, T, N>
where
    B: core::fmt::Debug,
    T: core::fmt::Debug,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Selector")
            .field("backend", &self.backend)
            .field("keys", &self.keys)
            .finish()
    }
}
