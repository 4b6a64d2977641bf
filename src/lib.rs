//! dockhand: a declarative provisioning engine, applied over SSH, that
//! secures Docker daemons across a fleet.
//!
//! The layers are mapped in `docs/ARCHITECTURE.md`: `cli` (clap, sealed)
//! → `commands` (one file per subcommand) → `engine` (loading, the fleet
//! runner, one host's pipeline) → `core` (pure) / `transport` (SSH), with
//! `lab` for disposable hosts and `report` the only place that writes to
//! the terminal besides `main`.

pub mod cli;
pub mod commands;
pub mod core;
pub mod engine;
pub mod error;
pub mod lab;
pub mod pki;
pub mod random;
pub mod report;
pub mod secret;
pub mod transport;
pub mod verify;

/// jemalloc for every binary built on this crate (dockhand, its tests and
/// benches alike): a fleet run's many short buffers (scripts, hosts'
/// answers, TLS records) beside the few that last to the report split
/// glibc's heaps into thousands of free chunks, and its `malloc` and `free`
/// then took a third of the runner threads' CPU at 10,000 simulated hosts.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read once at its start (`_RJEM_MALLOC_CONF` in the
/// environment still overrides them): an arena per CPU rather than four,
/// and freed pages handed back within a second rather than ten. At 10,000
/// simulated hosts with 200 forks that kept a run's peak at 58 MB where
/// the defaults reached 64 (and at 1,000 forks 161 MB, not 233), for the
/// same CPU. Each thread caches freed blocks of up to 4 KiB only, not 32:
/// russh's blocks of 16 to 32 KiB a connection (its channels' queues, its
/// cipher's buffer), freed as each host finishes, otherwise stayed in
/// every thread's cache; a 50-host converge peaked at 30.5 and 30.8 MiB
/// against 31.4 and 31.8, for the same CPU at 10,000 simulated hosts
/// (1.04 ms a host against 1.05). Handing freed pages back at once
/// (`dirty_decay_ms:0`) saved 1 MiB more but cost that CPU a half again.
#[cfg(all(target_os = "linux", not(target_env = "msvc")))]
#[used]
#[unsafe(export_name = "_rjem_malloc_conf")]
static ALLOCATOR_SETTINGS: &u8 =
    &b"percpu_arena:percpu,tcache_max:4096,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

#[cfg(test)]
mod fuzz_tests;

#[cfg(all(test, target_os = "linux"))]
mod allocator_tests {
    use std::ffi::{CStr, c_char};

    /// Reads one of jemalloc's options, of type `T`.
    fn option<T: Default>(name: &CStr) -> T {
        let mut value = T::default();
        let mut size = std::mem::size_of::<T>();
        // SAFETY: every name asked below is an option of jemalloc's of
        // the type it is read as.
        let status = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&raw mut value).cast(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(status, 0, "{name:?}");
        value
    }

    /// The settings reach jemalloc (a symbol it reads by name: a rename or
    /// a linker that dropped it would leave the defaults, silently).
    #[test]
    fn jemalloc_runs_with_dockhands_settings() {
        let percpu: *const c_char = option(c"opt.percpu_arena");
        // SAFETY: jemalloc names the setting in a static string.
        let percpu = unsafe { CStr::from_ptr(percpu) };
        assert_eq!(
            (
                option::<isize>(c"opt.dirty_decay_ms"),
                option::<isize>(c"opt.muzzy_decay_ms"),
                percpu.to_str().unwrap()
            ),
            (1000, 0, "percpu")
        );
    }
}
