use anyhow::Context;
use clap::Parser;
use loadtest::cli::{Cli, Command};
use loadtest::origins::Origin;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Origin { kind, listen, size } => {
            let origin =
                Origin::start(kind, listen, size).with_context(|| format!("binding {listen}"))?;
            println!("{kind:?} origin listening on {}", origin.addr());
            loop {
                std::thread::park();
            }
        }
        Command::Compare(args) => loadtest::compare::run(&args),
        Command::Soak(args) => {
            if !loadtest::soak::run(&args)? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
