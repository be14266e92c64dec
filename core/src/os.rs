//! The selector types of the OS crates, written once.
//!
//! `ioselect-linux` and `ioselect-bsd` each expand [`__os_selectors!`] over
//! their backend, so a user of either meets two selector types whose
//! methods take a `BorrowedFd` and whose examples name that crate and use
//! real sockets, instead of core's generic [`SelectorIn`](crate::SelectorIn)
//! and its software-backend examples. The methods forward to `SelectorIn`;
//! every rule lives there.

/// Defines `DefaultSelector` and `LargeSelector` in the calling crate, over
/// its backend `$backend<E>`. Not part of the API.
#[doc(hidden)]
#[macro_export]
macro_rules! __os_selectors {
    (
        krate: $krate:literal,
        backend: $backend:ident,
        python: $python:literal,
        waker: $waker:ident,
        fd: $($fd:ident)::+ $(,)?
    ) => {
        /// The selector to start with: Python's `selectors.DefaultSelector`,
        /// with at most `N` keys carrying data `T`, all of it inline (no
        /// heap).
        ///
        #[doc = concat!("Over ", $python, ". One `select` reports up to `N` events, so every ready key at once (a pending wake-up takes room too; what does not fit comes next time).")]
        ///
        /// The table and the event buffer live in the selector: about
        /// `N * (size_of::<T>() + 40)` bytes (180 KB for 4,096 `u32` keys),
        /// built on the stack by `open` and moved to where you keep it. A
        /// debug build keeps several copies on the stack while it does (with
        /// 4,096 `u32` keys, `open` and its caller took 1.5 MB of a thread's
        /// 2 MiB), so from about a thousand keys, or on a thread with a small
        /// stack, use [`LargeSelector`]: its table is built where it lives.
        ///
        /// ```
        /// use std::io::{Read, Write};
        /// use std::os::fd::AsFd;
        /// use std::os::unix::net::UnixStream;
        /// use std::time::Duration;
        #[doc = concat!("use ", $krate, "::{DefaultSelector, Events};")]
        ///
        /// let mut sel = DefaultSelector::<&str, 16>::open()?;
        /// let (mut a, mut b) = UnixStream::pair()?;
        /// sel.register(a.as_fd(), Events::READ, "a")?;
        /// b.write_all(b"ping")?;
        /// sel.select(Some(Duration::from_secs(5)))?;
        /// while let Some((key, mask)) = sel.next_ready() {
        ///     assert_eq!((*key.data(), mask), ("a", Events::READ));
        ///     let mut buf = [0; 4];
        ///     a.read_exact(&mut buf)?;
        /// }
        /// sel.unregister(a.as_fd())?; // unregister, then close
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub struct DefaultSelector<T, const N: usize> {
            inner: $crate::Selector<$backend<N>, T, N>,
        }

        /// A selector whose key table lives in storage you provide, for
        /// tables too large for the stack: any number of keys, O(1) stack
        /// whatever the capacity, and an event buffer of `E` events (256
        /// unless you say), sized apart from the table.
        ///
        /// The storage is `Box<[Slot<T>]>` unless you say otherwise
        /// ([`with_capacity`](Self::with_capacity) makes it), or
        /// `Vec<Slot<T>>`, `&mut [Slot<T>]`, `&mut [Slot<T>; N]` (a `static`
        /// array): [`open_in`](Self::open_in). Its methods are
        /// [`DefaultSelector`]'s.
        ///
        /// ```
        /// use std::os::fd::AsFd;
        /// use std::os::unix::net::UnixStream;
        #[doc = concat!("use ", $krate, "::{Events, LargeSelector};")]
        ///
        /// // 100,000 keys, never on the stack, even in a debug build.
        /// let mut sel = LargeSelector::<u64>::with_capacity(100_000)?;
        /// let (a, _b) = UnixStream::pair()?;
        /// sel.register(a.as_fd(), Events::WRITE, 7)?;
        /// assert_eq!(sel.capacity(), 100_000);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        #[cfg(feature = "std")]
        pub struct LargeSelector<
            T,
            S: $crate::Storage<T> = ::std::boxed::Box<[$crate::Slot<T>]>,
            const E: usize = 256,
        > {
            inner: $crate::SelectorIn<$backend<E>, T, S>,
        }

        /// A selector whose key table lives in storage you provide, for
        /// tables too large for the stack: any number of keys, O(1) stack
        /// whatever the capacity, and an event buffer of `E` events (256
        /// unless you say), sized apart from the table. The storage:
        /// `&mut [Slot<T>]` or `&mut [Slot<T>; N]` (a `static` array), with
        /// [`open_in`](Self::open_in). Its methods are
        /// [`DefaultSelector`]'s.
        #[cfg(not(feature = "std"))]
        pub struct LargeSelector<T, S: $crate::Storage<T>, const E: usize = 256> {
            inner: $crate::SelectorIn<$backend<E>, T, S>,
        }

        impl<T, const N: usize> DefaultSelector<T, N> {
            /// Opens a selector with an empty table of `N` keys
            #[doc = concat!("(", $python, ").")]
            ///
            /// ```
            #[doc = concat!("use ", $krate, "::DefaultSelector;")]
            ///
            /// let sel = DefaultSelector::<u32, 64>::open()?;
            /// assert_eq!((sel.len(), sel.capacity()), (0, 64));
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// [`Error::Os`](crate::Error::Os) when the kernel object cannot
            /// be made (`EMFILE`: out of fds).
            pub fn open() -> Result<Self, $crate::Error> {
                // The backend first, then the table straight into `Self`: a
                // debug build keeps every temporary of this frame, and the
                // table is the large part.
                let backend = <$backend<N> as $crate::OpenBackend>::open()?;
                Ok(Self {
                    inner: $crate::Selector::new(backend),
                })
            }
        }

        #[cfg(feature = "std")]
        impl<T, const E: usize> LargeSelector<T, ::std::boxed::Box<[$crate::Slot<T>]>, E> {
            /// Opens a selector with an empty table of `capacity` keys, on the
            /// heap (the only allocation: the selector's calls make none).
            ///
            /// ```
            #[doc = concat!("use ", $krate, "::LargeSelector;")]
            ///
            /// let sel = LargeSelector::<u32>::with_capacity(65_536)?;
            /// assert_eq!(sel.capacity(), 65_536);
            /// // The event buffer has its own size: here 1,024 events per select.
            /// let sel = LargeSelector::<u32, _, 1024>::with_capacity(65_536)?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// [`Error::InvalidCapacity`](crate::Error::InvalidCapacity) for
            /// 0, more than `u32::MAX - 1`, or more slots than the address
            /// space can hold (`isize::MAX` bytes: on 32-bit targets, tens
            /// of millions), [`Error::Os`](crate::Error::Os) when the kernel
            /// object cannot be made.
            pub fn with_capacity(capacity: usize) -> Result<Self, $crate::Error> {
                let bytes = capacity.checked_mul(::core::mem::size_of::<$crate::Slot<T>>());
                if capacity == 0
                    || capacity >= u32::MAX as usize
                    || bytes.is_none_or(|b| b > isize::MAX as usize)
                {
                    return Err($crate::Error::InvalidCapacity);
                }
                let slots: ::std::boxed::Box<[$crate::Slot<T>]> =
                    ::core::iter::repeat_with($crate::Slot::new)
                        .take(capacity)
                        .collect();
                Self::open_in(slots).map_err(|refused| refused.error)
            }
        }

        impl<T, S: $crate::Storage<T>, const E: usize> LargeSelector<T, S, E> {
            /// Opens a selector whose table is `storage`: as many keys as it
            /// has slots. Slots still holding keys (storage reused from an
            /// earlier selector) are emptied.
            ///
            /// ```
            #[doc = concat!("use ", $krate, "::{LargeSelector, Slot};")]
            ///
            /// // A Vec of slots: `Vec::with_capacity(n)` alone has none.
            /// let slots: Vec<Slot<u32>> = std::iter::repeat_with(Slot::new).take(4096).collect();
            /// let sel = LargeSelector::<u32, _>::open_in(slots)?;
            /// assert_eq!(sel.capacity(), 4096);
            ///
            /// let refused = LargeSelector::<u32, _>::open_in(Vec::with_capacity(64)).unwrap_err();
            #[doc = concat!("assert_eq!(refused.error, ", $krate, "::Error::InvalidCapacity);")]
            /// assert_eq!(refused.data.capacity(), 64); // the storage comes back
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// [`Error::InvalidCapacity`](crate::Error::InvalidCapacity) for
            /// storage without slots (checked first),
            /// [`Error::Os`](crate::Error::Os) when the kernel object cannot
            /// be made; the storage comes back in the error.
            pub fn open_in(storage: S) -> Result<Self, $crate::DataError<S>> {
                Ok(Self {
                    inner: $crate::SelectorIn::open_in(storage)?,
                })
            }
        }

        $crate::__os_selector_methods! {
            impl [T, const N: usize] DefaultSelector<T, N>,
            storage: [$crate::Slot<T>; N],
            open: "DefaultSelector::<" ", 8>::open()?",
            name: "DefaultSelector",
            backend: $backend<N>,
            waker: $waker,
            krate: $krate,
            fd: $($fd)::+,
        }

        $crate::__os_selector_methods! {
            impl [T, S: $crate::Storage<T>, const E: usize] LargeSelector<T, S, E>,
            storage: S,
            open: "LargeSelector::<" ">::with_capacity(8)?",
            name: "LargeSelector",
            backend: $backend<E>,
            waker: $waker,
            krate: $krate,
            fd: $($fd)::+,
        }
    };
}

