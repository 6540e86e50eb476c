//! The files a configuration is made of: the main file, then `config.d/*.toml` beside it in
//! lexical order, each parsed with positions and merged over the ones before.

use std::path::{Path, PathBuf};

use super::de::Finding;
use super::path::KeyPath;
use super::problem::{ConfigError, ProblemKind};
use super::tree::{Builder, Node, Origin};

/// The drop-in folder, beside the main file.
pub const DROP_IN_DIR: &str = "config.d";

/// The merged tree and what reading the files found.
pub struct Sources {
    /// The files, in merge order (0 is the main file).
    pub files: Vec<PathBuf>,
    /// Every file's values, merged.
    pub tree: Node,
    /// Files that cannot be read or are not TOML.
    pub findings: Vec<Finding>,
    /// Whether some file was not read whole: then what looks absent may only be unread.
    pub incomplete: bool,
}

impl Sources {
    /// The main file and its drop-ins. Only an unreadable main file is an error; a drop-in
    /// that cannot be read or parsed is a problem like any other.
    pub fn read(main: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(main).map_err(|source| ConfigError::Read {
            path: main.to_owned(),
            source,
        })?;
        let mut sources = Self::text(&text, main);
        let dir = base_dir(main).join(DROP_IN_DIR);
        for path in sources.drop_ins(&dir) {
            let file = sources.files.len();
            sources.files.push(path.clone());
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.add(file, &text),
                Err(error) => sources.unreadable(file, error.to_string()),
            }
        }
        Ok(sources)
    }

    /// One file's text alone, named `name` in problems.
    pub fn text(text: &str, name: &Path) -> Self {
        let mut sources = Self {
            files: vec![name.to_owned()],
            tree: Node::table(Origin { file: 0, line: 1 }),
            findings: Vec::new(),
            incomplete: false,
        };
        sources.add(0, text);
        sources
    }

    fn add(&mut self, file: usize, text: &str) {
        let builder = Builder::new(file, text);
        match toml_edit::ImDocument::parse(text) {
            Ok(document) => self.tree.merge(builder.document(&document)),
            Err(error) => {
                let at = error
                    .span()
                    .map_or(Origin { file, line: 1 }, |span| builder.origin(span.start));
                self.incomplete = true;
                self.findings.push(Finding {
                    path: KeyPath::root(),
                    at,
                    kind: ProblemKind::Syntax(error.message().trim().to_owned()),
                });
            }
        }
    }

    fn unreadable(&mut self, file: usize, why: String) {
        self.incomplete = true;
        self.findings.push(Finding {
            path: KeyPath::root(),
            at: Origin { file, line: 0 },
            kind: ProblemKind::Unreadable(why),
        });
    }

    /// `dir/*.toml` in lexical order of their names; hidden files (editors' temporary
    /// copies) are skipped. A folder that cannot be listed is a problem.
    fn drop_ins(&mut self, dir: &Path) -> Vec<PathBuf> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(error) => {
                let file = self.files.len();
                self.files.push(dir.to_owned());
                self.unreadable(file, error.to_string());
                return Vec::new();
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                name.is_some_and(|name| name.ends_with(".toml") && !name.starts_with('.'))
                    && path.is_file()
            })
            .collect();
        paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        paths
    }
}

/// The folder relative paths are taken from: the main file's.
pub fn base_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
