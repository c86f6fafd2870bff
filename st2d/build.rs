//! Release builds for x86_64 Linux (linked by rust-lld, Rust's default linker there) lay out
//! the binary so that an idle daemon keeps few of its pages resident:
//!
//! * `-z pack-relative-relocs` stores the ~95,000 relative relocations of a position-independent
//!   binary as a compact bitmap (`.relr.dyn`, 31 KB) instead of 2.3 MB of `.rela.dyn` that the
//!   dynamic loader reads, and keeps mapped, at every start. Only when the build machine's
//!   glibc reads them (2.36 and later define `GLIBC_ABI_DT_RELR`); the binary then needs such
//!   a glibc to run.
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
    if libc_reads_packed_relocations() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
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

/// Whether the build machine's `libc.so.6` defines `GLIBC_ABI_DT_RELR` (glibc 2.36 and later
/// apply packed relative relocations; an older one would start the binary unrelocated).
fn libc_reads_packed_relocations() -> bool {
    const NEEDLE: &[u8] = b"GLIBC_ABI_DT_RELR";
    [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
    ]
    .iter()
    .filter_map(|path| std::fs::read(path).ok())
    .any(|bytes| bytes.windows(NEEDLE.len()).any(|w| w == NEEDLE))
}
