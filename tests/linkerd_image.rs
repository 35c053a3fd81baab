//! What can be checked here of the image a Linkerd pod runs ringside from
//! (`tuning/kubernetes/Dockerfile`) and of the seccomp profile it needs
//! (`tuning/kubernetes/seccomp/ringside.json`), with no registry and no
//! container runtime: the Dockerfile's build is the README's, in plain
//! Debian; its final stage lays ringside where Linkerd's identity wrapper
//! execs its proxy; ringside started exactly as that wrapper starts it
//! (`execv` with an empty argv and Linkerd's environment) runs in Linkerd
//! mode; and the profile is the runtime's default (moby's
//! `seccomp/default.json`, vendored) plus io_uring's three calls and
//! nothing else (`seccomp_profile.rs` loads it). Building the image and
//! running it in a container runtime are not tested here (README,
//! "Running under Linkerd").

mod support;

use std::collections::BTreeSet;
use std::ffi::CString;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::control_plane::{ControlPlane, IdentityService, LinkerdPod};
use support::Ringside;

const DOCKERFILE: &str = "tuning/kubernetes/Dockerfile";
const PROFILE: &str = "tuning/kubernetes/seccomp/ringside.json";
/// moby/profiles `seccomp/default.json` at tag `seccomp/v0.2.3` (commit
/// 836ae4d), as it is: Docker's `RuntimeDefault` since Docker 25 took
/// io_uring out of it (moby#46762).
const MOBY_DEFAULT: &str = "tuning/kubernetes/seccomp/moby-default.json";

/// Where Linkerd's identity wrapper execs the proxy, with no argument:
/// linkerd2's `proxy-identity/run_proxy_unix.go`
/// (`syscall.Exec("/usr/lib/linkerd/linkerd2-proxy", []string{}, os.Environ())`),
/// the path linkerd2's `Dockerfile.proxy` copies linkerd2-proxy to.
const WRAPPER_EXECS: &str = "/usr/lib/linkerd/linkerd2-proxy";

/// The calls glommio needs that containerd 2.0 and Docker 25 refuse.
const IO_URING: [&str; 3] = ["io_uring_setup", "io_uring_enter", "io_uring_register"];

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The Dockerfile's stages: each `FROM` line with the instructions under it.
fn stages() -> Vec<(String, Vec<String>)> {
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    let dockerfile = read(DOCKERFILE);
    let lines = dockerfile.lines().map(str::trim);
    for line in lines.filter(|l| !l.is_empty() && !l.starts_with('#')) {
        match line.strip_prefix("FROM ") {
            Some(from) => stages.push((from.to_string(), Vec::new())),
            None => {
                if let Some((_, instructions)) = stages.last_mut() {
                    instructions.push(line.to_string());
                }
            }
        }
    }
    stages
}

/// A global `ARG NAME=default` of the Dockerfile.
fn arg_default(name: &str) -> String {
    let prefix = format!("ARG {name}=");
    let dockerfile = read(DOCKERFILE);
    let line = dockerfile.lines().find(|l| l.starts_with(&prefix));
    line.unwrap_or_else(|| panic!("no {prefix}"))[prefix.len()..].to_string()
}

#[test]
fn the_image_builds_ringside_in_plain_debian_as_the_readme_says() {
    let stages = stages();
    assert_eq!(stages.len(), 2, "a build stage and the final one");
    let (from, instructions) = &stages[0];
    // The official Rust image on Debian (bullseye or bookworm), at least
    // the Rust the crate needs.
    let image = from.strip_suffix(" AS build").expect("a stage named build");
    let tag = image
        .strip_prefix("rust:")
        .expect("the official Rust image");
    let (version, debian) = tag.split_once('-').unwrap();
    assert!(["bullseye", "bookworm"].contains(&debian), "{tag}");
    let cargo_toml = read("Cargo.toml");
    let needed = cargo_toml
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let minor = |v: &str| v.split('.').nth(1).unwrap().parse::<u32>().unwrap();
    assert!(minor(version) >= minor(needed), "{version} < {needed}");
    let runs: Vec<&str> = instructions
        .iter()
        .filter_map(|i| i.strip_prefix("RUN "))
        .collect();
    assert_eq!(runs.len(), 1, "{instructions:?}");
    let readme = read("README.md");
    let documented = format!("\n{}\n", runs[0]);
    assert!(
        readme.contains(&documented),
        "README shows the build command `{}`",
        runs[0]
    );
}

