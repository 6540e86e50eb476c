//! Key paths: how a problem names the value it is about (`api.clients[1].token_file`).

use std::fmt;

/// One step down the tree: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index, counting from 0 in the merged configuration.
    Index(usize),
}

/// Where a value sits in the configuration; the root is the empty path.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The whole configuration.
    pub fn root() -> Self {
        Self::default()
    }

    /// This path's child table key.
    pub fn key(&self, name: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(name.to_owned()));
        Self(segments)
    }

    /// This path's array element.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// A path of table keys, e.g. `KeyPath::of(&["api", "clients"])`.
    pub fn of(keys: &[&str]) -> Self {
        keys.iter().fold(Self::root(), |path, key| path.key(key))
    }

    /// The enclosing table or array; `None` for the root.
    pub fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(Self(rest.to_vec()))
    }

    /// Whether this is the whole configuration.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The steps, from the root down.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

/// A bare TOML key needs no quotes.
fn is_bare(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare(key) {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_toml_keys() {
        let path = KeyPath::of(&["api", "clients"]).index(1).key("token_file");
        assert_eq!(path.to_string(), "api.clients[1].token_file");
        assert_eq!(
            KeyPath::of(&["reason_codes", "a b"]).to_string(),
            "reason_codes.\"a b\""
        );
        assert_eq!(path.parent().unwrap().to_string(), "api.clients[1]");
        assert!(KeyPath::root().parent().is_none());
    }
}