/// The methods both OS selector types share. Not part of the API.
#[doc(hidden)]
#[macro_export]
macro_rules! __os_selector_methods {
    (
        impl [$($generics:tt)*] $Self:ty,
        storage: $S:ty,
        open: $pre:literal $post:literal,
        name: $name:literal,
        backend: $backend:ty,
        waker: $waker:ident,
        krate: $krate:literal,
        fd: $($fd:ident)::+ $(,)?
    ) => {
        impl<$($generics)*> $Self {
            /// Registers `source` for `events` with `data` (Python's
            /// `register`); the key is filed under the fd's number.
            ///
            /// ```
            /// use std::os::fd::{AsFd, AsRawFd};
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Error, Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "&str", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ, "a")?;
            /// assert_eq!(sel.get_key(a.as_raw_fd()).map(|k| *k.data()), Some("a"));
            /// // A second registration is refused, and the data comes back.
            /// let refused = sel.register(a.as_fd(), Events::WRITE, "again").unwrap_err();
            /// assert_eq!(refused.into_parts(), (Error::AlreadyRegistered, "again"));
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// To move a socket into its key, use
            /// [`register_with`](Self::register_with):
            /// `register(stream.as_fd(), .., stream)` cannot compile, the
            /// socket is borrowed for the call.
            ///
            /// # Errors
            /// In Python's order of checks:
            /// [`Error::InvalidEvents`](crate::Error::InvalidEvents),
            /// [`Error::AlreadyRegistered`](crate::Error::AlreadyRegistered),
            /// [`Error::Full`](crate::Error::Full), or the kernel's
            /// [`Error::Os`](crate::Error::Os) (e.g. `EPERM` for a regular
            /// file on epoll). The data comes back in the error, and neither
            /// the table nor the kernel changed.
            #[inline(always)]
            pub fn register(
                &mut self,
                source: $($fd)::+<'_>,
                events: $crate::Events,
                data: T,
            ) -> Result<(), $crate::DataError<T>> {
                self.inner.register(source, events, data)
            }

            /// [`register`](Self::register) for data that owns its socket (the
            /// socket itself, or a struct or enum holding it): `source_of`
            /// names the socket through the data, so the data moves into the
            /// key while the kernel is handed a borrow of it.
            ///
            /// ```
            /// use std::os::fd::{AsFd, AsRawFd};
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            /// struct Conn { stream: UnixStream, echoed: usize }
            ///
            #[doc = concat!("let mut sel = ", $pre, "Conn", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// let fd = a.as_raw_fd();
            /// sel.register_with(Events::READ, Conn { stream: a, echoed: 0 }, |c| c.stream.as_fd())?;
            /// // The key owns the socket now; name it by number from here on.
            /// sel.modify_events_with(fd, Events::WRITE, |c| c.stream.as_fd())?;
            /// let conn = sel.unregister_with(fd, |c| c.stream.as_fd())?.into_data();
            /// assert_eq!((conn.stream.as_raw_fd(), conn.echoed), (fd, 0));
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// Pass a closure written in the call (`|c| c.stream.as_fd()`) or
            /// a function (`UnixStream::as_fd`): a closure stored in a `let`
            /// first does not get the signature `for<'d> FnOnce(&'d T) ->
            /// BorrowedFd<'d>` and is refused.
            ///
            /// # Errors
            /// As [`register`](Self::register), with the data handed back.
            pub fn register_with<F>(
                &mut self,
                events: $crate::Events,
                data: T,
                source_of: F,
            ) -> Result<(), $crate::DataError<T>>
            where
                F: for<'d> FnOnce(&'d T) -> $($fd)::+<'d>,
            {
                self.inner.register_with(events, data, source_of)
            }

            /// Unregisters `source`, returning its key (Python's
            /// `unregister`). Unregister a socket before you close it.
            ///
            /// ```
            /// use std::os::fd::AsFd;
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Error, Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "&str", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ, "a")?;
            /// assert_eq!(sel.unregister(a.as_fd())?.into_data(), "a");
            /// assert_eq!(sel.unregister(a.as_fd()).unwrap_err(), Error::NotRegistered);
            /// drop(a); // close after unregister
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// [`Error::NotRegistered`](crate::Error::NotRegistered); or
            /// [`Error::Os`](crate::Error::Os) when the kernel still watches
            /// the fd afterwards, and then the key stays.
            #[inline(always)]
            pub fn unregister(
                &mut self,
                source: $($fd)::+<'_>,
            ) -> Result<$crate::SelectorKey<T>, $crate::Error> {
                self.inner.unregister(source)
            }

            /// [`unregister`](Self::unregister) of the key of `fd`, naming its
            /// socket through the key's own data (see
            /// [`register_with`](Self::register_with)): the socket comes back
            /// in the key's data.
            ///
            /// ```
            /// use std::os::fd::{AsFd, AsRawFd};
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "UnixStream", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// let fd = a.as_raw_fd();
            /// sel.register_with(Events::READ, a, UnixStream::as_fd)?;
            /// let a: UnixStream = sel.unregister_with(fd, UnixStream::as_fd)?.into_data();
            /// assert_eq!(a.as_raw_fd(), fd);
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// As [`unregister`](Self::unregister), and
            /// [`Error::InvalidFd`](crate::Error::InvalidFd) for a negative fd
            /// or when `source_of` names another fd than the key's; the key
            /// then stays.
            pub fn unregister_with<F>(
                &mut self,
                fd: $crate::RawFd,
                source_of: F,
            ) -> Result<$crate::SelectorKey<T>, $crate::Error>
            where
                F: for<'d> FnOnce(&'d T) -> $($fd)::+<'d>,
            {
                self.inner.unregister_with(fd, source_of)
            }

            /// Unregisters the key of `fd`, which you closed while it was
            /// registered, or are about to close (Python's `unregister` of a
            /// closed file object): it needs no open fd. Whatever the kernel
            /// still watches under the number for the key goes too.
            ///
            /// ```
            /// use std::os::fd::{AsFd, AsRawFd};
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "&str", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// let fd = a.as_raw_fd();
            /// sel.register(a.as_fd(), Events::READ, "a")?;
            /// drop(a); // closed while registered
            /// assert_eq!(sel.unregister_closed(fd)?.into_data(), "a");
            /// assert!(sel.is_empty());
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// An fd closed while registered whose open file lives on (a
            /// `dup`, a child process) cannot be named to epoll any more:
            /// its events are never delivered, the next
            /// [`select`](Self::select) after one of them returns
            /// [`Error::StaleRegistration`](crate::Error::StaleRegistration),
            /// and [`rebuild`](Self::rebuild) clears it. Unregister before
            /// closing to avoid all of this.
            ///
            /// # Errors
            /// [`Error::InvalidFd`](crate::Error::InvalidFd) for a negative
            /// fd, [`Error::NotRegistered`](crate::Error::NotRegistered).
            pub fn unregister_closed(
                &mut self,
                fd: $crate::RawFd,
            ) -> Result<$crate::SelectorKey<T>, $crate::Error> {
                self.inner.unregister_closed(fd)
            }

            /// Changes the events of `source` and replaces its data,
            /// returning the old data (Python's `modify(fileobj, events,
            /// data)`).
            ///
            /// ```
            /// use std::os::fd::{AsFd, AsRawFd};
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "&str", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ, "reading")?;
            /// // Output is pending: wait for room to write, as PyMOTW's selectors echo client does.
            /// assert_eq!(sel.modify(a.as_fd(), Events::WRITE, "writing")?, "reading");
            /// assert_eq!(sel.get_key(a.as_raw_fd()).map(|k| k.events()), Some(Events::WRITE));
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// [`Error::NotRegistered`](crate::Error::NotRegistered) (checked
            /// first, as in Python),
            /// [`Error::InvalidEvents`](crate::Error::InvalidEvents) or
            /// [`Error::Os`](crate::Error::Os); the new data comes back, and
            /// the key (old events, old data) and the kernel are unchanged,
            /// unlike Python, which drops the key when the kernel refuses.
            pub fn modify(
                &mut self,
                source: $($fd)::+<'_>,
                events: $crate::Events,
                data: T,
            ) -> Result<T, $crate::DataError<T>> {
                self.inner.modify(source, events, data)
            }

            /// Changes only the events of `source`, keeping its data.
            /// Setting the events a key already has makes no kernel call, so
            /// a loop may set what it wants on every pass.
            ///
            /// ```
            /// use std::os::fd::AsFd;
            /// use std::os::unix::net::UnixStream;
            /// use std::time::Duration;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "&str", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ, "a")?;
            /// sel.modify_events(a.as_fd(), Events::WRITE)?; // output pending
            /// sel.select(Some(Duration::from_secs(5)))?;
            /// assert_eq!(sel.next_ready().map(|(k, mask)| (*k.data(), mask)), Some(("a", Events::WRITE)));
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// [`Error::NotRegistered`](crate::Error::NotRegistered) (checked
            /// first, as in Python),
            /// [`Error::InvalidEvents`](crate::Error::InvalidEvents) or
            /// [`Error::Os`](crate::Error::Os); the key and the kernel are
            /// then unchanged.
            pub fn modify_events(
                &mut self,
                source: $($fd)::+<'_>,
                events: $crate::Events,
            ) -> Result<(), $crate::Error> {
                self.inner.modify_events(source, events)
            }

            /// [`modify_events`](Self::modify_events) of the key of `fd`,
            /// naming its socket through the key's own data (see
            /// [`register_with`](Self::register_with)).
            ///
            /// ```
            /// use std::os::fd::{AsFd, AsRawFd};
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "UnixStream", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// let fd = a.as_raw_fd();
            /// sel.register_with(Events::READ, a, UnixStream::as_fd)?;
            /// sel.modify_events_with(fd, Events::READ | Events::WRITE, UnixStream::as_fd)?;
            /// assert_eq!(sel.get_key(fd).map(|k| k.events()), Some(Events::READ | Events::WRITE));
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// As [`modify_events`](Self::modify_events), and
            /// [`Error::InvalidFd`](crate::Error::InvalidFd) for a negative fd
            /// or when `source_of` names another fd than the key's; nothing
            /// changes then.
            pub fn modify_events_with<F>(
                &mut self,
                fd: $crate::RawFd,
                events: $crate::Events,
                source_of: F,
            ) -> Result<(), $crate::Error>
            where
                F: for<'d> FnOnce(&'d T) -> $($fd)::+<'d>,
            {
                self.inner.modify_events_with(fd, events, source_of)
            }

            /// Replaces only the data of the key of `fd`, returning the old
            /// data. No kernel call.
            ///
            /// ```
            /// use std::os::fd::{AsFd, AsRawFd};
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "&str", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ, "old")?;
            /// assert_eq!(sel.modify_data(a.as_raw_fd(), "new")?, "old");
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// [`Error::InvalidFd`](crate::Error::InvalidFd) for a negative
            /// fd, [`Error::NotRegistered`](crate::Error::NotRegistered); the
            /// data comes back.
            pub fn modify_data(&mut self, fd: $crate::RawFd, data: T) -> Result<T, $crate::DataError<T>> {
                self.inner.modify_data(fd, data)
            }

            /// Waits until a registered socket is ready or `timeout` passes
            /// (Python's `select`), and keeps the ready keys for
            /// [`next_ready`](Self::next_ready).
            ///
            /// `None` waits forever, `Some(Duration::ZERO)` polls, and a
            /// positive timeout never returns early (rounded up, never down;
            /// `Duration::MAX` is fine). Running out of time is not an error:
            /// the batch is just empty. A signal is retried, not reported.
            ///
            /// ```
            /// use std::io::Write;
            /// use std::os::fd::AsFd;
            /// use std::os::unix::net::UnixStream;
            /// use std::time::Duration;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "&str", $post, ";")]
            /// let (a, mut b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ, "a")?;
            /// sel.select(Some(Duration::ZERO))?; // nothing to read: an empty batch
            /// assert!(sel.next_ready().is_none());
            /// b.write_all(b"!")?;
            /// sel.select(Some(Duration::from_secs(5)))?;
            /// assert_eq!(sel.next_ready().map(|(k, mask)| (*k.data(), mask)), Some(("a", Events::READ)));
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// [`Error::Os`](crate::Error::Os) when the wait itself fails;
            /// [`Error::StaleRegistration`](crate::Error::StaleRegistration),
            /// without waiting, when the last wait was ended by a file closed
            /// while registered that lives on elsewhere (see
            /// [`unregister_closed`](Self::unregister_closed)).
            #[inline(always)]
            pub fn select(&mut self, timeout: Option<::core::time::Duration>) -> Result<(), $crate::Error> {
                self.inner.select(timeout)
            }

            /// The next ready key of the last [`select`](Self::select) and
            /// its ready events (masked by the key's events); `None` when the
            /// batch is done. Each fd comes at most once per batch.
            ///
            /// Between two calls the selector is yours: a handler may
            /// `register`, `unregister` or `modify`. The one rule the
            /// borrow checker enforces: **copy what you need out of the key
            /// (its fd, a handler, an index), let the key go, then call the
            /// selector.** A key whose owner was unregistered meanwhile is
            /// skipped.
            ///
            /// ```
            /// use std::io::Write;
            /// use std::os::fd::AsFd;
            /// use std::os::unix::net::UnixStream;
            /// use std::time::Duration;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "u32", $post, ";")]
            /// let (a, mut b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ | Events::WRITE, 0)?;
            /// b.write_all(b"!")?;
            /// sel.select(Some(Duration::from_secs(5)))?;
            /// while let Some((mut key, mask)) = sel.next_ready() {
            ///     assert_eq!(mask, Events::READ | Events::WRITE);
            ///     *key.data_mut() += 1; // the data is yours to change
            ///     let fd = key.fd(); // copy out what the handler needs...
            ///     // ...and the key is let go here: the selector is free again.
            ///     sel.modify_events(a.as_fd(), Events::READ)?;
            ///     assert_eq!(sel.get_key(fd).map(|k| *k.data()), Some(1));
            /// }
            /// # Ok::<(), std::io::Error>(())
            /// ```
            #[inline(always)]
            pub fn next_ready(&mut self) -> Option<($crate::KeyMut<'_, T>, $crate::Events)> {
                self.inner.next_ready()
            }

            /// The key of `fd` (Python's `get_key`), or `None` when `fd` is
            /// not registered: an absent key is an answer, not an error.
            ///
            /// ```
            /// use std::os::fd::{AsFd, AsRawFd};
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "&str", $post, ";")]
            /// let (a, b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ, "a")?;
            /// let key = sel.get_key(a.as_raw_fd()).expect("registered");
            /// assert_eq!((key.fd(), key.events(), *key.data()), (a.as_raw_fd(), Events::READ, "a"));
            /// assert!(sel.get_key(b.as_raw_fd()).is_none());
            /// # Ok::<(), std::io::Error>(())
            /// ```
            #[inline]
            pub fn get_key(&self, fd: $crate::RawFd) -> Option<&$crate::SelectorKey<T>> {
                self.inner.get_key(fd)
            }

            /// The key of `fd` with its data mutable (only: the fd and events
            /// change through the selector), or `None`.
            ///
            /// ```
            /// use std::os::fd::{AsFd, AsRawFd};
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "u32", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ, 1)?;
            /// if let Some(mut key) = sel.get_key_mut(a.as_raw_fd()) {
            ///     *key.data_mut() += 1;
            /// }
            /// assert_eq!(sel.get_key(a.as_raw_fd()).map(|k| *k.data()), Some(2));
            /// # Ok::<(), std::io::Error>(())
            /// ```
            #[inline]
            pub fn get_key_mut(&mut self, fd: $crate::RawFd) -> Option<$crate::KeyMut<'_, T>> {
                self.inner.get_key_mut(fd)
            }

            /// The read-only view of all keys (Python's `get_map`): `len`,
            /// `contains`, `get`, `iter`.
            ///
            /// ```
            /// use std::os::fd::AsFd;
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "&str", $post, ";")]
            /// let (a, b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ, "a")?;
            /// sel.register(b.as_fd(), Events::WRITE, "b")?;
            /// let mut names: Vec<&str> = sel.map().iter().map(|key| *key.data()).collect();
            /// names.sort();
            /// assert_eq!(names, ["a", "b"]);
            /// # Ok::<(), std::io::Error>(())
            /// ```
            #[inline]
            pub fn map(&self) -> &$crate::KeyMapIn<T, $S> {
                self.inner.map()
            }

            /// The number of registered keys.
            #[inline]
            #[must_use]
            pub fn len(&self) -> usize {
                self.inner.len()
            }

            /// True when no key is registered.
            #[inline]
            #[must_use]
            pub fn is_empty(&self) -> bool {
                self.inner.is_empty()
            }

            /// The most keys the table holds.
            #[inline]
            #[must_use]
            pub fn capacity(&self) -> usize {
                self.inner.map().capacity()
            }

            /// True when `fd` is registered.
            #[inline]
            #[must_use]
            pub fn contains(&self, fd: $crate::RawFd) -> bool {
                self.inner.contains(fd)
            }

            /// A `Waker` for this selector: wakes a blocked
            /// `select` from another thread or a signal handler. Any number
            /// may be made; each holds its own duplicate fd.
            ///
            /// ```
            #[doc = concat!("use ", $krate, "::", $name, ";")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "()", $post, ";")]
            /// let waker = sel.waker()?;
            /// std::thread::scope(|s| {
            ///     s.spawn(|| waker.wake().expect("wake"));
            ///     sel.select(None) // returns once woken
            /// })?;
            /// assert!(sel.next_ready().is_none()); // a wake-up is not a key
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// [`Error::Os`](crate::Error::Os) when out of fds.
            pub fn waker(&self) -> Result<$waker, $crate::Error> {
                Ok($waker::new(self.inner.backend())?)
            }

            /// Starts over with a fresh kernel object holding exactly the
            /// table's keys, for when the kernel watches a file the table no
            /// longer has ([`Error::StaleRegistration`](crate::Error::StaleRegistration)).
            /// `source_of` names each key's socket (it must be open, under
            /// the key's number). Wakers made before carry over; keys keep
            /// their data.
            ///
            /// ```
            /// use std::os::fd::AsFd;
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "UnixStream", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// sel.register_with(Events::READ, a, UnixStream::as_fd)?;
            /// sel.rebuild(|key| Some(key.data().as_fd()))?;
            /// assert_eq!(sel.len(), 1);
            /// # Ok::<(), std::io::Error>(())
            /// ```
            ///
            /// # Errors
            /// [`Error::InvalidFd`](crate::Error::InvalidFd) when `source_of`
            /// gives no socket for a key, or one with another number;
            /// [`Error::Os`](crate::Error::Os) when the kernel refuses. The
            /// selector is then unchanged.
            pub fn rebuild<'s, F>(&'s mut self, source_of: F) -> Result<(), $crate::Error>
            where
                F: FnMut(&'s $crate::SelectorKey<T>) -> Option<$($fd)::+<'s>>,
            {
                self.inner.rebuild(source_of)
            }

            /// Closes the selector (Python's `close`): drops every key and
            /// releases the kernel object; the registered sockets stay open,
            /// they are yours. Dropping the selector does the same.
            ///
            /// ```
            /// use std::os::fd::AsFd;
            /// use std::os::unix::net::UnixStream;
            #[doc = concat!("use ", $krate, "::{", $name, ", Events};")]
            ///
            #[doc = concat!("let mut sel = ", $pre, "&str", $post, ";")]
            /// let (a, _b) = UnixStream::pair()?;
            /// sel.register(a.as_fd(), Events::READ, "a")?;
            /// sel.close();
            /// a.set_nonblocking(true)?; // still open
            /// # Ok::<(), std::io::Error>(())
            /// ```
            pub fn close(self) {
                self.inner.close();
            }

            /// The backend, for code written against the backend types
            /// (`crate::backend`).
            #[inline]
            pub fn backend(&self) -> &$backend {
                self.inner.backend()
            }

            /// Test hook (feature `testing`, not part of the API): sets the
            /// count of registrations, which tags them.
            #[cfg(feature = "testing")]
            #[doc(hidden)]
            pub fn set_next_tag(&mut self, tag: u64) {
                self.inner.set_next_tag(tag);
            }
        }

        impl<$($generics)*> ::core::fmt::Debug for $Self
        where
            T: ::core::fmt::Debug,
        {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.inner, f)
            }
        }
    };
}
