//! The `beid-agent` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    // One crypto stack in the whole process (ring), installed before any TLS is built
    // (`docs/design.md`, "Dependencies"). It can only fail if one was installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    beid_agent::cli::run()
}
