//! Names the platform families once, as rustix's `build.rs` does, so the
//! sources say `cfg(kqueue)` instead of repeating a list of `target_os`es.
//!
//! - `kqueue`: the targets where `rustix::event::kqueue` exists (rustix's
//!   `bsd`: Apple's OSes, FreeBSD, DragonFly, NetBSD and OpenBSD).

use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kqueue)");
    println!("cargo::rerun-if-changed=build.rs");

    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let apple = matches!(
        os.as_str(),
        "macos" | "ios" | "tvos" | "visionos" | "watchos"
    );
    let freebsdlike = matches!(os.as_str(), "freebsd" | "dragonfly");
    let netbsdlike = matches!(os.as_str(), "netbsd" | "openbsd");

    if apple || freebsdlike || netbsdlike {
        println!("cargo::rustc-cfg=kqueue");
    }
}
