//! The `beid-agent` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    beid_agent::cli::run()
}
