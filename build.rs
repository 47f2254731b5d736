//! Tells the crate whether `std` keeps thread-locals natively on the target
//! (`lockfree_map_native_tls`).
//!
//! The retirement batch and the entry cache (`src/reclaim.rs`, `src/raw/pool.rs`) are
//! thread-locals without drop glue where thread-locals are native, so that their every access is
//! a plain load, with an owner thread-local doing their work at the thread's exit. Where `std`
//! keeps them in OS keys (targets without `target_thread_local`: Android, OpenBSD, illumos,
//! Windows with the GNU toolchain, ...), even a drop-free thread-local is a boxed value whose
//! key destructor frees it, in creation order, before the owner could hand it on; there each
//! keeps a destructor of its own, as before stop 51 (correct everywhere, only slower).
//!
//! `cfg(target_thread_local)` is unstable to test in code, and neither cargo (to build
//! scripts) nor stable rustc (`--print cfg`) tells it, so the native variant is built for the
//! targets that nightly 1.97's `rustc --print cfg --target T` lists with it, by operating system
//! (and toolchain), and the OS-key variant for every other: Linux (not Android, whose
//! `target_os` is `android`), macOS and iOS, Windows with MSVC, FreeBSD and NetBSD.
//!
//! `LOCKFREE_MAP_OS_TLS` set (to anything) builds the OS-key variant on any target, so that its
//! code can be tested where thread-locals are native.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lockfree_map_native_tls)");
    println!("cargo::rerun-if-env-changed=LOCKFREE_MAP_OS_TLS");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native = match var("CARGO_CFG_TARGET_OS").as_str() {
        "linux" | "macos" | "ios" | "freebsd" | "netbsd" => true,
        "windows" => var("CARGO_CFG_TARGET_ENV") == "msvc",
        _ => false,
    };
    if native && std::env::var_os("LOCKFREE_MAP_OS_TLS").is_none() {
        println!("cargo::rustc-cfg=lockfree_map_native_tls");
    }
}
