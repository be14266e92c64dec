//! The logging shim: defmt when the `defmt` feature is on, nothing otherwise.

#[cfg(feature = "defmt")]
macro_rules! log {
    ($($arg:tt)*) => { ::defmt::debug!($($arg)*) };
}

#[cfg(not(feature = "defmt"))]
macro_rules! log {
    ($($arg:tt)*) => {{}};
}
