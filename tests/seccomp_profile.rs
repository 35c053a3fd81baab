//! `tuning/kubernetes/seccomp/ringside.json` as a kernel applies it:
//! compiled with libseccomp as a container runtime compiles a profile
//! (runc: architectures added, each rule's names resolved, names this
//! libseccomp does not know skipped, arguments compared), loaded in the
//! child before exec, and ringside started under it carries bytes; the
//! same profile without its io_uring rule (the runtime's default) stops
//! ringside at start with its one-line io_uring error. Needs libseccomp's
//! shared library (`libseccomp.so.2`, Debian's `libseccomp2`), which is
//! opened at run time; says SKIP without it.

mod support;

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::io::{Read, Seek, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{Origin, Ringside, BIN};

const PROFILE: &str = "tuning/kubernetes/seccomp/ringside.json";

type Init = unsafe extern "C" fn(u32) -> *mut c_void;
type ArchAdd = unsafe extern "C" fn(*mut c_void, u32) -> c_int;
type Resolve = unsafe extern "C" fn(*const c_char) -> c_int;
type RuleAdd = unsafe extern "C" fn(*mut c_void, u32, c_int, c_uint, *const ArgCmp) -> c_int;
type Export = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type Release = unsafe extern "C" fn(*mut c_void);

/// libseccomp's `struct scmp_arg_cmp`.
#[repr(C)]
struct ArgCmp {
    arg: c_uint,
    op: c_uint,
    datum_a: u64,
    datum_b: u64,
}

/// The libseccomp calls a runtime makes to compile a profile.
struct Libseccomp {
    init: Init,
    arch_add: ArchAdd,
    resolve: Resolve,
    rule_add: RuleAdd,
    export: Export,
    release: Release,
}

impl Libseccomp {
    fn open() -> Option<Libseccomp> {
        let name = CString::new("libseccomp.so.2").unwrap();
        // SAFETY: dlopen reads the name; the handle is never closed, so
        // the symbols stay valid for the process's life.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
        if handle.is_null() {
            return None;
        }
        let symbol = |name: &str| {
            let name = CString::new(name).unwrap();
            // SAFETY: dlsym reads the name from a live handle.
            let found = unsafe { libc::dlsym(handle, name.as_ptr()) };
            assert!(!found.is_null(), "libseccomp has {name:?}");
            found
        };
        // SAFETY: each symbol is the libseccomp function of that
        // signature (seccomp.h, libseccomp 2.x).
        unsafe {
            Some(Libseccomp {
                init: std::mem::transmute::<*mut c_void, Init>(symbol("seccomp_init")),
                arch_add: std::mem::transmute::<*mut c_void, ArchAdd>(symbol("seccomp_arch_add")),
                resolve: std::mem::transmute::<*mut c_void, Resolve>(symbol(
                    "seccomp_syscall_resolve_name",
                )),
                rule_add: std::mem::transmute::<*mut c_void, RuleAdd>(symbol(
                    "seccomp_rule_add_array",
                )),
                export: std::mem::transmute::<*mut c_void, Export>(symbol("seccomp_export_bpf")),
                release: std::mem::transmute::<*mut c_void, Release>(symbol("seccomp_release")),
            })
        }
    }

    /// `profile` (OCI runtime-spec form) compiled to a BPF program.
    fn compile(&self, profile: &Value) -> Vec<libc::sock_filter> {
        let default = action(&profile["defaultAction"], &profile["defaultErrnoRet"]);
        // SAFETY: every call passes the context `init` returned, released
        // at the end, and pointers to values alive for the call.
        unsafe {
            let ctx = (self.init)(default);
            assert!(!ctx.is_null());
            for arch in profile["architectures"].as_array().unwrap() {
                let added = (self.arch_add)(ctx, arch_token(arch.as_str().unwrap()));
                assert!(added == 0 || added == -libc::EEXIST, "{arch}: {added}");
            }
            for rule in profile["syscalls"].as_array().unwrap() {
                let action = action(&rule["action"], &rule["errnoRet"]);
                let args: Vec<ArgCmp> = rule["args"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|arg| ArgCmp {
                        arg: arg["index"].as_u64().unwrap() as c_uint,
                        op: compare(arg["op"].as_str().unwrap()),
                        datum_a: arg["value"].as_u64().unwrap(),
                        datum_b: arg["valueTwo"].as_u64().unwrap_or(0),
                    })
                    .collect();
                for name in rule["names"].as_array().unwrap() {
                    let name = CString::new(name.as_str().unwrap()).unwrap();
                    let nr = (self.resolve)(name.as_ptr());
                    // __NR_SCMP_ERROR: unknown to this libseccomp; runc
                    // skips it too.
                    if nr == -1 {
                        continue;
                    }
                    let count = args.len() as c_uint;
                    let added = (self.rule_add)(ctx, action, nr, count, args.as_ptr());
                    assert_eq!(added, 0, "{name:?}");
                }
            }
            let mut file = tempfile();
            assert_eq!((self.export)(ctx, file.as_raw_fd()), 0);
            (self.release)(ctx);
            let mut bytes = Vec::new();
            file.rewind().unwrap();
            file.read_to_end(&mut bytes).unwrap();
            bytes
                .chunks_exact(8)
                .map(|c| libc::sock_filter {
                    code: u16::from_ne_bytes([c[0], c[1]]),
                    jt: c[2],
                    jf: c[3],
                    k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect()
        }
    }
}

/// An anonymous file for the exported program.
fn tempfile() -> std::fs::File {
    let name = CString::new("ringside-seccomp").unwrap();
    // SAFETY: memfd_create reads the name; the fd it returns is owned by
    // the File from here on.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is open and owned by nothing else.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

/// libseccomp's action for an OCI action name.
fn action(name: &Value, errno: &Value) -> u32 {
    match name.as_str().unwrap() {
        "SCMP_ACT_ALLOW" => 0x7fff_0000,
        "SCMP_ACT_ERRNO" => 0x0005_0000 | (errno.as_u64().unwrap_or(1) as u32 & 0xffff),
        other => panic!("an action the profile does not use: {other}"),
    }
}

/// libseccomp's arch token (the kernel's AUDIT_ARCH_*).
fn arch_token(name: &str) -> u32 {
    match name {
        "SCMP_ARCH_X86_64" => 0xc000_003e,
        "SCMP_ARCH_X86" => 0x4000_0003,
        "SCMP_ARCH_X32" => 0x4000_003e,
        "SCMP_ARCH_AARCH64" => 0xc000_00b7,
        "SCMP_ARCH_ARM" => 0x4000_0028,
        other => panic!("an architecture the profile does not name: {other}"),
    }
}

/// libseccomp's `enum scmp_compare`.
fn compare(op: &str) -> c_uint {
    let ops = ["", "NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ"];
    let name = op.strip_prefix("SCMP_CMP_").unwrap();
    ops.iter().position(|o| *o == name).unwrap() as c_uint
}

/// ringside's command line, with `program` loaded as its seccomp filter
/// between fork and exec.
fn under(program: Vec<libc::sock_filter>, upstream: std::net::SocketAddr) -> Command {
    let mut command = Command::new(BIN);
    let route = format!("127.0.0.1:0={upstream}");
    command.args([
        "--route",
        &route,
        "--admin-addr",
        "127.0.0.1:0",
        "--shards",
        "1",
    ]);
    // SAFETY: the hook runs in the forked child and makes two prctl
    // calls on `program`, owned by the hook and alive during them (the
    // kernel copies it); nothing is allocated.
    unsafe {
        command.pre_exec(move || support::confined::load_seccomp(&program));
    }
    command
}

#[test]
fn ringside_runs_under_the_profile_and_not_under_the_default_alone() {
    let Some(libseccomp) = Libseccomp::open() else {
        eprintln!("SKIP ringside_runs_under_the_profile: no libseccomp.so.2 here");
        return;
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PROFILE);
    let profile: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let origin = Origin::echo();

    let program = libseccomp.compile(&profile);
    assert!(
        program.len() > 300,
        "a whole profile: {} instructions",
        program.len()
    );
    let (ringside, _) = Ringside::without_arguments(under(program, origin.addr));
    ringside.wait_ready();
    let mut stream = TcpStream::connect(ringside.route()).unwrap();
    stream.write_all(b"\x00\x01under seccomp\x00").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"\x00\x01under seccomp\x00");

    // The default alone: the profile's last rule is io_uring's.
    let mut default = profile.clone();
    let rules = default["syscalls"].as_array_mut().unwrap();
    let io_uring = rules.pop().unwrap();
    assert_eq!(io_uring["names"][0], "io_uring_setup");
    let output = under(libseccomp.compile(&default), origin.addr)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("ringside: io_uring is refused (io_uring_setup: Operation not permitted"),
        "{stderr}"
    );
}
