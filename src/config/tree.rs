//! The configuration as the parser saw it: a tree of values, each remembering the file and
//! line it was written on, merged across the main file and its drop-ins. A problem is located
//! by looking its key path up in this tree, never by searching the text.

use super::path::{KeyPath, Segment};

/// Where a value was written: which file (0 is the main file, then the drop-ins in merge
/// order) and which line (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// Index into the files read.
    pub file: usize,
    /// 1-based line.
    pub line: usize,
}

/// A value and where it was written.
#[derive(Debug, Clone)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// For a table, its header (or the first line of an inline table); for anything else,
    /// the line the value starts on, which is also its key's line.
    pub at: Origin,
}

/// A TOML value.
#[derive(Debug, Clone)]
pub enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    /// A date or time (no key of ours takes one).
    Datetime,
    Array(Vec<Node>),
    /// Key/value pairs in the order they were written.
    Table(Vec<Entry>),
    /// A value set aside because it cannot be read (its problem is already reported). It
    /// keeps its place, so array indexes and "is required" stay true for what follows.
    Removed,
}

/// A table's key and its value.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key, unquoted.
    pub name: String,
    /// Its value.
    pub node: Node,
}

/// Arrays of tables whose entries merge across files by a key instead of being replaced:
/// a later file's entry with the same key replaces the earlier one, a new key is appended.
const KEYED_ARRAYS: [(&[&str], &str); 2] = [(&["api", "clients"], "name"), (&["use_cases"], "id")];

impl Node {
    /// An empty table at `at`.
    pub fn table(at: Origin) -> Self {
        Self {
            value: Value::Table(Vec::new()),
            at,
        }
    }

    /// The node at `path`, if there is one (removed values included).
    pub fn get(&self, path: &KeyPath) -> Option<&Node> {
        path.segments()
            .iter()
            .try_fold(self, |node, segment| node.child(segment))
    }

    fn child(&self, segment: &Segment) -> Option<&Node> {
        match (&self.value, segment) {
            (Value::Table(entries), Segment::Key(key)) => entries
                .iter()
                .find(|entry| entry.name == *key)
                .map(|entry| &entry.node),
            (Value::Array(items), Segment::Index(index)) => items.get(*index),
            _ => None,
        }
    }

    fn child_mut(&mut self, segment: &Segment) -> Option<&mut Node> {
        match (&mut self.value, segment) {
            (Value::Table(entries), Segment::Key(key)) => entries
                .iter_mut()
                .find(|entry| entry.name == *key)
                .map(|entry| &mut entry.node),
            (Value::Array(items), Segment::Index(index)) => items.get_mut(*index),
            _ => None,
        }
    }

    /// Where `path` was written: its own line, or for a key that is absent (a required key
    /// left out) the line of the nearest enclosing table that is there.
    pub fn origin_of(&self, path: &KeyPath) -> Origin {
        let mut node = self;
        for segment in path.segments() {
            match node.child(segment) {
                Some(child) => node = child,
                None => break,
            }
        }
        node.at
    }

    /// Sets the value at `path` aside; `false` when there is none or it already was.
    pub fn remove(&mut self, path: &KeyPath) -> bool {
        let node = path
            .segments()
            .iter()
            .try_fold(self, |node, segment| node.child_mut(segment));
        match node {
            Some(node) if !matches!(node.value, Value::Removed) => {
                node.value = Value::Removed;
                true
            }
            _ => false,
        }
    }

    /// The index, as written, of the `position`-th element that was read from the array at
    /// `path` (removed elements are skipped when reading, but keep their index).
    pub fn written_index(&self, path: &KeyPath, position: usize) -> usize {
        match self.get(path).map(|node| &node.value) {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter(|(_, item)| !matches!(item.value, Value::Removed))
                .nth(position)
                .map_or(position, |(index, _)| index),
            _ => position,
        }
    }

    /// Merges a later file's tree over this one: tables key by key, the keyed arrays of
    /// tables by their key, anything else replaced by the later value.
    pub fn merge(&mut self, over: Node) {
        self.merge_at(over, &KeyPath::root());
    }

