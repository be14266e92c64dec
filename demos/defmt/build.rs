//! Links the demo so defmt's interned strings survive and keep their ids:
//! defmt's own linker script (`defmt.x`, which defmt's build script writes),
//! turned into one that is inserted into the default layout after `.comment`
//! instead of replacing it, and no PIE, so the ids (symbol addresses in the
//! non-allocated `.defmt` section) are not relocated.
//!
//! lld only accepts `INSERT` right after a `SECTIONS` block of the same
//! file, so the script is copied, not `INCLUDE`d. It is found in defmt's
//! build output next to ours (cargo runs the build scripts of our
//! dependencies before this one).
use std::path::{Path, PathBuf};

fn defmt_x(out: &Path) -> PathBuf {
    let build = out
        .ancestors()
        .nth(2)
        .expect("OUT_DIR is target/*/build/NAME/out");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(build)
        .expect("read the build directory")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("defmt-"))
        .map(|e| e.path().join("out").join("defmt.x"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().expect("defmt's build script wrote defmt.x").1
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let source = defmt_x(&out);
    let script = std::fs::read_to_string(&source).expect("read defmt.x");
    // Close the SECTIONS block with `INSERT AFTER .comment;`.
    let start = script
        .find("SECTIONS")
        .expect("defmt.x has a SECTIONS block");
    let mut depth = 0;
    let mut end = None;
    for (i, c) in script[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(start + i + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let end = end.expect("SECTIONS block closes");
    let host = format!(
        "{}\nINSERT AFTER .comment;\n{}",
        &script[..end],
        &script[end..]
    );
    std::fs::write(out.join("defmt_host.x"), host).expect("write defmt_host.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tdefmt_host.x");
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", source.display());
}
