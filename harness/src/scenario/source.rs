//! Scenario text with positions: syntax checks, `--set` overrides, and mapping a field path to
//! the line where it is written (or to the override that set it).

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml_edit::{Document, DocumentMut, Item, Value};

use super::ScenarioError;

/// One path step: a key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The text of a scenario and where each field is written.
#[derive(Debug, Clone)]
pub struct Source {
    file: String,
    text: String,
    /// Every field's dotted path and the byte span of its key (or array element).
    spans: Vec<(String, Range<usize>)>,
    /// Fields set by `--set`, with the override as given.
    overridden: Vec<(String, String)>,
}

impl Source {
    /// Reads and parses a file (syntax errors name the line).
    pub fn read(path: &Path) -> Result<Self, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            line: None,
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(file, text)
    }

    /// Parses text that came from `file`.
    pub fn parse(file: String, text: String) -> Result<Self, ScenarioError> {
        let syntax = |line: Option<usize>, message: String| ScenarioError {
            line,
            file: file.clone(),
            field: String::new(),
            message,
        };
        // toml's own parser first: toml_edit 0.23 panics (`all items have spans`) on some
        // malformed text that toml rejects cleanly (found by the property tests, e.g.
        // "¡=\r==! \r.¡=").
        if let Err(e) = toml::from_str::<toml::Table>(&text) {
            return Err(syntax(
                e.span().map(|s| line_of(&text, s.start)),
                e.message().trim().to_owned(),
            ));
        }
        // And should toml_edit still panic on text toml accepted, that is an error, not a crash.
        let parsed = std::panic::catch_unwind(|| Document::parse(text.clone()))
            .map_err(|_| syntax(None, "the TOML could not be read (the parser failed on it)".into()))?;
        let doc =
            parsed.map_err(|e| syntax(e.span().map(|s| line_of(&text, s.start)), e.message().trim().to_owned()))?;
        let mut spans = Vec::new();
        walk_item(doc.as_item(), "", &mut spans);
        Ok(Self {
            file,
            text,
            spans,
            overridden: Vec::new(),
        })
    }

    /// The text (after overrides).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Applies `key=value` overrides in order. Keys are dotted paths with `[i]` for array
    /// elements (`phases[0].rate=300`); values are TOML (`300`, `"5s"`, `true`, `[1, 2]`), and
    /// anything that does not parse as TOML is taken as a string (`fanout=incremental`).
    pub fn with_overrides(self, overrides: &[String]) -> Result<Self, ScenarioError> {
        if overrides.is_empty() {
            return Ok(self);
        }
        let bad = |field: &str, message: String| ScenarioError {
            file: "--set".into(),
            line: None,
            field: field.to_owned(),
            message,
        };
        let mut doc: DocumentMut = self.text.parse().map_err(|e| bad("", format!("{e}")))?;
        let mut overridden = Vec::new();
        for o in overrides {
            let (key, raw) = o.split_once('=').ok_or_else(|| bad(o, "expected key=value".into()))?;
            let key = key.trim();
            let steps = parse_path(key).ok_or_else(|| bad(key, "not a field path (a.b[0].c)".into()))?;
            let value: Value = raw
                .trim()
                .parse::<Value>()
                .unwrap_or_else(|_| Value::from(raw.trim().to_owned()));
            set(doc.as_item_mut(), &steps, value).map_err(|m| bad(key, m))?;
            overridden.push((canonical(&steps), o.clone()));
        }
        let mut out = Self::parse(self.file, doc.to_string())?;
        out.overridden = overridden;
        Ok(out)
    }

    /// Deserializes; a type error names the field and its line.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ScenarioError> {
        toml::from_str(&self.text).map_err(|e| {
            let at = e.span().map(|s| s.start);
            let field = at.and_then(|o| self.path_at(o)).unwrap_or_default();
            let mut err = self.error_at(&field, e.message().trim().to_owned());
            if err.line.is_none() {
                err.line = at.map(|o| line_of(&self.text, o));
            }
            err
        })
    }

    /// An error about `field`, located at its line, or at the override that set it.
    pub fn error_at(&self, field: &str, message: String) -> ScenarioError {
        if let Some((_, o)) = self
            .overridden
            .iter()
            .rev()
            .find(|(p, _)| field == p || field.starts_with(&format!("{p}.")) || field.starts_with(&format!("{p}[")))
        {
            return ScenarioError {
                file: self.file.clone(),
                line: None,
                field: field.to_owned(),
                message: format!("{message} (from --set {o})"),
            };
        }
        ScenarioError {
            file: self.file.clone(),
            line: self.line_of_field(field),
            field: field.to_owned(),
            message,
        }
    }

    /// Line of a field, or of its nearest written parent (a missing field is reported where its
    /// table is).
    fn line_of_field(&self, field: &str) -> Option<usize> {
        let mut f = field;
        loop {
            if let Some((_, span)) = self.spans.iter().find(|(p, _)| p == f) {
                return Some(line_of(&self.text, span.start));
            }
            let cut = f.rfind(['.', '['])?;
            f = &f[..cut];
        }
    }

    /// The innermost field whose span contains `offset`.
    fn path_at(&self, offset: usize) -> Option<String> {
        self.spans
            .iter()
            .filter(|(_, s)| s.start <= offset && offset < s.end.max(s.start + 1))
            .max_by_key(|(p, _)| p.len())
            .or_else(|| {
                // Errors on a whole table point at its header line: take the field starting last
                // before the offset.
                self.spans
                    .iter()
                    .filter(|(_, s)| s.start <= offset)
                    .max_by_key(|(_, s)| s.start)
            })
            .map(|(p, _)| p.clone())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Records the span of every key and array element under `item`.
fn walk_item(item: &Item, path: &str, out: &mut Vec<(String, Range<usize>)>) {
    match item {
        Item::Table(t) => {
            for (k, v) in t.iter() {
                let p = join(path, k);
                let span = t
                    .key(k)
                    .and_then(|k| k.span())
                    .or_else(|| v.span())
                    .or_else(|| v.as_table().and_then(|t| t.span()));
                if let Some(s) = span {
                    out.push((p.clone(), s));
                }
                walk_item(v, &p, out);
            }
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                if let Some(s) = t.span() {
                    out.push((p.clone(), s));
                }
                walk_item(&Item::Table(t.clone()), &p, out);
            }
        }
        Item::Value(v) => walk_value(v, path, out),
        Item::None => {}
    }
}

