//! [`IdList`]: the ids a message carried, for the harness's correlation.
//!
//! Written here rather than taken from a crate: what is needed is a `Vec<String>` without an
//! allocation per id. A message that lists a 1M-port subnet hands over a million ids; as
//! separate strings that was a million allocations in the agent and a million frees in the
//! harness's thread (mimalloc's slow cross-thread path). Packed, it is two buffers.

use serde::ser::{Serialize, SerializeSeq, Serializer};

/// A list of strings stored back to back in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdList {
    buf: String,
    /// End offset of each id in `buf`.
    ends: Vec<usize>,
}

impl IdList {
    /// An empty list with room for `n` ids of about `len` bytes each.
    pub fn with_capacity(n: usize, len: usize) -> Self {
        Self {
            buf: String::with_capacity(n * len),
            ends: Vec::with_capacity(n),
        }
    }

    /// Appends a copy of `id`.
    pub fn push(&mut self, id: &str) {
        self.buf.push_str(id);
        self.ends.push(self.buf.len());
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th id.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.buf[start..end])
    }

    /// The ids in order.
    pub fn iter(&self) -> Ids<'_> {
        Ids {
            list: self,
            start: 0,
            next: 0,
        }
    }
}

/// Iterator over an [`IdList`].
#[derive(Debug, Clone)]
pub struct Ids<'a> {
    list: &'a IdList,
    start: usize,
    next: usize,
}

impl<'a> Iterator for Ids<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let end = *self.list.ends.get(self.next)?;
        let id = &self.list.buf[self.start..end];
        self.start = end;
        self.next += 1;
        Some(id)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.list.ends.len() - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Ids<'_> {}

impl<'a> IntoIterator for &'a IdList {
    type Item = &'a str;
    type IntoIter = Ids<'a>;
    fn into_iter(self) -> Ids<'a> {
        self.iter()
    }
}

impl<S: AsRef<str>> FromIterator<S> for IdList {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut list = Self::default();
        iter.into_iter().for_each(|s| list.push(s.as_ref()));
        list
    }
}

/// As a JSON array of strings, like the `Vec<String>` it stands for.
impl Serialize for IdList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for id in self.iter() {
            seq.serialize_element(id)?;
        }
        seq.end()
    }
}

impl<'de> serde::Deserialize<'de> for IdList {
    /// Reads a JSON array of strings into one buffer (an exported event's id list).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = IdList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of ids")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<IdList, A::Error> {
                let mut list = IdList::with_capacity(seq.size_hint().unwrap_or(0), 36);
                while let Some(id) = seq.next_element::<String>()? {
                    list.push(&id);
                }
                Ok(list)
            }
        }
        d.deserialize_seq(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_back_in_order_including_empty_ones() {
        let list: IdList = ["a", "", "port-3"].into_iter().collect();
        assert_eq!(list.len(), 3);
        assert_eq!(list.iter().collect::<Vec<_>>(), ["a", "", "port-3"]);
        assert_eq!(list.get(1), Some(""));
        assert_eq!(list.get(2), Some("port-3"));
        assert_eq!(list.get(3), None);
        assert_eq!(serde_json::to_string(&list).unwrap(), r#"["a","","port-3"]"#);
        assert!(IdList::default().is_empty());
    }
}
