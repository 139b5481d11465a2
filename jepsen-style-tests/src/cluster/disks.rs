//! Small filesystems for the `disk-full` nemesis: each node's data directory is an ext4
//! filesystem of its own, in a sparse image file of the run directory mounted through a loop
//! device, so the nemesis can fill it (and free it) without touching the machine's disk. A guard
//! unmounts every filesystem and deletes the images when dropped, also on failure.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the machine must offer: root, `mkfs.ext4`, `mount` and a free loop device.
///
/// # Errors
/// Why small filesystems cannot be made here.
pub fn probe() -> anyhow::Result<()> {
    let ok = |cmd: &str, args: &[&str]| Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success());
    anyhow::ensure!(ok("id", &["-u"]) && is_root(), "not running as root");
    anyhow::ensure!(ok("mkfs.ext4", &["-V"]), "mkfs.ext4 (e2fsprogs) not found");
    anyhow::ensure!(ok("losetup", &["-f"]), "no free loop device (losetup -f failed)");
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd).args(args).output()?;
    anyhow::ensure!(out.status.success(), "{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Name of the file the nemesis fills a data directory's filesystem with.
pub const FILLER: &str = "disk-full-filler";

/// The mounted filesystems of one run.
pub struct SmallDisks {
    mounts: Vec<(PathBuf, PathBuf)>,
}

impl SmallDisks {
    /// Makes and mounts a `bytes`-sized ext4 filesystem on each of `dirs` (created if missing).
    ///
    /// # Errors
    /// mkfs or mount failures (everything mounted so far is undone).
    pub fn mount(dirs: &[PathBuf], bytes: u64) -> anyhow::Result<SmallDisks> {
        let mut disks = SmallDisks { mounts: Vec::new() };
        for dir in dirs {
            std::fs::create_dir_all(dir)?;
            let image = dir.with_extension("img");
            std::fs::File::create(&image)?.set_len(bytes)?;
            let img = image.display().to_string();
            run("mkfs.ext4", &["-q", "-F", "-m", "0", &img])?;
            run("mount", &["-o", "loop", &img, &dir.display().to_string()])?;
            disks.mounts.push((dir.clone(), image));
        }
        Ok(disks)
    }

    /// Fills the filesystem of `dir` until `leave` bytes are free (0: completely full).
    /// Returns the filler's size.
    ///
    /// # Errors
    /// `fallocate` failures other than running out of space.
    pub fn fill(dir: &Path, leave: u64) -> anyhow::Result<u64> {
        let filler = dir.join(FILLER);
        let _ = std::fs::remove_file(&filler);
        let free = free_bytes(dir)?;
        let size = free.saturating_sub(leave);
        if size == 0 {
            return Ok(0);
        }
        let f = filler.display().to_string();
        if run("fallocate", &["-l", &size.to_string(), &f]).is_err() {
            // Space went meanwhile: take whatever is left.
            run("fallocate", &["-l", &free_bytes(dir)?.saturating_sub(leave).max(4096).to_string(), &f])?;
        }
        if leave == 0 {
            // Reserved blocks and rounding leave a few: use those too.
            let _ = run("sh", &["-c", &format!("cat /dev/zero >> {f} 2>/dev/null; sync")]);
        }
        Ok(std::fs::metadata(&filler).map_or(0, |m| m.len()))
    }

    /// Deletes the filler of `dir`.
    pub fn free(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(FILLER));
    }
}

/// Free bytes of the filesystem holding `dir`, as an unprivileged writer sees them.
///
/// # Errors
/// `df` failures.
pub fn free_bytes(dir: &Path) -> anyhow::Result<u64> {
    let out = run("df", &["-B1", "--output=avail", &dir.display().to_string()])?;
    out.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("cannot read df output: {out}"))
}

impl Drop for SmallDisks {
    fn drop(&mut self) {
        for (dir, image) in self.mounts.drain(..) {
            let d = dir.display().to_string();
            if run("umount", &[&d]).is_err() {
                // Something still holds it (a node that did not exit yet): detach it lazily.
                let _ = run("umount", &["-l", &d]);
            }
            let _ = std::fs::remove_file(&image);
        }
    }
}
