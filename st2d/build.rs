//! Release builds for x86_64 Linux (linked by rust-lld, Rust's default linker there) lay out
//! the binary so that an idle daemon keeps few of its pages resident:
//!
//! * `-z pack-relative-relocs` stores the ~95,000 relative relocations of a position-independent
//!   binary as a compact bitmap (`.relr.dyn`, 31 KB) instead of 2.3 MB of `.rela.dyn` that the
//!   dynamic loader reads, and keeps mapped, at every start. It needs glibc 2.36 or later.
//! * `--symbol-ordering-file` places the functions listed in `link-order/symbols.txt`, the ones
//!   a start of `st2d serve` and its first requests run, first and together in `.text`. The
//!   kernel maps 64 KB around every page of code executed, so scattered start-up code kept
//!   most of the 25 MB of code resident. `link-order/generate.sh` regenerates the list; names
//!   missing from the binary (after a dependency or toolchain update) are skipped silently.
//!
//! `ST2D_LINK_LAYOUT=0` turns both off (for another linker or an older glibc).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link-order/symbols.txt");
    println!("cargo:rerun-if-env-changed=ST2D_LINK_LAYOUT");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let target = std::env::var("TARGET").unwrap_or_default();
    let wanted = std::env::var("ST2D_LINK_LAYOUT").as_deref() != Ok("0");
    if !(release && wanted && target == "x86_64-unknown-linux-gnu") {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let symbols = std::path::Path::new(&dir).join("link-order/symbols.txt");
    if symbols.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            symbols.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