fn walk_value(v: &Value, path: &str, out: &mut Vec<(String, Range<usize>)>) {
    match v {
        Value::InlineTable(t) => {
            for (k, v) in t.iter() {
                let p = join(path, k);
                if let Some(s) = t.key(k).and_then(|k| k.span()).or_else(|| v.span()) {
                    out.push((p.clone(), s));
                }
                walk_value(v, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                if let Some(s) = v.span() {
                    out.push((p.clone(), s));
                }
                walk_value(v, &p, out);
            }
        }
        _ => {}
    }
}

/// `a.b[2].c` → steps.
fn parse_path(s: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    for part in s.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return None;
        }
        steps.push(Step::Key(name.to_owned()));
        while !rest.is_empty() {
            let close = rest.find(']')?;
            steps.push(Step::Index(rest.get(1..close)?.parse().ok()?));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return None;
            }
        }
    }
    Some(steps)
}

fn canonical(steps: &[Step]) -> String {
    let mut s = String::new();
    for st in steps {
        match st {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Sets `steps` under `item` to `value`, creating tables on the way.
fn set(item: &mut Item, steps: &[Step], value: Value) -> Result<(), String> {
    let (first, rest) = steps.split_first().ok_or("empty path")?;
    match first {
        Step::Key(k) => {
            let table = item
                .as_table_like_mut()
                .ok_or_else(|| format!("`{k}`: its parent is not a table"))?;
            if rest.is_empty() {
                table.insert(k, Item::Value(value));
                return Ok(());
            }
            if table.get(k).is_none() {
                table.insert(k, Item::Table(toml_edit::Table::new()));
            }
            set(table.get_mut(k).ok_or("unreachable")?, rest, value)
        }
        Step::Index(i) => match item {
            Item::ArrayOfTables(a) => {
                let len = a.len();
                let t = a
                    .get_mut(*i)
                    .ok_or_else(|| format!("index {i} is past the end ({len} elements)"))?;
                let mut wrapped = Item::Table(std::mem::take(t));
                let r = if rest.is_empty() {
                    Err("cannot replace a whole table; set one of its fields".into())
                } else {
                    set(&mut wrapped, rest, value)
                };
                if let Item::Table(back) = wrapped {
                    *t = back;
                }
                r
            }
            Item::Value(Value::Array(a)) => {
                let len = a.len();
                let slot = a
                    .get_mut(*i)
                    .ok_or_else(|| format!("index {i} is past the end ({len} elements)"))?;
                if rest.is_empty() {
                    *slot = value;
                    return Ok(());
                }
                let mut wrapped = Item::Value(slot.clone());
                set(&mut wrapped, rest, value)?;
                if let Item::Value(v) = wrapped {
                    *slot = v;
                }
                Ok(())
            }
            _ => Err(format!("[{i}]: not an array")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(t: &str) -> Source {
        Source::parse("s.toml".into(), t.into()).unwrap()
    }

    #[test]
    fn fields_are_found_on_their_lines() {
        let s = src(
            "name = \"x\"\n\n[agents]\ncount = 5\n\n[[phases]]\nrate = 1\n\n[[phases]]\nrate = 2\nmix = { create = 1 }\n",
        );
        assert_eq!(s.line_of_field("agents.count"), Some(4));
        assert_eq!(s.line_of_field("phases[1].rate"), Some(10));
        assert_eq!(s.line_of_field("phases[1].mix.create"), Some(11));
        // A missing field is reported where its table is.
        assert_eq!(s.line_of_field("phases[1].users"), Some(9));
    }

    #[test]
    fn text_that_crashed_the_toml_parser_is_an_error_with_its_line() {
        // Found by the property tests: toml_edit panicked on it.
        let e = Source::parse("f.toml".into(), "¡=\r==! \r.¡=".into()).unwrap_err();
        assert_eq!(e.file, "f.toml");
        assert!(e.line.is_some() && !e.message.is_empty(), "{e:?}");
    }

    #[test]
    fn overrides_replace_add_and_index_and_are_named_in_errors() {
        let s = src("name = \"x\"\n[agents]\ncount = 5\n[[phases]]\nrate = 1\n")
            .with_overrides(&[
                "agents.count=7".into(),
                "phases[0].rate=300".into(),
                "target.fanout=incremental".into(),
            ])
            .unwrap();
        let v: toml::Table = s.deserialize().unwrap();
        assert_eq!(v["agents"]["count"].as_integer(), Some(7));
        assert_eq!(v["phases"][0]["rate"].as_integer(), Some(300));
        assert_eq!(v["target"]["fanout"].as_str(), Some("incremental"));
        let e = s.error_at("phases[0].rate", "too high".into());
        assert!(e.to_string().contains("--set phases[0].rate=300"), "{e}");
        let bad = src("[[phases]]\n")
            .with_overrides(&["phases[3].rate=1".into()])
            .unwrap_err();
        assert!(bad.to_string().contains("past the end"), "{bad}");
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let e = Source::parse("s.toml".into(), "name = \"x\"\n[agents\n".into()).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }
}
