//! Shard placement under a real cgroup v2 CPU quota (issue 22): the
//! parsers are tested on sample files beside them (`runtime/placement`);
//! this runs the built binary in a cgroup whose `cpu.max` allows one CPU
//! and reads the shard count it chose from `/metrics`, as an operator
//! would.
//!
//! It needs root, a cgroup2 hierarchy (one already mounted, or one this
//! test mounts in a mount namespace of its own) and the `cpu` controller
//! in it. A host whose `cpu` controller is held by a cgroup v1 hierarchy
//! (hybrid mode, as the machine this was written on) cannot give it to
//! v2: the test prints `SKIP:` and why, and passes. CI runs it as root.

mod support;

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use support::{Origin, Ringside};

/// One CPU: `cpu.max` as "quota period" in microseconds.
const ONE_CPU: &str = "100000 100000";

#[test]
fn a_cpu_quota_of_one_cpu_gives_one_shard() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus < 2 {
        return skip(&format!(
            "{cpus} CPU: a quota of one cannot change the shard count"
        ));
    }
    let hierarchy = match Cgroup2::find_or_mount() {
        Ok(hierarchy) => hierarchy,
        Err(reason) => return skip(&reason),
    };
    let group = match hierarchy.group_with_cpu_max("ringside-quota", ONE_CPU) {
        Ok(group) => group,
        Err(reason) => return skip(&reason),
    };
    let echo = Origin::echo();
    let proxy = Ringside::route_to([echo.addr])
        .in_cgroup(group.dir.to_str().unwrap())
        .start();
    let shards = proxy.metrics().sum("ringside_shards", &[]);
    assert_eq!(
        shards,
        1.0,
        "{cpus} CPUs and cpu.max {ONE_CPU:?} in {}: one shard expected",
        group.dir.display()
    );
    drop(proxy);
}

/// Says why the test did not run, straight to stderr: the harness would
/// hide a `println!` of a passing test.
fn skip(reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// A cgroup2 hierarchy this process can see.
struct Cgroup2 {
    root: PathBuf,
    /// Whether this test mounted it (then unmounted when dropped).
    mounted: bool,
}

impl Drop for Cgroup2 {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let target = CString::new(self.root.to_str().unwrap()).unwrap();
        // SAFETY: umount2 takes a NUL-terminated path and flags.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        let _ = fs::remove_dir(&self.root);
    }
}

impl Cgroup2 {
    /// The mount point of a cgroup2 hierarchy already mounted, or one
    /// mounted now in a private mount namespace of this thread (the
    /// proxy, spawned from it, inherits it), or why neither can be.
    fn find_or_mount() -> Result<Cgroup2, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: cannot create a cgroup".into());
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if let Some(point) = cgroup2_mount_point(&mountinfo) {
            return Ok(Cgroup2 {
                root: point.into(),
                mounted: false,
            });
        }
        let root = std::env::temp_dir().join(format!("ringside-cgroup2-{}", std::process::id()));
        fs::create_dir_all(&root).map_err(|err| format!("{}: {err}", root.display()))?;
        let hierarchy = Cgroup2 {
            root,
            mounted: true,
        };
        mount_private_cgroup2(&hierarchy.root)?;
        Ok(hierarchy)
    }

    /// A child group with `cpu_max`, removed when dropped; or why the
    /// hierarchy cannot limit CPU.
    fn group_with_cpu_max(&self, tag: &str, cpu_max: &str) -> Result<Group, String> {
        let controllers = fs::read_to_string(self.root.join("cgroup.controllers"))
            .map_err(|err| format!("{}: {err}", self.root.display()))?;
        if !controllers.split_whitespace().any(|name| name == "cpu") {
            return Err(format!(
                "the cgroup2 hierarchy at {} has no cpu controller (cgroup.controllers: {:?}): \
                 a cgroup v1 hierarchy holds it",
                self.root.display(),
                controllers.trim()
            ));
        }
        let subtree = self.root.join("cgroup.subtree_control");
        fs::write(&subtree, "+cpu")
            .map_err(|err| format!("enabling cpu in {}: {err}", subtree.display()))?;
        let dir = self.root.join(format!("{tag}-{}", std::process::id()));
        fs::create_dir(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let group = Group { dir };
        let file = group.dir.join("cpu.max");
        fs::write(&file, cpu_max).map_err(|err| format!("{}: {err}", file.display()))?;
        Ok(group)
    }
}

/// A cgroup this test made, removed when dropped (once its processes
/// are gone: the proxy is dropped first).
struct Group {
    dir: PathBuf,
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.dir);
    }
}

/// The mount point of the first cgroup2 line of mountinfo.
fn cgroup2_mount_point(mountinfo: &str) -> Option<&str> {
    mountinfo.lines().find_map(|line| {
        let (fields, filesystem) = line.split_once(" - ")?;
        let cgroup2 = filesystem.split_whitespace().next() == Some("cgroup2");
        cgroup2.then(|| fields.split_whitespace().nth(4)).flatten()
    })
}

/// Moves this thread into a mount namespace of its own, private so that
/// nothing mounted here reaches the host's, and mounts cgroup2 on `dir`.
fn mount_private_cgroup2(dir: &Path) -> Result<(), String> {
    let errno = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    let none = CString::new("none").unwrap();
    let root = CString::new("/").unwrap();
    let cgroup2 = CString::new("cgroup2").unwrap();
    let target = CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: unshare and mount take the flags and NUL-terminated strings
    // given; unshare(CLONE_NEWNS) affects this thread only.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(errno("unshare(CLONE_NEWNS)"));
        }
        let private = libc::MS_REC | libc::MS_PRIVATE;
        if libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            private,
            std::ptr::null(),
        ) != 0
        {
            return Err(errno("making / private"));
        }
        if libc::mount(
            none.as_ptr(),
            target.as_ptr(),
            cgroup2.as_ptr(),
            0,
            std::ptr::null(),
        ) != 0
        {
            return Err(errno(&format!("mount -t cgroup2 none {}", dir.display())));
        }
    }
    Ok(())
}
