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

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "os error {}", self.0)
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
            Self::Os(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Os(e) => Some(e),
            _ => None,
        }
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
/// is as it was. Converts into [`Error`] with `?` when the data is not needed.
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

impl<T> core::error::Error for DataError<T> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match &self.error {
            Error::Os(e) => Some(e),
            _ => None,
        }
    }
}

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
