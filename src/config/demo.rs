//! `ringside demo`'s own flag. The demo listens on Linkerd's well-known
//! ports by default, so that the commands it prints are the ones a reader
//! of Linkerd's docs expects; a test (or a second demo) asks for ports the
//! kernel picks instead.

/// `ringside demo [--ephemeral-ports]`. The demo's proxies read its
/// `--config` file and `RINGSIDE_*` variables; its other flags are not
/// passed on to them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DemoArgs {
    /// Listen on ports the kernel picks instead of 4140, 4143, 4191 and
    /// 4192 (the addresses are printed), to run beside another demo or in
    /// a test.
    #[arg(long)]
    pub ephemeral_ports: bool,
}
