//! The cgroup parsers over sample files, malformed ones included: they
//! fall back to "no quota" and never panic.

use super::*;

fn limited(quota_us: u64, period_us: u64) -> Quota {
    Quota::Limited(CpuMax {
        quota_us,
        period_us,
    })
}

#[test]
fn cpu_max_reads_a_quota_or_none() {
    assert_eq!(parse_cpu_max("max 100000\n"), Quota::Unlimited);
    assert_eq!(parse_cpu_max("max"), Quota::Unlimited);
    assert_eq!(parse_cpu_max("150000 100000\n"), limited(150_000, 100_000));
    assert_eq!(parse_cpu_max("50000 100000"), limited(50_000, 100_000));
}

#[test]
fn a_malformed_cpu_max_is_kept_for_the_log_and_limits_nothing() {
    for text in [
        "",
        "\n",
        "max 0",
        "max x",
        "0 100000",
        "150000 0",
        "-1 100000",
        "150000",
        "1.5 100000",
        "150000 100000 7",
        "garbage",
        "18446744073709551616 100000",
    ] {
        let quota = parse_cpu_max(text);
        assert_eq!(quota, Quota::Malformed(text.trim().into()), "{text:?}");
        assert_eq!(quota.limit(), None);
    }
    let long = "x".repeat(1000);
    assert_eq!(parse_cpu_max(&long), Quota::Malformed("x".repeat(40)));
}

#[test]
fn a_quota_rounds_up_to_whole_cpus() {
    let cpus = |quota_us, period_us| {
        CpuMax {
            quota_us,
            period_us,
        }
        .cpus_rounded_up()
    };
    assert_eq!(cpus(150_000, 100_000), 2);
    assert_eq!(cpus(200_000, 100_000), 2);
    assert_eq!(cpus(1_000, 100_000), 1);
    assert_eq!(
        cpus(u64::MAX, 1),
        usize::try_from(u64::MAX).unwrap_or(usize::MAX)
    );
}

#[test]
fn a_quota_is_printed_in_cpus() {
    assert_eq!(
        limited(150_000, 100_000).to_string(),
        "cgroup cpu.max 150000/100000 (1.5 CPUs)"
    );
    assert_eq!(
        limited(100_000, 300_000).to_string(),
        "cgroup cpu.max 100000/300000 (0.33 CPUs)"
    );
}

#[test]
fn the_tightest_quota_on_the_way_wins() {
    assert_eq!(tightest([]), Quota::Absent);
    assert_eq!(tightest(["max 100000", "max 100000"]), Quota::Unlimited);
    // A slice at 4 CPUs above a service at 1.5 (another period): 1.5 wins.
    let files = ["400000 100000", "max 100000", "75000 50000"];
    assert_eq!(tightest(files), limited(75_000, 50_000));
    assert_eq!(
        tightest(["75000 50000", "400000 100000"]),
        limited(75_000, 50_000)
    );
    // An unreadable file shows in the log, but never hides a real limit.
    assert_eq!(
        tightest(["max 100000", "junk"]),
        Quota::Malformed("junk".into())
    );
    assert_eq!(
        tightest(["junk", "200000 100000"]),
        limited(200_000, 100_000)
    );
}

#[test]
fn the_v2_line_of_proc_self_cgroup_names_the_cgroup() {
    assert_eq!(
        v2_path("0::/system.slice/x.service\n"),
        Some("/system.slice/x.service")
    );
    // A hybrid host lists the v1 hierarchies first.
    let hybrid = "12:cpu,cpuacct:/user.slice\n1:name=systemd:/user.slice/s\n0::/user.slice/s\n";
    assert_eq!(v2_path(hybrid), Some("/user.slice/s"));
    for v1_or_junk in ["", "4:memory:/x\n", "0::\n", "0::relative\n", "garbage"] {
        assert_eq!(v2_path(v1_or_junk), None, "{v1_or_junk:?}");
    }
}

#[test]
fn mountinfo_gives_the_cgroup2_mount() {
    let mountinfo = "\
22 28 0:21 / /proc rw,nosuid - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
";
    let mount = cgroup2_mount(mountinfo).unwrap();
    assert_eq!(mount.point, Path::new("/sys/fs/cgroup/unified"));
    assert_eq!(mount.root, Path::new("/"));
    assert_eq!(
        cgroup2_mount("22 28 0:21 / /proc rw - proc proc rw\n"),
        None
    );
    assert_eq!(cgroup2_mount("41 31 0:38 / - cgroup2 cgroup2 rw\n"), None);
    assert_eq!(cgroup2_mount("garbage\n - \n"), None);
}

fn mount(root: &str) -> Cgroup2Mount {
    Cgroup2Mount {
        root: root.into(),
        point: "/sys/fs/cgroup".into(),
    }
}

#[test]
fn the_cpu_max_files_run_from_the_mount_down_to_the_cgroup() {
    let dirs = cgroup_dirs(&mount("/"), "/system.slice/x.service");
    let expected = ["", "system.slice", "system.slice/x.service"]
        .map(|dir| Path::new("/sys/fs/cgroup").join(dir));
    assert_eq!(dirs, expected);
    // In a container's own cgroup namespace, its cgroup is the mount's top.
    assert_eq!(cgroup_dirs(&mount("/"), "/"), [Path::new("/sys/fs/cgroup")]);
    // A bind mount of a sub-tree: the path below its root.
    let dirs = cgroup_dirs(&mount("/kubepods/pod1"), "/kubepods/pod1/c1");
    assert_eq!(
        dirs,
        [Path::new("/sys/fs/cgroup"), Path::new("/sys/fs/cgroup/c1")]
    );
}

#[test]
fn a_cgroup_the_mount_does_not_show_reads_the_mount_point_only() {
    let top = [Path::new("/sys/fs/cgroup")];
    assert_eq!(cgroup_dirs(&mount("/"), "/../../other"), top);
    assert_eq!(
        cgroup_dirs(&mount("/kubepods/pod1"), "/kubepods/pod10/c1"),
        top
    );
    assert_eq!(cgroup_dirs(&mount("/kubepods"), "/system.slice"), top);
}
