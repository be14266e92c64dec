//! `defmt::Format` for the types the derive cannot handle.

use crate::Events;

/// bitflags 2 types cannot use `#[derive(defmt::Format)]`: print the flags
/// by name, and any unknown bits in hex.
impl defmt::Format for Events {
    fn format(&self, f: defmt::Formatter<'_>) {
        let unknown = self.bits() & !Events::all().bits();
        #[allow(
            clippy::match_same_arms,
            reason = "each arm writes another string; defmt interns them, so the expansions look alike"
        )]
        match (self.contains(Events::READ), self.contains(Events::WRITE)) {
            (true, true) => defmt::write!(f, "READ | WRITE"),
            (true, false) => defmt::write!(f, "READ"),
            (false, true) => defmt::write!(f, "WRITE"),
            (false, false) if unknown == 0 => defmt::write!(f, "(empty)"),
            (false, false) => {
                defmt::write!(f, "{=u8:#x}", unknown);
                return;
            }
        }
        if unknown != 0 {
            defmt::write!(f, " | {=u8:#x}", unknown);
        }
    }
}
