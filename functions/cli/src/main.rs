//! `nixery`: serve the registry, build an image, group layers, pack a layer, count popularity.

mod admin;
mod admin_socket;
mod cli;
mod popularity;
mod serve;

use clap::Parser;

/// glibc's malloc spends an eighth of a warm manifest GET in malloc and free (small
/// allocations from many threads); mimalloc is faster there and gives memory back to the
/// system sooner after a build.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Lines are written to stderr by a thread of their own, a batch per write: the request
    // threads only format them. Not lossy: a full queue (128k lines) waits rather than drops.
    // Dropping the guard writes out what is queued.
    let stderr = std::io::BufWriter::new(std::io::stderr());
    let (writer, flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("nixery-log")
        .finish(stderr);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .init();
    let result = cli::run(cli);
    drop(flush_on_exit);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
