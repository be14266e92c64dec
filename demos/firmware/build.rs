//! Puts the machine's `memory.x` where the linker finds it, and names the
//! machine (`cfg(machine = "...")`) from the target.
use std::{env, fs, path::PathBuf};

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    let machine = match target.as_str() {
        "thumbv7m-none-eabi" => "lm3s6965evb",
        "thumbv6m-none-eabi" => "microbit",
        t if t.starts_with("riscv32") => "virt",
        _ => "none",
    };
    println!(
        "cargo::rustc-check-cfg=cfg(machine, values(\"lm3s6965evb\", \"microbit\", \"virt\", \"none\"))"
    );
    println!("cargo::rustc-cfg=machine=\"{machine}\"");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    if machine != "none" {
        fs::copy(format!("memory/{machine}.x"), out.join("memory.x")).unwrap();
    }
    println!("cargo::rustc-link-search={}", out.display());
    println!("cargo::rerun-if-changed=memory");
    println!("cargo::rerun-if-changed=build.rs");
}
