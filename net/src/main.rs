//! The `stead` binary: one member of an etcd-compatible cluster. Flags follow etcd's names.

#[cfg(not(madsim))]
use clap::Parser;
#[cfg(not(madsim))]
use stead_net::config::Flags;

/// mimalloc: the member allocates and frees a buffer or two per request; glibc's allocator
/// measured about a tenth of the CPU time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("snapshot") {
        return snapshot();
    }
    let flags = Flags::parse();
    let logger = stead_net::log::Logger::parse(&flags.logger);
    let logging =
        logger.and_then(|l| stead_net::log::init(l, &flags.log_outputs, &flags.log_level));
    if let Err(error) = logging {
        eprintln!("stead: {error}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stead: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(stead_net::server::run(flags)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stead: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `stead snapshot ...`: etcdctl's backup commands.
#[cfg(not(madsim))]
fn snapshot() -> std::process::ExitCode {
    let cli = stead_net::snapshot::SnapshotCli::parse_from(std::env::args().skip(1));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(cli.run()),
        Err(error) => Err(format!("cannot start the runtime: {error}")),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Under madsim the members run inside the simulation's tests, not as a binary.
#[cfg(madsim)]
fn main() {}
