//! `beid-agent generate` (hidden): the files the Debian package ships beside the binary,
//! made by the binary itself from the clap definitions its `--help` prints, so they
//! describe exactly the commands it has: one man page per command, each with its exit
//! statuses, and the bash, zsh and fish completions. `scripts/package.sh` runs it before
//! `cargo deb`, and so does the packaging test.
//!
//! Why not a build script: the command line is defined in this library, across the
//! commands' modules; a build script would have to compile all of it a second time, on
//! every build, for files that only a package needs.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

use super::exit::{Exit, Failure};

#[derive(Debug, clap::Subcommand)]
pub enum GenerateCommand {
    /// Write the man pages into DIR: beid-agent.1 and one per command
    /// (beid-agent-read.1, beid-agent-audit-verify.1, ...).
    Man {
        dir: PathBuf,
        /// Compress them as Debian wants (beid-agent.1.gz, gzip -9n: no name, no time).
        #[arg(long)]
        gzip: bool,
    },
    /// Write the completions into DIR, named as each shell's completion directory
    /// expects: beid-agent (bash), _beid-agent (zsh), beid-agent.fish (fish).
    Completions { dir: PathBuf },
    /// Print the README's table of exit statuses (Markdown).
    ExitCodes,
}

pub fn run(command: &GenerateCommand) -> Result<(), Failure> {
    let written = match command {
        GenerateCommand::Man { dir, gzip } => man_pages(dir, *gzip)?,
        GenerateCommand::Completions { dir } => completions(dir)?,
        GenerateCommand::ExitCodes => {
            out!("{}", Exit::markdown_table().trim_end());
            return Ok(());
        }
    };
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// One page per visible command, each ending in an EXIT STATUS section.
fn man_pages(dir: &Path, gzip: bool) -> Result<Vec<PathBuf>, Failure> {
    let mut root = super::Cli::command().disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    collect_pages(&root, &mut Vec::new(), &mut pages);
    let mut written = Vec::new();
    for (command, path) in pages {
        let man = Man::new(command).source(format!("beid-agent {}", env!("CARGO_PKG_VERSION")));
        let mut page = Vec::new();
        man.render(&mut page)
            .map_err(|e| Failure::Other(format!("cannot render a man page: {e}")))?;
        let page = with_exit_status(&String::from_utf8_lossy(&page), &path);
        written.push(match gzip {
            true => write_file(dir, &format!("{}.gz", man.get_filename()), &gzipped(&page)?)?,
            false => write_file(dir, &man.get_filename(), page.as_bytes())?,
        });
    }
    Ok(written)
}

/// Every visible command with its path below `beid-agent` (`["audit", "verify"]`).
fn collect_pages(
    command: &clap::Command,
    path: &mut Vec<String>,
    pages: &mut Vec<(clap::Command, Vec<String>)>,
) {
    pages.push((command.clone(), path.clone()));
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        path.push(sub.get_name().to_owned());
        collect_pages(sub, path, pages);
        path.pop();
    }
}

/// The page with its EXIT STATUS section, before VERSION (or at the end).
fn with_exit_status(page: &str, path: &[String]) -> String {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let Some(exits) = super::exits_of(&path) else {
        return page.to_owned();
    };
    let mut section = Roff::new();
    section.control("SH", ["EXIT STATUS"]);
    for exit in &exits {
        section.control("TP", []);
        let code = match exit.code() {
            "" => String::new(),
            code => format!(" ({code})"),
        };
        section.text([bold(exit.status().to_string()), roman(code)]);
        section.text([roman(exit.meaning())]);
    }
    let section = section.to_roff();
    match page.find("\n.SH VERSION") {
        Some(at) => format!("{}\n{}{}", &page[..at], section, &page[at + 1..]),
        None => format!("{page}{section}"),
    }
}

/// gzip at its best compression, with no file name and time in the header, so the same
/// page always gives the same bytes (`gzip -9n`).
fn gzipped(text: &str) -> Result<Vec<u8>, Failure> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(text.as_bytes())
        .and_then(|()| encoder.finish())
        .map_err(|e| Failure::Other(format!("cannot compress a man page: {e}")))
}

fn completions(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut written = Vec::new();
    for (shell, name) in [
        (Shell::Bash, "beid-agent"),
        (Shell::Zsh, "_beid-agent"),
        (Shell::Fish, "beid-agent.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut super::Cli::command(), "beid-agent", &mut script);
        written.push(write_file(dir, name, &script)?);
    }
    Ok(written)
}

/// Writes `dir/name` whole or not at all (a temporary file renamed over it), so that two
/// package builds writing the same files at once never leave half of one.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, Failure> {
    let failed = |e: std::io::Error| {
        Failure::Other(format!("cannot write {}: {e}", dir.join(name).display()))
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let target = dir.join(name);
    let temporary = dir.join(format!(".{name}.{}", std::process::id()));
    let mut file = std::fs::File::create(&temporary).map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    drop(file);
    std::fs::rename(&temporary, &target).map_err(failed)?;
    Ok(target)
}
