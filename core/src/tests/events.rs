//! The event mask: Python's values, and which masks are valid.

use crate::Events;

#[test]
fn python_values() {
    assert_eq!(Events::READ.bits(), 1);
    assert_eq!(Events::WRITE.bits(), 2);
}

#[test]
fn validity() {
    assert!(Events::READ.is_valid());
    assert!(Events::WRITE.is_valid());
    assert!((Events::READ | Events::WRITE).is_valid());
    assert!(!Events::empty().is_valid());
    for bits in 4u8..=255 {
        assert!(!Events::from_bits_retain(bits).is_valid(), "{bits}");
    }
}
