//! The `agenda` binary: a thin shell over [`agenda_api::cli`].

fn main() -> std::process::ExitCode {
    agenda_api::memory::return_large_blocks();
    agenda_api::cli::main()
}