#[test]
fn the_image_lays_ringside_where_linkerds_wrapper_execs_its_proxy() {
    let stages = stages();
    let (from, instructions) = &stages[1];
    assert_eq!(from, "cr.l5d.io/linkerd/proxy:${LINKERD_VERSION}");
    assert_eq!(
        instructions[..],
        [format!(
            "COPY --from=build /src/target/release/ringside {WRAPPER_EXECS}"
        )],
        "only the proxy is replaced: the wrapper, proxy-init and the entrypoint stay Linkerd's"
    );
    // The tag the README's annotations name is the base's.
    let version = arg_default("LINKERD_VERSION");
    let readme = read("README.md");
    let annotation = format!("config.linkerd.io/proxy-version: {version}");
    assert!(readme.contains(&annotation), "README names {annotation}");
}

#[test]
fn started_as_linkerds_wrapper_starts_it_ringside_runs_in_linkerd_mode() {
    let plane = ControlPlane::start(IdentityService::new());
    let pod = LinkerdPod::new(
        "web.default.serviceaccount.identity.linkerd.cluster.local",
        &plane,
    );
    let mut command = pod.command();
    let exec = Execv::new(&command);
    // SAFETY: the hook runs in the forked child, where `execve` only
    // reads what `exec` holds (made before the fork: nothing is allocated
    // there) and replaces the child, its stdio and group already set up by
    // `Command`, with ringside.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || Err(exec.run()));
    }
    let (ringside, printed) = Ringside::without_arguments(command);
    assert!(
        printed
            .iter()
            .any(|line| line.starts_with("linkerd mode: ")),
        "{printed:?}"
    );
    ringside.wait_ready();
}

/// Go's `syscall.Exec(path, []string{}, env)` as the wrapper calls it:
/// no argv[0] at all (Linux 5.18 and later pass one empty string
/// instead), and the environment `Command` was given (which `Command`
/// itself installs only after `pre_exec` hooks have run).
struct Execv {
    path: CString,
    argv: [*const libc::c_char; 1],
    /// Each entry points into `_vars`; null-terminated.
    envp: Vec<*const libc::c_char>,
    _vars: Vec<CString>,
}

// SAFETY: the pointers point into the struct's own CStrings, which are
// never changed; it is moved into the child's hook, never shared.
unsafe impl Send for Execv {}
unsafe impl Sync for Execv {}

impl Execv {
    fn new(command: &Command) -> Execv {
        use std::os::unix::ffi::OsStrExt;
        let vars: Vec<CString> = command
            .get_envs()
            .filter_map(|(name, value)| {
                let mut pair = name.as_bytes().to_vec();
                pair.push(b'=');
                pair.extend_from_slice(value?.as_bytes());
                Some(CString::new(pair).unwrap())
            })
            .collect();
        let mut envp: Vec<*const libc::c_char> = vars.iter().map(|v| v.as_ptr()).collect();
        envp.push(std::ptr::null());
        Execv {
            path: CString::new(command.get_program().as_bytes()).unwrap(),
            argv: [std::ptr::null()],
            envp,
            _vars: vars,
        }
    }

