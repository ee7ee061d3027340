//! Process hardening, applied at the start of every command (the whole command line handles
//! secret values, passphrases, keys and tokens):
//!
//! - **No core dumps**: `RLIMIT_CORE` 0 (soft and hard) and, on Linux, `PR_SET_DUMPABLE` 0, which
//!   also keeps other processes of the same user from attaching with ptrace or reading
//!   `/proc/<pid>/mem` (root still can).
//! - **Memory locked** where the OS allows it without making later allocations fail: on Linux,
//!   `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)` when the process may lock without limit
//!   (`CAP_IPC_LOCK`, as root usually has outside containers, or `RLIMIT_MEMLOCK` unlimited), so
//!   that pages holding secrets are not written to swap. Under a finite lock limit it is not attempted: `MCL_FUTURE` would make every
//!   allocation past the limit fail (a 64 MiB Argon2id evaluation would abort the process).
//!
//! Every step is best effort and silent: a refusal leaves the process as it was.

/// Applies what the OS allows; reports nothing.
pub fn apply() {
    #[cfg(unix)]
    unix::apply();
}

#[cfg(unix)]
mod unix {
    use rustix::process::{Resource, Rlimit, setrlimit};

    pub fn apply() {
        let _ = setrlimit(
            Resource::Core,
            Rlimit {
                current: Some(0),
                maximum: Some(0),
            },
        );
        #[cfg(target_os = "linux")]
        {
            use rustix::process::{DumpableBehavior, set_dumpable_behavior};
            let _ = set_dumpable_behavior(DumpableBehavior::NotDumpable);
            lock_memory();
        }
    }

    /// `mlockall` when the lock limit cannot make allocations fail: `RLIMIT_MEMLOCK` unlimited,
    /// or `CAP_IPC_LOCK`, which lifts it (being root is not enough: a container's root usually
    /// lacks it).
    #[cfg(target_os = "linux")]
    fn lock_memory() {
        use rustix::mm::{MlockAllFlags, mlockall};
        use rustix::process::getrlimit;
        use rustix::thread::{CapabilitySet, capabilities};
        let unlimited = getrlimit(Resource::Memlock).current.is_none();
        let exempt =
            capabilities(None).is_ok_and(|c| c.effective.contains(CapabilitySet::IPC_LOCK));
        if !(unlimited || exempt) {
            return;
        }
        let all = MlockAllFlags::CURRENT | MlockAllFlags::FUTURE;
        // MCL_ONFAULT (Linux 4.4) locks pages as they are touched instead of populating every
        // mapping (thread stacks, reserved heap) at once.
        if mlockall(all | MlockAllFlags::ONFAULT).is_err() {
            let _ = mlockall(all);
        }
    }
}
