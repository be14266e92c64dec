//! Errors: small, `Copy`, `no_std`.

use core::fmt;

/// An error code from the operating system (`errno`), or from a software
/// backend that mimics one.
///
/// Core knows no operating system; backends translate their native error into
/// this newtype. The constants below have the same value on Linux, macOS and
/// the BSDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct OsError(i32);

impl OsError {
    /// `EPERM`: operation not permitted (epoll refuses regular files with it).
    pub const EPERM: Self = Self(1);
    /// `ENOENT`: no such entry (the fd is not in the kernel's interest set).
    pub const ENOENT: Self = Self(2);
    /// `EINTR`: interrupted by a signal.
    pub const EINTR: Self = Self(4);
    /// `EBADF`: not an open file descriptor.
    pub const EBADF: Self = Self(9);
    /// `ENOMEM`: out of kernel memory.
    pub const ENOMEM: Self = Self(12);
    /// `EEXIST`: already present in the kernel's interest set.
    pub const EEXIST: Self = Self(17);
    /// `EINVAL`: invalid argument.
    pub const EINVAL: Self = Self(22);

    /// Wraps a raw `errno` value.
    #[inline]
    #[must_use]
    pub const fn from_raw(errno: i32) -> Self {
        Self(errno)
    }

    /// The raw `errno` value, e.g. for `std::io::Error::from_raw_os_error`.
    #[inline]
    #[must_use]
    pub const fn raw(self) -> i32 {
        self.0
    }
}

/// With the `std` feature, the platform's message, as `std::io::Error`
/// prints it (`Bad file descriptor (os error 9)`); without it (core knows
/// no platform's messages), `os error 9`.
impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[cfg(feature = "std")]
        {
            fmt::Display::fmt(&std::io::Error::from_raw_os_error(self.0), f)
        }
        #[cfg(not(feature = "std"))]
        {
            write!(f, "os error {}", self.0)
        }
    }
}

impl core::error::Error for OsError {}

/// Why a selector operation failed.
///
/// Every error leaves the selector's key table and the kernel's interest set
/// exactly as they were before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// `register` of a file descriptor that already has a key
    /// (Python: `KeyError: ... is already registered`).
    AlreadyRegistered,
    /// `unregister` or `modify` of a file descriptor without a key
    /// (Python: `KeyError: ... is not registered`).
    NotRegistered,
    /// The events mask is empty or has bits other than `READ` and `WRITE`
    /// (Python: `ValueError: Invalid events`).
    InvalidEvents,
    /// The file descriptor is negative (Python: `ValueError: Invalid file
    /// descriptor`). A non-negative number that is not open is reported by
    /// the kernel as [`Error::Os`] with `EBADF`.
    InvalidFd,
    /// The key table holds its full capacity `N` already.
    Full,
    /// The kernel watches a file for a key the table no longer has, and
    /// the selector cannot remove it: an fd was closed while registered
    /// (then [`unregister_closed`](crate::Selector::unregister_closed)) while
    /// a `dup` of it, or a child process, kept its open file alive. epoll
    /// keeps watching such a file under the old key's token, and nothing but
    /// the closed fd can name it to `epoll_ctl`.
    ///
    /// [`select`](crate::Selector::select) returns it (without waiting) once
    /// such a registration has ended a wait: its events are never delivered,
    /// but they would end every `select`, a busy loop. `register` returns it
    /// when the kernel refuses to take the registration over.
    /// [`rebuild`](crate::SelectorIn::rebuild) starts a fresh kernel object
    /// without it.
    StaleRegistration,
    /// Storage for a key table with no slots (`Vec::with_capacity(n)` is
    /// empty: make its slots, e.g. `iter::repeat_with(Slot::new).take(n)`),
    /// or with more than `u32::MAX - 1`; from `with_capacity`, also more
    /// slots than the address space can hold (`isize::MAX` bytes).
    InvalidCapacity,
    /// A `select` with a positive timeout on a backend that has no clock to
    /// measure it: a [`SoftBackend`](crate::SoftBackend) whose
    /// [`Platform`](crate::Platform) answers [`now`](crate::Platform::now)
    /// with `None`. Rather than return early, the select fails; nothing
    /// changed. `select(None)` and `select(Some(Duration::ZERO))` work there.
    NoClock,
    /// The backend's kernel object belongs to another process: the selector
    /// was inherited across `fork`, and the child has no copy of that object
    /// (no kernel copies a kqueue into a fork child, so its number is closed
    /// there, or already names another file). It is reported when a kernel
    /// call on the inherited number fails in the child (the process id is
    /// asked only then); the backend closes nothing when dropped there;
    /// [`rebuild`](crate::SelectorIn::rebuild) gives the child a fresh
    /// object with the same keys.
    Forked,
    /// The backend (the kernel) refused the operation.
    Os(OsError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyRegistered => f.write_str("file descriptor is already registered"),
            Self::NotRegistered => f.write_str("file descriptor is not registered"),
            Self::InvalidEvents => f.write_str("invalid events mask"),
            Self::InvalidFd => f.write_str("invalid file descriptor"),
            Self::Full => f.write_str("selector key table is full"),
            Self::StaleRegistration => f.write_str(
                "the kernel watches a file for a key closed while registered; rebuild the selector",
            ),
            Self::NoClock => f.write_str("timed select on a backend without a clock"),
            Self::InvalidCapacity => {
                f.write_str("the key table's storage has no slots, or too many")
            }
            Self::Forked => f.write_str(
                "the selector's kernel object belongs to the parent process (inherited across fork)",
            ),
            Self::Os(e) => fmt::Display::fmt(e, f),
        }
    }
}