    fn merge_at(&mut self, over: Node, path: &KeyPath) {
        match (&mut self.value, over.value, keyed_by(path)) {
            (Value::Table(entries), Value::Table(later), _) => {
                for entry in later {
                    let child = path.key(&entry.name);
                    match entries.iter_mut().find(|e| e.name == entry.name) {
                        Some(existing) => existing.node.merge_at(entry.node, &child),
                        None => entries.push(entry),
                    }
                }
            }
            (Value::Array(items), Value::Array(later), Some(key)) => merge_keyed(items, later, key),
            (_, value, _) => *self = Node { value, at: over.at },
        }
    }

    /// A table's string value for `key`.
    fn string_field(&self, key: &str) -> Option<&str> {
        match &self.child(&Segment::Key(key.to_owned()))?.value {
            Value::String(text) => Some(text),
            _ => None,
        }
    }
}

/// A later file's entries over the earlier ones: each replaces the earlier entry with the
/// same key (once: two entries of one file with the same key both stay, and are reported as
/// duplicates), the others are appended.
fn merge_keyed(items: &mut Vec<Node>, later: Vec<Node>, key: &str) {
    let earlier = items.len();
    let mut replaced = vec![false; earlier];
    for item in later {
        let same = item.string_field(key).and_then(|name| {
            (0..earlier).find(|&i| !replaced[i] && items[i].string_field(key) == Some(name))
        });
        match same {
            Some(index) => {
                replaced[index] = true;
                items[index] = item;
            }
            None => items.push(item),
        }
    }
}

fn keyed_by(path: &KeyPath) -> Option<&'static str> {
    KEYED_ARRAYS
        .iter()
        .find(|(keys, _)| *path == KeyPath::of(keys))
        .map(|(_, key)| *key)
}

/// Builds a tree from a parsed file, with the line of every value.
pub struct Builder<'a> {
    file: usize,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    text: &'a str,
}

