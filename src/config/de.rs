//! Reading the typed model from the located tree with serde, so that every problem of every
//! key is found in one run and keeps its key path and line.
//!
//! serde stops at a struct's first error. [`read`] therefore reads again after each error,
//! with the offending value set aside (its problem recorded), until the model reads: a
//! value set aside falls back to its default, a required one takes its table with it (and
//! that table's own problems were found before, since serde reads every key of a table before
//! it asks for the missing ones). Unknown keys are skipped and reported as they are met, with
//! the closest known key as a suggestion.
//!
//! Errors are typed through serde's own constructors (`invalid_type`, `unknown_variant`,
//! `missing_field`, ...): nothing is recognised from the text of a message.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{
    self, value::StrDeserializer, DeserializeOwned, DeserializeSeed, Expected, IntoDeserializer,
    Unexpected, Visitor,
};

use super::path::KeyPath;
use super::problem::ProblemKind;
use super::tree::{Entry, Node, Origin, Value};

/// A problem found while reading, with its key path and where it was written.
#[derive(Debug, Clone)]
pub struct Finding {
    pub path: KeyPath,
    pub at: Origin,
    pub kind: ProblemKind,
}

/// What [`read`] found.
pub struct Read<T> {
    /// The model, unless the root itself could not be read.
    pub value: Option<T>,
    /// Every problem, in the order found.
    pub findings: Vec<Finding>,
}

/// Reads passes at most this many times (each pass sets one more value aside; a file has
/// far fewer values than this).
const MAX_PASSES: usize = 10_000;

/// Reads `T` from `tree`, setting aside each value that cannot be read, until it reads.
pub fn read<T: DeserializeOwned>(tree: &mut Node) -> Read<T> {
    let mut findings = Vec::new();
    let mut reported_unknown = BTreeSet::new();
    let mut removed = BTreeSet::new();
    for _ in 0..MAX_PASSES {
        let unknown = RefCell::new(Vec::new());
        let result = T::deserialize(NodeDeserializer {
            node: tree,
            path: KeyPath::root(),
            unknown: &unknown,
        });
        for finding in unknown.into_inner() {
            if reported_unknown.insert(finding.path.clone()) {
                findings.push(finding);
            }
        }
        let error = match result {
            Ok(value) => {
                return Read {
                    value: Some(value),
                    findings,
                }
            }
            Err(error) => error,
        };
        let path = error.path.clone().unwrap_or_default();
        let set_aside = match error.kind {
            // A required value set aside before: its problem is told, its table goes too.
            ErrorKind::Missing(_) if removed.contains(&path) => path.parent(),
            ErrorKind::Missing(_) => {
                findings.push(error.finding(tree));
                path.parent()
            }
            _ => {
                findings.push(error.finding(tree));
                Some(path)
            }
        };
        match set_aside {
            Some(path) if !path.is_root() && tree.remove(&path) => {
                removed.insert(path);
            }
            _ => break,
        }
    }
    Read {
        value: None,
        findings,
    }
}

/// A read error: what, and where once known (the innermost value that failed sets it).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    path: Option<KeyPath>,
}

#[derive(Debug)]
enum ErrorKind {
    Missing(&'static str),
    Type {
        found: String,
        expected: String,
    },
    Value {
        found: String,
        expected: String,
    },
    Name {
        found: String,
        expected: &'static [&'static str],
    },
    Length {
        found: usize,
        expected: String,
    },
    Other(String),
}

impl Error {
    fn new(kind: ErrorKind) -> Self {
        Self { kind, path: None }
    }

    /// Places an error not placed yet at `path` (a missing key: at its table's `path`).
    fn located(mut self, path: &KeyPath) -> Self {
        if self.path.is_none() {
            self.path = Some(match self.kind {
                ErrorKind::Missing(field) => path.key(field),
                _ => path.clone(),
            });
        }
        self
    }

