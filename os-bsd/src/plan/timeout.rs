//! The wait loop's time arithmetic, independent of the syscall: how long
//! each `kevent` may sleep so that a timeout never ends early, never
//! overflows, and is never rounded (kevent takes a `timespec`).
//!
//! Times are [`Duration`]s since an arbitrary origin of a monotonic clock.

use core::time::Duration;

/// The longest single `kevent` sleep; longer waits take several calls.
///
/// FreeBSD's `kqueue_scan` sleeps forever for a `tv_sec` above `INT32_MAX`
/// (it treats the deadline as none); current OpenBSD sleeps at most
/// `MAXTSLP` per round and sleeps again for the rest; macOS turns the
/// `timespec` into Mach absolute time with a multiplication that would
/// overflow for huge values. 10⁸ seconds (three years) is below all of
/// those limits (kernel notes: [timeouts](crate::kernels#timeouts)).
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(100_000_000);

/// Added to every positive deadline: the coarsest resolution of
/// `CLOCK_MONOTONIC` among the kqueue systems (macOS reads it in whole
/// microseconds; the BSDs in nanoseconds).
///
/// Clock readings are truncated, so a start reading can be up to one tick
/// before the real start; a deadline of `start + timeout` could then pass up
/// to one tick early after a retried (`EINTR`, early) `kevent`. One tick
/// more rules that out, at the cost of at most a microsecond.
pub(crate) const CLOCK_SLACK: Duration = Duration::from_micros(1);

/// When a wait ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Duration>);

/// How long the next `kevent` may sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sleep {
    /// No deadline: pass no timeout, block until an event.
    Forever,
    /// Sleep at most this long (at most [`MAX_SLEEP`], never zero).
    For(Duration),
    /// The deadline has passed.
    Expired,
}

impl Deadline {
    /// The deadline of a wait for `timeout` (`None`: forever) that starts at
    /// `now`: `now` itself for a zero timeout (one poll), else `now +
    /// timeout +` [`CLOCK_SLACK`]. A deadline beyond the clock's range
    /// (`Duration::MAX`) saturates to "forever": no overflow, no error.
    #[must_use]
    pub(crate) fn new(now: Duration, timeout: Option<Duration>) -> Self {
        Self(match timeout {
            None => None,
            Some(t) if t.is_zero() => Some(now),
            Some(t) => now
                .checked_add(t)
                .and_then(|at| at.checked_add(CLOCK_SLACK)),
        })
    }

    /// What the next `kevent` at time `now` may sleep.
    #[must_use]
    pub(crate) fn sleep(self, now: Duration) -> Sleep {
        match self.0 {
            None => Sleep::Forever,
            Some(at) if at <= now => Sleep::Expired,
            Some(at) => Sleep::For(at.saturating_sub(now).min(MAX_SLEEP)),
        }
    }
}

impl Sleep {
    /// The `kevent` timeout for this sleep: `None` blocks; the first call of
    /// a wait polls once (`Some(ZERO)`) even when it has already expired, so
    /// a zero timeout still collects what is ready.
    #[must_use]
    pub(crate) fn timeout(self) -> Option<Duration> {
        match self {
            Self::Forever => None,
            Self::For(d) => Some(d),
            Self::Expired => Some(Duration::ZERO),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(1_000);

    #[test]
    fn none_blocks() {
        let d = Deadline::new(T0, None);
        assert_eq!(d.sleep(T0), Sleep::Forever);
        assert_eq!(d.sleep(Duration::MAX), Sleep::Forever);
        assert_eq!(Sleep::Forever.timeout(), None);
    }

    #[test]
    fn zero_polls_once_then_expires() {
        let d = Deadline::new(T0, Some(Duration::ZERO));
        assert_eq!(d.sleep(T0), Sleep::Expired);
        assert_eq!(d.sleep(T0).timeout(), Some(Duration::ZERO));
    }

    #[test]
    fn positive_timeouts_are_never_rounded_down_and_never_end_early() {
        let s = CLOCK_SLACK;
        let d = Deadline::new(T0, Some(Duration::from_nanos(1)));
        // Not rounded to zero (a busy poll) nor to a millisecond: kevent
        // takes nanoseconds; only the clock's tick is added.
        assert_eq!(d.sleep(T0), Sleep::For(Duration::from_nanos(1) + s));

        let d = Deadline::new(T0, Some(Duration::from_micros(1500)));
        assert_eq!(d.sleep(T0), Sleep::For(Duration::from_micros(1500) + s));
        // An early return (or EINTR) 1 ms in sleeps for the rest.
        let later = T0 + Duration::from_millis(1);
        assert_eq!(d.sleep(later), Sleep::For(Duration::from_micros(500) + s));
        // The wait is over only a tick after the deadline: a start reading
        // truncated by up to a tick cannot make it end early.
        let end = T0 + Duration::from_micros(1500);
        assert_eq!(d.sleep(end), Sleep::For(s));
        assert_eq!(d.sleep(end + s), Sleep::Expired);
        assert_eq!(d.sleep(T0 + Duration::from_secs(1)), Sleep::Expired);
    }

    #[test]
    fn long_timeouts_sleep_in_capped_steps() {
        let long = Duration::from_secs(u64::MAX / 2);
        let d = Deadline::new(T0, Some(long));
        assert_eq!(d.sleep(T0), Sleep::For(MAX_SLEEP));
        assert_eq!(d.sleep(T0 + MAX_SLEEP), Sleep::For(MAX_SLEEP));
        let end = T0 + long + CLOCK_SLACK;
        assert_eq!(
            d.sleep(end - Duration::from_secs(1)),
            Sleep::For(Duration::from_secs(1))
        );
        assert_eq!(d.sleep(end), Sleep::Expired);
    }

    #[test]
    fn duration_max_saturates_to_forever() {
        assert_eq!(
            Deadline::new(T0, Some(Duration::MAX)).sleep(T0),
            Sleep::Forever
        );
        // Even from a zero clock reading, MAX + 0 does not overflow.
        let d = Deadline::new(Duration::ZERO, Some(Duration::MAX - CLOCK_SLACK));
        assert_eq!(d.sleep(Duration::ZERO), Sleep::For(MAX_SLEEP));
        // One tick more would overflow with the slack: forever, too.
        let d = Deadline::new(Duration::ZERO, Some(Duration::MAX));
        assert_eq!(d.sleep(Duration::ZERO), Sleep::Forever);
    }
}
