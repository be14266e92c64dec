//! What `ioselect_bsd::DefaultSelector` is on a target without kqueue (Linux,
//! Android, ...): a stand-in whose every use fails to compile with a message
//! that names the crate to use instead, rather than a bare "unresolved import".

/// Implemented for no type: the bound that makes every use of the stand-in
/// [`DefaultSelector`] fail, with this message.
#[diagnostic::on_unimplemented(
    message = "ioselect-bsd has no backend on this target: its selectors exist only on macOS, iOS and the BSDs",
    label = "no kqueue on this target",
    note = "on Linux and Android, depend on `ioselect-linux` and use `ioselect_linux::DefaultSelector` (README, \"Install\": target-specific dependency tables)"
)]
pub trait KqueueTarget {}

/// Stand-in on targets without kqueue: not usable (see [`KqueueTarget`]).
#[doc(hidden)]
pub struct DefaultSelector<T: KqueueTarget, const N: usize>(core::marker::PhantomData<T>);

/// Stand-in on targets without kqueue: not usable (see [`KqueueTarget`]).
#[doc(hidden)]
pub struct LargeSelector<T: KqueueTarget, S = (), const E: usize = 256>(
    core::marker::PhantomData<(T, S)>,
);