    fn finding(&self, tree: &Node) -> Finding {
        let path = self.path.clone().unwrap_or_default();
        let kind = match &self.kind {
            ErrorKind::Missing(_) => ProblemKind::Missing { when: None },
            ErrorKind::Type { found, expected } => ProblemKind::WrongType {
                found: found.clone(),
                expected: expected.clone(),
            },
            ErrorKind::Name { found, expected } => ProblemKind::UnknownName {
                found: found.clone(),
                expected,
            },
            ErrorKind::Value { found, expected } => {
                ProblemKind::invalid(format!("{found} is not {expected}"))
            }
            ErrorKind::Length { found, expected } => {
                ProblemKind::invalid(format!("has {found} element(s), must have {expected}"))
            }
            ErrorKind::Other(why) => ProblemKind::invalid(why.clone()),
        };
        Finding {
            at: tree.origin_of(&path),
            path,
            kind,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::new(ErrorKind::Other(message.to_string()))
    }

    fn invalid_type(found: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::new(ErrorKind::Type {
            found: found.to_string(),
            expected: expected.to_string(),
        })
    }

    fn invalid_value(found: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::new(ErrorKind::Value {
            found: found.to_string(),
            expected: expected.to_string(),
        })
    }

    fn invalid_length(found: usize, expected: &dyn Expected) -> Self {
        Self::new(ErrorKind::Length {
            found,
            expected: expected.to_string(),
        })
    }

    fn unknown_variant(found: &str, expected: &'static [&'static str]) -> Self {
        Self::new(ErrorKind::Name {
            found: found.to_owned(),
            expected,
        })
    }

    fn missing_field(field: &'static str) -> Self {
        Self::new(ErrorKind::Missing(field))
    }
}

/// The closest known key to an unknown one, if close enough to be a misspelling.
pub fn suggestion<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (edit_distance(unknown, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= candidate.len().div_ceil(3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

struct NodeDeserializer<'a> {
    node: &'a Node,
    path: KeyPath,
    unknown: &'a RefCell<Vec<Finding>>,
}

impl<'a> NodeDeserializer<'a> {
    fn entries(
        &self,
        entries: &'a [Entry],
        fields: Option<&'static [&'static str]>,
    ) -> Entries<'a> {
        Entries {
            entries: entries.iter(),
            fields,
            current: None,
            path: self.path.clone(),
            unknown: self.unknown,
        }
    }

    fn place<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        result.map_err(|error| error.located(&self.path))
    }
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.node.value {
            Value::String(text) => visitor.visit_str(text),
            Value::Integer(number) => visitor.visit_i64(*number),
            Value::Float(number) => visitor.visit_f64(*number),
            Value::Boolean(flag) => visitor.visit_bool(*flag),
            Value::Datetime => Err(de::Error::invalid_type(
                Unexpected::Other("a date-time"),
                &visitor,
            )),
            Value::Array(items) => visitor.visit_seq(Items {
                items: items.iter().enumerate(),
                path: self.path.clone(),
                unknown: self.unknown,
            }),
            Value::Table(entries) => visitor.visit_map(self.entries(entries, None)),
            Value::Removed => Err(de::Error::custom("was set aside")),
        };
        self.place(result)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Table(entries) => {
                let result = visitor.visit_map(self.entries(entries, Some(fields)));
                self.place(result)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::String(name) => {
                let name: StrDeserializer<'_, Error> = name.as_str().into_deserializer();
                let result = visitor.visit_enum(name);
                self.place(result)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// A table's entries; for a struct, only its fields (the others are reported unknown).
struct Entries<'a> {
    entries: std::slice::Iter<'a, Entry>,
    fields: Option<&'static [&'static str]>,
    current: Option<&'a Entry>,
    path: KeyPath,
    unknown: &'a RefCell<Vec<Finding>>,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for entry in self.entries.by_ref() {
            if matches!(entry.node.value, Value::Removed) {
                continue;
            }
            if let Some(fields) = self.fields {
                if !fields.contains(&entry.name.as_str()) {
                    self.unknown.borrow_mut().push(Finding {
                        path: self.path.key(&entry.name),
                        at: entry.node.at,
                        kind: ProblemKind::UnknownKey {
                            suggestion: suggestion(&entry.name, fields),
                        },
                    });
                    continue;
                }
            }
            self.current = Some(entry);
            let key: StrDeserializer<'_, Error> = entry.name.as_str().into_deserializer();
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let Some(entry) = self.current.take() else {
            return Err(de::Error::custom("a value without its key"));
        };
        seed.deserialize(NodeDeserializer {
            node: &entry.node,
            path: self.path.key(&entry.name),
            unknown: self.unknown,
        })
    }
}

