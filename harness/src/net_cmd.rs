//! `alcor-scale net up|down`: addresses for agents on real (non-loopback) addresses.

use clap::{Args, Subcommand};
use harness::net::{self, Block};

/// `net` and its subcommands.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  alcor-scale net up --cidr 198.18.0.0/20     # 4,094 addresses on the dummy interface
  alcor-scale agents --count 4000 --base-ip 198.18.0.1
  alcor-scale net down                               # removes exactly what `up` added

Needs CAP_NET_ADMIN. Addresses are per network namespace; `up` records what it added (in
$XDG_RUNTIME_DIR or the temporary folder) and `down` removes that and nothing else.")]
pub struct NetArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Add every host address of a block to an interface (a dummy one, created if absent) and
    /// bring it up.
    Up {
        /// The block, e.g. 198.18.0.0/20 (the range reserved for network benchmarks).
        #[arg(long)]
        cidr: Block,
        /// The interface: an existing one (its other addresses are left alone), or the dummy
        /// interface to create.
        #[arg(long, default_value = net::DEFAULT_DEV)]
        dev: String,
    },
    /// Remove what `up` added to the interface (and the interface, if `up` created it).
    Down {
        /// The interface.
        #[arg(long, default_value = net::DEFAULT_DEV)]
        dev: String,
    },
}

/// Runs `net up` or `net down`.
pub async fn run(args: NetArgs) -> anyhow::Result<()> {
    match args.action {
        Action::Up { cidr, dev } => {
            let added = net::up(cidr, &dev).await?;
            println!(
                "{dev}: {} address(es) of {}/{} added{}",
                added.addresses.len(),
                cidr.base,
                cidr.prefix,
                if added.created { " (interface created)" } else { "" }
            );
        }
        Action::Down { dev } => {
            let removed = net::down(&dev).await?;
            println!(
                "{dev}: {}",
                if removed.created {
                    "interface deleted, with its addresses".to_owned()
                } else {
                    format!("{} address(es) removed", removed.addresses.len())
                }
            );
        }
    }
    Ok(())
}
