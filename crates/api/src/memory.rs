//! How the process hands memory back to the operating system.
//!
//! Every password check allocates 19 MiB (argon2, see [`crate::password`]). glibc's
//! allocator serves blocks that large with `mmap` at first, but after the first one is
//! freed it raises its threshold above 19 MiB and serves the next ones from its heaps,
//! which it rarely shrinks: measured, 1,000 failed sign-ins left a server at about
//! 1 GiB resident even with only two checks at a time (docs/performance.md).
//! [`return_large_blocks`] pins the threshold at [`MMAP_THRESHOLD`], so blocks of that
//! size and more are always mapped on their own and unmapped when freed; everything
//! smaller is untouched. An operator's own `MALLOC_MMAP_THRESHOLD_` or
//! `GLIBC_TUNABLES` wins.

/// Blocks of at least this many bytes are mapped on their own and returned on free.
pub const MMAP_THRESHOLD: usize = 4 * 1024 * 1024;

/// Applies [`MMAP_THRESHOLD`] to glibc's allocator; call it once, first thing in
/// `main`. Does nothing on other C libraries (musl returns such blocks already) or
/// when the operator set the allocator up through the environment.
pub fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let configured = ["MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"]
            .iter()
            .any(|var| std::env::var_os(var).is_some());
        if !configured {
            // SAFETY: mallopt only changes allocator parameters; it is called before
            // any other thread exists.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
            }
        }
    }
}
