//! The checks serde cannot make: values that read but cannot be used (ranges, URLs, files,
//! secrets, duplicates, references between sections, the template left as shipped). Each
//! problem is placed at the key it is about, in the file and on the line it came from.

mod api;
mod catalogue;
mod labels;
mod template;
mod trust;
mod upstream;

use std::path::Path;

use super::de::Finding;
use super::model::Sections;
use super::path::KeyPath;
use super::problem::ProblemKind;
use super::tree::{Node, Value};

/// Every semantic problem of the sections that could be read.
pub(super) fn check(sections: &Sections, tree: &Node) -> Vec<Finding> {
    let mut checker = Checker {
        tree,
        findings: Vec::new(),
    };
    if let Some(upstream) = &sections.upstream {
        upstream::check(&mut checker, upstream);
    }
    let catalogue = catalogue::check(&mut checker, sections.use_cases.as_deref());
    if let Some(device) = &sections.device {
        check_device_id(&mut checker, &device.id);
    }
    trust::check(&mut checker, &sections.trust);
    api::check(&mut checker, &sections.api, &catalogue);
    labels::check(&mut checker, sections);
    template::check(&mut checker, sections);
    checker.findings
}

/// Collects problems, each placed where its key was written.
pub(super) struct Checker<'a> {
    tree: &'a Node,
    findings: Vec<Finding>,
}

impl Checker<'_> {
    /// A problem of the value at `path`.
    pub fn report(&mut self, path: KeyPath, kind: ProblemKind) {
        self.findings.push(Finding {
            at: self.tree.origin_of(&path),
            path,
            kind,
        });
    }

    /// The path of the `position`-th element read from the array at `array`, by its index
    /// as written (elements that could not be read are not in the model, but keep theirs).
    pub fn element(&self, array: &KeyPath, position: usize) -> KeyPath {
        array.index(self.tree.written_index(array, position))
    }

    /// Whether the array at `path` was written empty, rather than emptied by setting aside
    /// elements that could not be read (their problems are told already).
    pub fn written_empty(&self, path: &KeyPath) -> bool {
        matches!(self.tree.get(path).map(|node| &node.value), Some(Value::Array(items)) if items.is_empty())
    }

    /// Whether the file exists and is a readable file; reports why not.
    pub fn readable_file(&mut self, key: &KeyPath, path: &Path) -> bool {
        let kind = match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => match std::fs::File::open(path) {
                Ok(_) => return true,
                Err(error) => ProblemKind::FileUnreadable(path.to_owned(), error.to_string()),
            },
            Ok(_) => ProblemKind::FileUnreadable(path.to_owned(), "not a file".into()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                ProblemKind::FileMissing(path.to_owned())
            }
            Err(error) => ProblemKind::FileUnreadable(path.to_owned(), error.to_string()),
        };
        self.report(key.clone(), kind);
        false
    }
}

/// `[device] id`: sent upstream as `deviceId`, and the CN of the device's certificate.
fn check_device_id(checker: &mut Checker<'_>, id: &str) {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        checker.report(
            KeyPath::of(&["device", "id"]),
            ProblemKind::invalid_with(
                "must be 1 to 64 of A-Z a-z 0-9 . _ -",
                "use the name on the device's client certificate, e.g. \"balie-3\"",
            ),
        );
    }
}

/// "a secret pasted where a path belongs": PEM text in a path value.
pub(super) fn looks_inline(path: &Path) -> bool {
    path.to_string_lossy().contains("-----BEGIN")
}