    /// Replaces this process; returns only when that failed.
    fn run(&self) -> std::io::Error {
        // SAFETY: every pointer is into `self`, alive; both arrays are
        // null-terminated.
        unsafe { libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        std::io::Error::last_os_error()
    }
}

/// The architectures the profile is for: x86-64 and arm64 nodes, with
/// the 32-bit ABIs their kernels run (moby's `archMap`).
const ARCHES: [&str; 5] = ["amd64", "x32", "x86", "arm64", "arm"];
const SCMP_ARCHES: [&str; 2] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"];
/// The capability bounding set of Linkerd's proxy container: the
/// runtime's default (containerd's `oci.defaultUnixCaps`, Docker's), as
/// the injector adds none unless `proxy.capabilities` is set.
const CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
/// Every kernel glommio runs on is at least 5.8, past every `minKernel`.
const KERNEL: (u32, u32) = (5, 8);

fn strings(value: &Value) -> Vec<&str> {
    let list = value.as_array().map(Vec::as_slice).unwrap_or_default();
    list.iter().filter_map(Value::as_str).collect()
}

/// Whether a moby rule applies to the proxy container: its conditions
/// resolved as moby's `seccomp_linux.go` resolves them for a container,
/// over `ARCHES` and `CAPS`.
fn applies(rule: &Value) -> bool {
    let (includes, excludes) = (&rule["includes"], &rule["excludes"]);
    let some = |list: Vec<&str>, set: &[&str]| list.iter().any(|x| set.contains(x));
    let arches = strings(&includes["arches"]);
    let caps = strings(&includes["caps"]);
    let min_kernel = includes["minKernel"].as_str().map(|k| {
        let (major, minor) = k.split_once('.').unwrap();
        (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap())
    });
    (arches.is_empty() || some(arches, &ARCHES))
        && caps.iter().all(|cap| CAPS.contains(cap))
        && min_kernel.is_none_or(|needed| needed <= KERNEL)
        && !some(strings(&excludes["arches"]), &ARCHES)
        && !some(strings(&excludes["caps"]), &CAPS)
}

/// moby's default resolved for the proxy container into the OCI
/// runtime-spec form a `Localhost` profile is read in (containerd's
/// `contrib/seccomp/seccomp.go` `WithProfile` unmarshals it into
/// `specs.LinuxSeccomp`, which has no `includes`/`excludes`: a Docker-form
/// profile would lose its conditions there and allow what they guard).
fn resolved_default(moby: &Value) -> Value {
    let mut architectures = Vec::new();
    for arch in moby["archMap"].as_array().unwrap() {
        let main = arch["architecture"].as_str().unwrap();
        if SCMP_ARCHES.contains(&main) {
            architectures.push(main);
            architectures.extend(strings(&arch["subArchitectures"]));
        }
    }
    let syscalls: Vec<Value> = moby["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rule| applies(rule))
        .map(|rule| {
            let mut oci = json!({"names": rule["names"], "action": rule["action"]});
            for key in ["errnoRet", "args"] {
                if !rule[key].is_null() {
                    oci[key] = rule[key].clone();
                }
            }
            oci
        })
        .collect();
    json!({
        "defaultAction": moby["defaultAction"],
        "defaultErrnoRet": moby["defaultErrnoRet"],
        "architectures": architectures,
        "syscalls": syscalls,
    })
}

/// The names a profile allows without arguments to check.
fn allowed(profile: &Value) -> BTreeSet<String> {
    let rules = profile["syscalls"].as_array().unwrap();
    let allow = rules.iter().filter(|r| r["action"] == "SCMP_ACT_ALLOW");
    allow
        .flat_map(|r| strings(&r["names"]))
        .map(str::to_string)
        .collect()
}

/// `RINGSIDE_WRITE_SECCOMP=1` writes the profile instead of checking it
/// (after moby's default is vendored again).
#[test]
fn the_seccomp_profile_is_the_runtime_default_plus_io_uring() {
    let moby: Value = serde_json::from_str(&read(MOBY_DEFAULT)).unwrap();
    let default = resolved_default(&moby);
    assert!(
        IO_URING
            .iter()
            .all(|call| !allowed(&default).contains(*call)),
        "the vendored default refuses io_uring"
    );
    let mut expected = default.clone();
    let io_uring = json!({"names": IO_URING, "action": "SCMP_ACT_ALLOW"});
    expected["syscalls"].as_array_mut().unwrap().push(io_uring);
    if std::env::var_os("RINGSIDE_WRITE_SECCOMP").is_some() {
        let text = serde_json::to_string_pretty(&expected).unwrap() + "\n";
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PROFILE);
        std::fs::write(path, text).unwrap();
    }
    let profile: Value = serde_json::from_str(&read(PROFILE)).unwrap();
    assert_eq!(profile, expected, "{PROFILE}: regenerate it");
    let added: Vec<String> = allowed(&profile)
        .difference(&allowed(&default))
        .cloned()
        .collect();
    assert_eq!(
        added,
        ["io_uring_enter", "io_uring_register", "io_uring_setup"]
    );
    // What moby guards by capability stays refused (the chroot of the
    // default bounding set aside).
    for guarded in ["mount", "bpf", "unshare", "setns", "reboot", "init_module"] {
        assert!(!allowed(&profile).contains(guarded), "{guarded}");
    }
}

#[test]
fn the_readme_points_to_the_profile() {
    let readme = read("README.md");
    assert!(readme.contains(PROFILE), "README names {PROFILE}");
    let helm = "localhostProfile: ringside.json";
    assert!(
        readme.contains(helm),
        "README's Helm values name the profile"
    );
}
