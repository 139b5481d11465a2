//! A node starting over in its own process (same pid, arguments and output), as a supervisor
//! would restart it: used when RocksDB found damaged data in the background and refuses every
//! write. The damage is recorded in the data directory first, so the new start sets the
//! directory aside and asks the cluster to rebuild this node's replicas (docs/operations.md,
//! "Storage faults"). Exec replaces every thread at once, like a crash: what was fsynced stays.

/// Restarts one node process may make (a counter passed on in the environment) before it
/// aborts instead: damage found again and again is a disk to replace, not to retry.
const RESTARTS_MAX: u32 = 3;
const COUNTER: &str = "CAIRN_DAMAGE_RESTARTS";

/// Replaces this process with a fresh start of the same binary and arguments; aborts if that
/// cannot be done or `RESTARTS_MAX` restarts were already made.
pub fn in_place() -> ! {
    use std::os::unix::process::CommandExt;
    let done: u32 = std::env::var(COUNTER).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if done < RESTARTS_MAX {
        match std::env::current_exe() {
            Ok(exe) => {
                // Sockets, files and RocksDB's lock are close-on-exec: the new start binds and
                // opens them afresh (an inherited --listen-fd stays, as it was inherited).
                let err = std::process::Command::new(exe)
                    .args(std::env::args_os().skip(1))
                    .env(COUNTER, (done + 1).to_string())
                    .exec();
                eprintln!("cairn-node: cannot restart in place: {err}; aborting");
            }
            Err(e) => eprintln!("cairn-node: cannot find this binary to restart: {e}; aborting"),
        }
    } else {
        eprintln!(
            "cairn-node: storage found damaged {done} times since this process started; aborting (replace the disk)"
        );
    }
    std::process::abort();
}