impl<'a> Builder<'a> {
    /// For file number `file`, whose text is `text`.
    pub fn new(file: usize, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(offset, _)| offset + 1))
            .collect();
        Self {
            file,
            line_starts,
            text,
        }
    }

    /// Where a byte offset of the text is.
    pub fn origin(&self, offset: usize) -> Origin {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        Origin {
            file: self.file,
            line: line.max(1),
        }
    }

    fn origin_of_span(&self, span: Option<std::ops::Range<usize>>, fallback: Origin) -> Origin {
        span.map_or(fallback, |span| self.origin(span.start))
    }

    /// The whole document.
    pub fn document(&self, document: &toml_edit::ImDocument<&str>) -> Node {
        self.table(document.as_table(), self.origin(0))
    }

    fn table(&self, table: &toml_edit::Table, fallback: Origin) -> Node {
        let at = self.origin_of_span(table.span(), fallback);
        let entries = table
            .iter()
            .filter_map(|(name, item)| {
                let key_at = self.origin_of_span(table.key(name).and_then(|k| k.span()), at);
                self.item(item, key_at).map(|node| Entry {
                    name: name.to_owned(),
                    node,
                })
            })
            .collect();
        Node {
            value: Value::Table(entries),
            at,
        }
    }

    fn item(&self, item: &toml_edit::Item, fallback: Origin) -> Option<Node> {
        match item {
            toml_edit::Item::None => None,
            toml_edit::Item::Value(value) => Some(self.value(value, fallback)),
            toml_edit::Item::Table(table) => Some(self.table(table, fallback)),
            toml_edit::Item::ArrayOfTables(array) => {
                let at = self.origin_of_span(array.span(), fallback);
                let items = array.iter().map(|table| self.table(table, at)).collect();
                Some(Node {
                    value: Value::Array(items),
                    at,
                })
            }
        }
    }

    fn value(&self, value: &toml_edit::Value, fallback: Origin) -> Node {
        use toml_edit::Value as V;
        let at = self.origin_of_span(value.span(), fallback);
        let value = match value {
            V::String(s) => Value::String(s.value().clone()),
            V::Integer(i) => Value::Integer(*i.value()),
            V::Float(f) => Value::Float(*f.value()),
            V::Boolean(b) => Value::Boolean(*b.value()),
            V::Datetime(_) => Value::Datetime,
            V::Array(array) => Value::Array(array.iter().map(|v| self.value(v, at)).collect()),
            V::InlineTable(table) => Value::Table(
                table
                    .iter()
                    .map(|(name, value)| {
                        let key_at =
                            self.origin_of_span(table.key(name).and_then(|k| k.span()), at);
                        Entry {
                            name: name.to_owned(),
                            node: self.value(value, key_at),
                        }
                    })
                    .collect(),
            ),
        };
        Node { value, at }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The tree of `text` as file `file`.
    pub fn parse(file: usize, text: &str) -> Node {
        let document = toml_edit::ImDocument::parse(text).unwrap();
        Builder::new(file, text).document(&document)
    }

    fn line(tree: &Node, path: &str) -> (usize, usize) {
        let mut key_path = KeyPath::root();
        for part in path.split('.') {
            key_path = match part.parse::<usize>() {
                Ok(index) => key_path.index(index),
                Err(_) => key_path.key(part),
            };
        }
        let at = tree.origin_of(&key_path);
        (at.file, at.line)
    }

    #[test]
    fn every_value_knows_its_line() {
        let tree = parse(
            0,
            "# comment\n[device]\nid = \"a\"\n\n[[api.clients]]\nname = \"pos\"\norigins = [\n  \"https://a\",\n  \"https://b\",\n]\n[[api.clients]]\nname = \"kiosk\"\n",
        );
        assert_eq!(line(&tree, "device"), (0, 2));
        assert_eq!(line(&tree, "device.id"), (0, 3));
        assert_eq!(line(&tree, "api.clients.0"), (0, 5));
        assert_eq!(line(&tree, "api.clients.0.name"), (0, 6));
        assert_eq!(line(&tree, "api.clients.0.origins.1"), (0, 9));
        assert_eq!(line(&tree, "api.clients.1.name"), (0, 12));
        // Absent: the nearest table that is there.
        assert_eq!(line(&tree, "device.channel"), (0, 2));
    }

    #[test]
    fn later_files_win_key_by_key_and_keyed_arrays_merge_by_their_key() {
        let mut tree = parse(
            0,
            "[device]\nid = \"change-me\"\nchannel = \"counter\"\n[api]\nauto_advice = [\"a\"]\n\
             [[api.clients]]\nname = \"pos\"\nscopes = [\"advice\"]\n[[api.clients]]\nname = \"kiosk\"\n",
        );
        tree.merge(parse(
            1,
            "[device]\nid = \"balie-3\"\n[api]\nauto_advice = [\"b\"]\n\
             [[api.clients]]\nname = \"pos\"\nscopes = [\"identity\"]\n[[api.clients]]\nname = \"extra\"\n",
        ));
        let text = |path: &KeyPath| match &tree.get(path).unwrap().value {
            Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(text(&KeyPath::of(&["device", "id"])), "balie-3");
        assert_eq!(line(&tree, "device.id"), (1, 2));
        assert_eq!(text(&KeyPath::of(&["device", "channel"])), "counter");
        assert_eq!(line(&tree, "device.channel"), (0, 3));
        // Other arrays are replaced whole.
        let advice = KeyPath::of(&["api", "auto_advice"]);
        assert_eq!(text(&advice.index(0)), "b");
        assert!(tree.get(&advice.index(1)).is_none());
        // Clients: pos replaced in place, kiosk kept, extra appended.
        let clients = KeyPath::of(&["api", "clients"]);
        let names: Vec<String> = (0..3)
            .map(|i| text(&clients.index(i).key("name")))
            .collect();
        assert_eq!(names, ["pos", "kiosk", "extra"]);
        assert_eq!(text(&clients.index(0).key("scopes").index(0)), "identity");
        assert_eq!(line(&tree, "api.clients.0"), (1, 5));
    }

    #[test]
    fn a_removed_element_keeps_the_indexes_of_the_others() {
        let mut tree = parse(0, "list = [1, 2, 3]\n");
        let list = KeyPath::of(&["list"]);
        assert!(tree.remove(&list.index(0)));
        assert!(!tree.remove(&list.index(0)), "already removed");
        assert!(!tree.remove(&list.index(7)), "not there");
        assert_eq!(tree.written_index(&list, 0), 1);
        assert_eq!(tree.written_index(&list, 1), 2);
    }
}
