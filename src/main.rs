//! The `ringside` binary: parse the command line, start logging, run.

use std::process::ExitCode;

use clap::Parser;
use ringside::config::{Args, Command, Config, LogFormat, EXIT_BAD_CONFIG};
use ringside::runtime::Placement;
use ringside::tls::identity::{Identity, IdentityError};

mod demo;

fn main() -> ExitCode {
    if ringside::config::linkerd::selected() {
        return linkerd_mode();
    }
    let args = Args::parse();
    let config = match Config::load(&args) {
        Ok(config) => config,
        Err(err) => return bad_configuration(err),
    };
    if args.check {
        return check(&config);
    }
    init_logging(config.log_format, None);
    // SIGHUP and POST /reload read the config again under the same flags.
    let reload_args = args.clone();

    let result = match args.command {
        Some(Command::Demo(demo_args)) => demo::run(args.config.as_deref(), &demo_args),
        Some(Command::Iptables(iptables)) => return iptables_command(&iptables, &config),
        Some(Command::Identity(identity)) => return identity_command(&identity.action),
        Some(Command::Stat(stat)) => return stat_command(&stat),
        Some(Command::Top(top)) => ringside::stat::top(&top),
        // The identity is checked as the runtime starts, which also
        // waits for a certificate not issued yet (`tls::reload`).
        None => run(config, reload_args),
    };
    exit_code(result)
}

/// Started by Linkerd's identity wrapper, with no argument
/// (`config::linkerd`): configured by `LINKERD2_PROXY_*` alone, said in one
/// line on stdout before the `listening ...` lines, and the variables it
/// does not read named in one log line.
fn linkerd_mode() -> ExitCode {
    let config = match Config::from_linkerd_env(std::env::vars_os()) {
        Ok(config) => config,
        Err(err) => return bad_configuration(err),
    };
    let linkerd = config.linkerd.clone().expect("Linkerd mode's config");
    init_logging(config.log_format, linkerd.log_filter.as_deref());
    say(format_args!("{}", linkerd.banner()));
    if !linkerd.ignored.is_empty() {
        let ignored = linkerd.ignored.join(", ");
        tracing::info!("ignoring LINKERD2_PROXY_* variables ringside does not read: {ignored}");
    }
    let result = start(config).and_then(|sidecar| Ok(sidecar.run()?));
    exit_code(result.map(|()| tracing::info!("drained, exiting")))
}

fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("ringside: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--check`: the effective configuration, then what its shard count and
/// pinning come to on this host, which may refuse `pin = "cores"`, and
/// whether the identity's files hold a usable identity.
fn check(config: &Config) -> ExitCode {
    let placement = match Placement::here(config) {
        Ok(placement) => placement,
        Err(err) => return bad_configuration(err),
    };
    let identity = match load_identity(config) {
        Ok(identity) => identity,
        Err(err) => return bad_configuration(err),
    };
    print!("{config}{placement}");
    check_names(config);
    if let Some(identity) = identity {
        let not_after = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(identity.not_after_unix_seconds());
        println!(
            "# identity {}: certificate valid until {}",
            identity.name(),
            humantime::format_rfc3339_seconds(not_after)
        );
    }
    ExitCode::SUCCESS
}

/// Each upstream name looked up once, as `# dns NAME: ADDRESSES` or
/// `# dns NAME: unresolved (WHY)`. A name that does not resolve is
/// reported, not fatal, as it is not at start.
fn check_names(config: &Config) {
    let names = config.upstream_names();
    if names.is_empty() {
        return;
    }
    match ringside::dns::resolve_once(&config.dns, &names) {
        Ok(checked) => checked.iter().for_each(|name| println!("# dns {name}")),
        Err(err) => println!("# dns: {err}"),
    }
}

/// The configured identity, read and checked, for `--check`; `None` when
/// there is none. A certificate not issued yet fails the check, though a
/// start would wait for it.
fn load_identity(config: &Config) -> Result<Option<Identity>, IdentityError> {
    config.identity.as_ref().map(Identity::load).transpose()
}

/// `ringside identity ca | issue`: one `wrote PATH` line per file.
fn identity_command(action: &ringside::config::IdentityAction) -> ExitCode {
    if let Err(err) = action.validate() {
        return bad_configuration(err);
    }
    match ringside::tls::mint::run(action) {
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ringside: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `ringside stat`: the table of one window on stdout, or one line on
/// stderr saying why there is none.
fn stat_command(args: &ringside::config::StatArgs) -> ExitCode {
    match ringside::stat::stat(args.admin, args.window) {
        Ok(table) => {
            print!("{}", table.render(args.output));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ringside: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `ringside iptables ...`: its own flags, and the admin port to leave
/// unredirected; its errors are one line each.
fn iptables_command(args: &ringside::config::IptablesArgs, config: &Config) -> ExitCode {
    let listener_port = |direction| {
        let mut listeners = config.transparent.iter();
        listeners
            .find(|l| l.direction == direction)
            .map(|l| l.listen.port())
    };
    let own = ringside::config::OwnPorts {
        admin: config.admin_addr.port(),
        inbound: listener_port(ringside::config::Direction::Inbound),
        outbound: listener_port(ringside::config::Direction::Outbound),
    };
    let rules = match args.resolve(own) {
        Ok(rules) => rules,
        Err(err) => return bad_configuration(err),
    };
    match ringside::iptables::run(args.action, &rules) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ringside: {err}");
            ExitCode::FAILURE
        }
    }
}

fn bad_configuration(err: impl std::fmt::Display) -> ExitCode {
    eprintln!("ringside: bad configuration: {err}");
    ExitCode::from(EXIT_BAD_CONFIG as u8)
}

fn run(config: Config, args: Args) -> anyhow::Result<()> {
    if config.routes.is_empty() && config.transparent.is_empty() {
        anyhow::bail!(
            "no routes: give --route LISTEN=UPSTREAM, a [[route]] in --config, --outbound-listen, or try `ringside demo`"
        );
    }
    start(config)?.reload_from(args).run()?;
    tracing::info!("drained, exiting");
    Ok(())
}

/// One line on stdout, for the scripts and supervisors that read the
/// bound ports. A stdout whose reader is gone (`ringside | head -1`, a
/// supervisor that closed it) costs the line, never the proxy: `println!`
/// would panic on EPIPE.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if let Err(err) = written {
        tracing::debug!(error = %err, "stdout is closed: a start-up line was not written");
    }
}

/// Raises limits, binds every listener and announces the bound addresses on
/// stdout (one `listening ...` line each, the admin line last), so that
/// scripts and tests can use port 0 and learn the real port without polling.
pub(crate) fn start(config: Config) -> anyhow::Result<ringside::runtime::Sidecar> {
    match ringside::runtime::raise_nofile_limit() {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open files limit"),
    }
    let routes = config.routes.clone();
    let transparent = config.transparent.clone();
    let sidecar = ringside::runtime::Sidecar::bind(config)?;
    for (route, addr) in routes.iter().zip(sidecar.route_addrs()) {
        let upstreams: Vec<String> = route.upstreams.iter().map(|u| u.to_string()).collect();
        say(format_args!(
            "listening route {addr} -> {}",
            upstreams.join(",")
        ));
    }
    for (listener, addr) in transparent.iter().zip(sidecar.transparent_addrs()) {
        say(format_args!(
            "listening {} {addr}",
            listener.direction.as_str()
        ));
    }
    for (index, addr) in sidecar.ipv6_twins() {
        let direction = transparent[index].direction.as_str();
        say(format_args!("listening {direction}-ipv6 {addr}"));
    }
    // Last, so a reader knows every route line has come.
    say(format_args!("listening admin {}", sidecar.admin_addr()));
    tracing::info!(shards = sidecar.shards(), admin = %sidecar.admin_addr(), "ringside started");
    Ok(sidecar)
}

/// `RUST_LOG`, else `linkerd_filter` (`LINKERD2_PROXY_LOG`, checked),
/// else `info`.
fn init_logging(format: LogFormat, linkerd_filter: Option<&str>) {
    let fallback = linkerd_filter.unwrap_or("info");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(fallback));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(|| LogWriter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// stderr for the logs, where a line that cannot be written is lost
/// quietly: tracing-subscriber reports a failed write with `eprintln!`,
/// which panics when stderr's reader is gone, and a proxy must not stop
/// because its log pipe did.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}