/// `source()` is `None` for every variant: [`Error::Os`] displays the OS
/// error itself, so a report that walks the chain (anyhow's `{:#}`) prints
/// it once.
impl core::error::Error for Error {}

impl Error {
    /// The `std::io::ErrorKind` this error converts to (with the `std`
    /// feature, `?` turns an `Error` into a `std::io::Error` of this kind).
    #[cfg(feature = "std")]
    #[must_use]
    pub fn kind(&self) -> std::io::ErrorKind {
        use std::io::ErrorKind;
        match self {
            Self::AlreadyRegistered | Self::StaleRegistration => ErrorKind::AlreadyExists,
            Self::NotRegistered => ErrorKind::NotFound,
            Self::InvalidEvents | Self::InvalidFd | Self::InvalidCapacity => {
                ErrorKind::InvalidInput
            }
            Self::Full => ErrorKind::OutOfMemory,
            Self::NoClock => ErrorKind::Unsupported,
            Self::Forked => ErrorKind::Other,
            Self::Os(e) => std::io::Error::from_raw_os_error(e.raw()).kind(),
        }
    }
}

/// `?` from an [`OsError`] into `std::io::Result`: the same OS error.
#[cfg(feature = "std")]
impl From<OsError> for std::io::Error {
    #[inline]
    fn from(e: OsError) -> Self {
        Self::from_raw_os_error(e.raw())
    }
}

/// `?` from an [`Error`] into `std::io::Result`: [`Error::Os`] becomes that
/// OS error (no allocation), the others an error of [`Error::kind`] that
/// carries the `Error` (`get_ref()` + `downcast_ref::<Error>()` gets it back).
#[cfg(feature = "std")]
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Os(os) => os.into(),
            other => Self::new(other.kind(), other),
        }
    }
}

/// `?` from a [`DataError<T>`] into `std::io::Result`, for any `T`: the data
/// is dropped (use [`DataError::into_parts`] to keep it).
#[cfg(feature = "std")]
impl<T> From<DataError<T>> for std::io::Error {
    #[inline]
    fn from(e: DataError<T>) -> Self {
        e.error.into()
    }
}

impl From<OsError> for Error {
    #[inline]
    fn from(e: OsError) -> Self {
        Self::Os(e)
    }
}

/// A failed operation that took ownership of user data (`register`,
/// `modify`, `modify_data`): the error, and the data handed back.
///
/// Nothing is lost: on every error the data comes back here, and the selector
/// is as it was. Converts with `?` into [`Error`], and with the `std`
/// feature into `std::io::Error`, for any `T`, when the data is not needed.
///
/// It implements `core::error::Error` for every `T` too, but error-report
/// types ask more of it: `anyhow::Error` needs `T: Send + Sync + 'static`
/// and `Box<dyn Error>` needs `T: 'static`. When `T` is not, convert first:
/// `sel.register(..).map_err(Error::from)?`.
pub struct DataError<T> {
    /// What went wrong.
    pub error: Error,
    /// The data the call was given, returned unchanged.
    pub data: T,
}

impl<T> DataError<T> {
    /// Splits into the error and the returned data.
    #[inline]
    pub fn into_parts(self) -> (Error, T) {
        (self.error, self.data)
    }
}

impl<T> fmt::Debug for DataError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for DataError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

/// Like [`Error`], `source()` is `None`: the message is the error's.
impl<T> core::error::Error for DataError<T> {}

impl<T> From<DataError<T>> for Error {
    #[inline]
    fn from(e: DataError<T>) -> Self {
        e.error
    }
}

#[cfg(feature = "defmt")]
impl<T> defmt::Format for DataError<T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "DataError {{ error: {} }}", self.error);
    }
}