/// An array's elements, each with its index as written.
struct Items<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: KeyPath,
    unknown: &'a RefCell<Vec<Finding>>,
}

impl<'de> de::SeqAccess<'de> for Items<'_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        for (index, node) in self.items.by_ref() {
            if matches!(node.value, Value::Removed) {
                continue;
            }
            let element = NodeDeserializer {
                node,
                path: self.path.index(index),
                unknown: self.unknown,
            };
            return seed.deserialize(element).map(Some);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::super::tree::tests::parse;
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Root {
        #[serde(default)]
        section: Option<Section>,
        #[serde(default)]
        other: Option<Other>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        name: String,
        #[serde(default)]
        count: u32,
        #[serde(default)]
        kind: Option<Kind>,
        #[serde(default)]
        list: Vec<u8>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Other {
        #[serde(default)]
        flag: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Http,
        Simulated,
    }

    fn found(text: &str) -> (Option<Root>, Vec<String>) {
        let mut tree = parse(0, text);
        let read = read::<Root>(&mut tree);
        let findings = read
            .findings
            .iter()
            .map(|f| format!("{} {}: {}", f.at.line, f.path, f.kind))
            .collect();
        (read.value, findings)
    }

    #[test]
    fn every_bad_value_of_every_table_is_found_in_one_read() {
        let (root, findings) = found(
            "[section]\nname = \"a\"\ncount = \"many\"\nkind = \"ftp\"\nlist = [1, 300, 2]\ncolour = 1\n\
             [other]\nflag = 3\nflg = true\n",
        );
        assert_eq!(
            findings,
            [
                "3 section.count: must be u32, not string \"many\"",
                "4 section.kind: \"ftp\" is not a known value",
                "5 section.list[1]: integer `300` is not u8",
                "6 section.colour: unknown key",
                "8 other.flag: must be a boolean, not integer `3`",
                "9 other.flg: unknown key",
            ]
        );
        // What could be read was: the defaults stand in for what was set aside.
        let section = root.unwrap().section.unwrap();
        assert_eq!((section.name.as_str(), section.count), ("a", 0));
        assert!(section.kind.is_none());
        assert_eq!(section.list, [1, 2]);
    }

    #[test]
    fn a_missing_required_key_takes_its_table_but_not_the_others() {
        let (root, findings) = found("[section]\ncount = 2\nbad = 1\n[other]\nflag = true\n");
        assert_eq!(
            findings,
            ["3 section.bad: unknown key", "1 section.name: is required"]
        );
        let root = root.unwrap();
        assert!(root.section.is_none());
        assert!(root.other.unwrap().flag);
        // A required key with a bad value is told once, as the bad value.
        let (_, findings) = found("[section]\nname = 5\n");
        assert_eq!(
            findings,
            ["2 section.name: must be a string, not integer `5`"]
        );
    }

    #[test]
    fn misspellings_get_the_closest_key() {
        assert_eq!(
            suggestion("auto_advise", &["listen", "auto_advice"]),
            Some("auto_advice")
        );
        assert_eq!(suggestion("colour", &["listen", "auto_advice"]), None);
        let (_, findings) = found("[othr]\n");
        assert_eq!(findings, ["1 othr: unknown key"]);
    }
}
