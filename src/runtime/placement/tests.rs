//! The placement rules on sample hosts: no test reads /sys or /proc.

use super::*;

/// A 64-CPU host allowed `cpuset` ("" for unknown) under `cpu_max` (None:
/// no file).
fn host(cpuset: &str, cpu_max: Option<&str>) -> Host {
    Host {
        allowed: CpuList::parse(cpuset),
        online: Some(64),
        fallback_cpus: 4,
        quota: cpu_max.map_or(Quota::Absent, cgroup::parse_cpu_max),
    }
}

fn decide(shards: Option<usize>, pin: Pin, host: &Host) -> Placement {
    Placement::decide(shards, pin, host).unwrap()
}

/// The shard count and the CPUs pinned among ("" for unpinned).
fn outcome(placement: &Placement) -> (usize, String) {
    let pinned = placement.pinned_among.as_ref().map(CpuList::to_string);
    (placement.shards, pinned.unwrap_or_default())
}

#[test]
fn a_quota_rounds_up_and_leaves_the_shards_unpinned() {
    let placement = decide(None, Pin::Auto, &host("0-3", Some("150000 100000")));
    assert_eq!(outcome(&placement), (2, String::new()));
    assert_eq!(
        placement.from,
        "cpuset 0-3 (4 CPUs), cgroup cpu.max 150000/100000 (1.5 CPUs) -> 2"
    );
    assert_eq!(
        placement.why,
        "auto: shared cores, CPU quota 150000/100000 (1.5 CPUs)"
    );
    let small = decide(None, Pin::Auto, &host("0-3", Some("10000 100000")));
    assert_eq!(outcome(&small), (1, String::new()));
}

#[test]
fn dedicated_cores_are_pinned_one_shard_each() {
    // No quota: no file, "max", or one that covers every allowed CPU.
    for cpu_max in [
        None,
        Some("max 100000"),
        Some("400000 100000"),
        Some("800000 100000"),
    ] {
        let placement = decide(None, Pin::Auto, &host("0-3", cpu_max));
        assert_eq!(outcome(&placement), (4, "0-3".into()), "{cpu_max:?}");
        assert!(placement.why.starts_with("auto: dedicated cores"));
    }
    // Only the allowed CPUs, wherever they are.
    let placement = decide(None, Pin::Auto, &host("2,5", None));
    assert_eq!(outcome(&placement), (2, "2,5".into()));
    assert_eq!(
        placement.from,
        "cpuset 2,5 (2 CPUs), no cgroup v2 cpu.max -> 2"
    );
}

#[test]
fn a_process_allowed_the_whole_machine_shares_it_and_stays_unpinned() {
    for online in [Some(4), None] {
        let whole = Host {
            online,
            ..host("0-3", None)
        };
        let placement = decide(None, Pin::Auto, &whole);
        assert_eq!(outcome(&placement), (4, String::new()), "online {online:?}");
        assert_eq!(
            placement.why,
            "auto: shared cores, every CPU of the machine allowed"
        );
    }
}

#[test]
fn fewer_or_more_shards_than_cpus_share_cores_and_stay_unpinned() {
    let dedicated = host("0-3", None);
    for (shards, why) in [
        (1, "auto: shared cores, 1 shard on 4 CPUs allowed"),
        (2, "auto: shared cores, 2 shards on 4 CPUs allowed"),
        (8, "auto: shared cores, 8 shards on 4 CPUs allowed"),
    ] {
        let placement = decide(Some(shards), Pin::Auto, &dedicated);
        assert_eq!(outcome(&placement), (shards, String::new()));
        assert_eq!(placement.why, why);
        assert_eq!(
            placement.from,
            "runtime.shards; cpuset 0-3 (4 CPUs), no cgroup v2 cpu.max"
        );
    }
}

#[test]
fn the_explicit_shard_count_wins_over_the_quota() {
    let placement = decide(Some(3), Pin::Off, &host("0-3", Some("150000 100000")));
    assert_eq!(outcome(&placement), (3, String::new()));
}

#[test]
fn cores_pins_among_the_allowed_cpus_even_under_a_quota() {
    let placement = decide(None, Pin::Cores, &host("0-3", Some("150000 100000")));
    assert_eq!(outcome(&placement), (2, "0-3".into()));
    let placement = decide(Some(2), Pin::Cores, &host("4-7", None));
    assert_eq!(outcome(&placement), (2, "4-7".into()));
    assert_eq!(placement.why, "runtime.pin cores");
}

#[test]
fn cores_with_more_shards_than_cpus_is_an_error_naming_the_key() {
    let err = Placement::decide(Some(8), Pin::Cores, &host("0-3", None)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "runtime.pin: \"cores\" needs a CPU per shard: 8 shards, 4 CPUs allowed (0-3)"
    );
    let err = Placement::decide(None, Pin::Cores, &host("", None)).unwrap_err();
    assert!(err.to_string().starts_with("runtime.pin: "), "{err}");
}

#[test]
fn off_never_pins() {
    let placement = decide(None, Pin::Off, &host("0-3", None));
    assert_eq!(outcome(&placement), (4, String::new()));
    assert_eq!(placement.why, "runtime.pin off");
}

#[test]
fn unknown_cpus_fall_back_to_the_cpu_count_unpinned() {
    let placement = decide(None, Pin::Auto, &host("", Some("150000 100000")));
    assert_eq!(outcome(&placement), (2, String::new()));
    let placement = decide(None, Pin::Auto, &host("", None));
    assert_eq!(outcome(&placement), (4, String::new()));
    assert_eq!(
        placement.from,
        "cpuset unknown (4 CPUs), no cgroup v2 cpu.max -> 4"
    );
    assert_eq!(placement.why, "auto: allowed CPUs unknown");
}

#[test]
fn a_malformed_quota_is_logged_and_taken_as_none() {
    let placement = decide(None, Pin::Auto, &host("0-1", Some("junk")));
    assert_eq!(outcome(&placement), (2, "0-1".into()));
    assert_eq!(
        placement.from,
        "cpuset 0-1 (2 CPUs), cgroup cpu.max \"junk\" unreadable, no quota -> 2"
    );
}

#[test]
fn unpinned_shards_are_an_unbound_pool() {
    let placement = decide(None, Pin::Off, &host("0-3", None));
    assert_eq!(placement.pool().unwrap(), PoolPlacement::Unbound(4));
}

#[test]
fn pinned_shards_spread_over_allowed_cpus_only() {
    // The one test that reads this machine: its own allowed CPUs.
    let host = Host::probe();
    let allowed = host.allowed.clone().expect("this process has an affinity");
    let placement = decide(Some(1), Pin::Cores, &host);
    match placement.pool().unwrap() {
        PoolPlacement::MaxSpread(1, Some(cpus)) => {
            assert!(!cpus.is_empty());
            assert!(cpus.iter().all(|location| allowed.contains(location.cpu)));
        }
        other => panic!("{other:?}"),
    }
}
