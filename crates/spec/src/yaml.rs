//! The YAML layer of the task-spec parser: text to a tree of located nodes, and the small helpers
//! (mapping access, unknown-key hints, value descriptions) every schema section uses.
//!
//! Parsing goes through `serde-saphyr` into [`Node`]s that remember their line and column, and
//! the schema is then checked by hand. That keeps every error in our own words, with the field
//! path, the location and what was expected — serde's derived errors know none of those well.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, NonFiniteFloatPolicy, Spanned};

use super::error::{Position, SpecError};

mod budget;

use budget::{task_file_budget, yaml_error};

/// One YAML node with the 1-based line and column where it starts (0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// The value.
    pub value: Value,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub column: u32,
    /// For numbers: the text as written (`3.10`, `1.0`), so env values keep their spelling.
    pub raw: Option<String>,
    /// Byte offset and length in the source, when known.
    span: Option<(u64, u64)>,
}

/// A YAML value, scalars already resolved to their types (YAML 1.2 core schema booleans).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; duplicates are kept here and rejected by [`Ctx::mapping`].
    Map(Vec<(Node, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned: Spanned<Value> = Spanned::deserialize(deserializer)?;
        let span = spanned.referenced.span();
        Ok(Node {
            value: spanned.value,
            line: u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX),
            column: u32::try_from(spanned.referenced.column()).unwrap_or(u32::MAX),
            raw: None,
            span: span.byte_offset().zip(span.byte_len()),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
                Value::deserialize(deserializer)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                Ok(Value::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
                // Beyond i128: keep the digits; every consumer rejects it as out of range anyway.
                Ok(i128::try_from(v)
                    .map(Value::Int)
                    .unwrap_or_else(|_| Value::Str(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
                Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(Value::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Node>()? {
                    let value = map.next_value::<Node>()?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
            fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Value, A::Error> {
                Err(de::Error::custom("unsupported YAML tag"))
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Stack for the parsing thread: deserializing recurses once per nesting level with large
/// frames (in debug builds a file nested 50 levels deep overflows a 2 MiB stack, the size of
/// test and tokio worker threads); this leaves room for the nesting limit many times over.
const PARSE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Parses every YAML document in `text`; empty documents are skipped. The parse runs on a thread
/// of its own with a stack sized for the nesting limit, whichever thread calls.
pub(crate) fn load_documents(text: &str, file: &str) -> Result<Vec<Node>, SpecError> {
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("skyplan-yaml".to_string())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(scope, || load_documents_here(text, file));
        match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(SpecError::Yaml {
                    at: Box::new(Position {
                        file: file.to_string(),
                        line: None,
                        column: None,
                    }),
                    message: "the YAML parser stopped unexpectedly on this file".to_string(),
                })
            }),
            // No thread to be had: parse here (the depth limit still applies).
            Err(_) => load_documents_here(text, file),
        }
    })
}

fn load_documents_here(text: &str, file: &str) -> Result<Vec<Node>, SpecError> {
    let options = serde_saphyr::options! {
        // `yes`/`no`/`on`/`off`/`y`/`n` stay strings (YAML 1.2): `y: 1` must not become `true: 1`.
        // Fields that want a boolean accept those spellings themselves.
        strict_booleans: true,
        // Keep env values such as `0755` and `1_000` exactly as written.
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
        // Duplicates are reported by `Ctx::mapping` in our own words.
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        budget: Some(task_file_budget()),
    };
    let documents: Vec<Node> = serde_saphyr::from_str_multiple_with_options(text, options)
        .map_err(|error| yaml_error(&error, file))?;
    let mut documents: Vec<Node> = documents
        .into_iter()
        .filter(|doc| doc.value != Value::Null)
        .collect();
    for doc in &mut documents {
        fill_raw(doc, text);
    }
    Ok(documents)
}

impl Node {
    /// A null node without a source (for tests).
    #[cfg(test)]
    pub fn null() -> Node {
        Node {
            value: Value::Null,
            line: 0,
            column: 0,
            raw: None,
            span: None,
        }
    }
}

/// Records how numbers were written, where the source slice reads back as the same number (an
/// alias such as `*a` does not, and keeps the resolved value).
fn fill_raw(node: &mut Node, text: &str) {
    match &mut node.value {
        Value::Int(_) | Value::Float(_) => {
            let slice = node.span.and_then(|(offset, len)| {
                let start = usize::try_from(offset).ok()?;
                text.get(start..start.checked_add(usize::try_from(len).ok()?)?)
            });
            if let Some(slice) = slice.map(str::trim) {
                let same = match node.value {
                    Value::Int(i) => slice.parse::<i128>().is_ok_and(|parsed| parsed == i),
                    Value::Float(f) => slice.parse::<f64>().is_ok_and(|parsed| parsed == f),
                    _ => false,
                };
                if same {
                    node.raw = Some(slice.to_string());
                }
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|item| fill_raw(item, text)),
        Value::Map(entries) => entries.iter_mut().for_each(|(key, value)| {
            fill_raw(key, text);
            fill_raw(value, text);
        }),
        Value::Null | Value::Bool(_) | Value::Str(_) => {}
    }
}

/// Joins a field path and a key: `resources` + `cpus` = `resources.cpus`. A key longer than
/// [`SHOWN_VALUE_CHARS`] is cut (with `…`): paths are shown in messages.
pub(crate) fn child(path: &str, key: &str) -> String {
    let key = if key.chars().count() > SHOWN_VALUE_CHARS {
        let mut cut: String = key.chars().take(SHOWN_VALUE_CHARS).collect();
        cut.push('…');
        std::borrow::Cow::Owned(cut)
    } else {
        std::borrow::Cow::Borrowed(key)
    };
    if path.is_empty() {
        key.into_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Joins a field path and a list index: `resources.any_of` + 1 = `resources.any_of[1]`.
pub(crate) fn index(path: &str, idx: usize) -> String {
    format!("{path}[{idx}]")
}

/// The most characters of a user's value that a message shows.
pub const SHOWN_VALUE_CHARS: usize = 64;

/// `text` quoted for a message (`"L5"`), cut to its first [`SHOWN_VALUE_CHARS`] characters and
/// `…` when longer, so that a pasted megabyte does not come back in the error.
///
/// ```
/// use skyplan_spec::quote_short;
/// assert_eq!(quote_short("L5"), "\"L5\"");
/// let long = quote_short(&"A".repeat(1_000_000));
/// assert!(long.ends_with("\"…") && long.chars().count() == 64 + 3);
/// ```
pub fn quote_short(text: &str) -> String {
    if text.chars().count() > SHOWN_VALUE_CHARS {
        let cut: String = text.chars().take(SHOWN_VALUE_CHARS).collect();
        format!("{cut:?}…")
    } else {
        format!("{text:?}")
    }
}

/// A short description of a node for "found ..." in messages; strings are quoted and cut short.
pub(crate) fn describe(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(_) | Value::Float(_) => scalar_text(node).unwrap_or_default(),
        Value::Str(s) => quote_short(s),
        Value::Seq(_) => "a list".to_string(),
        Value::Map(_) => "a mapping".to_string(),
    }
}

/// The kind of a node without its content, for values that must not be echoed (secrets).
pub(crate) fn describe_kind(node: &Node) -> &'static str {
    match &node.value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a mapping",
    }
}

/// The text of a scalar as a user would write it (`4`, `true`, `L4`); `None` for collections
/// and null.
pub(crate) fn scalar_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(node.raw.clone().unwrap_or_else(|| i.to_string())),
        Value::Float(f) => Some(node.raw.clone().unwrap_or_else(|| f.to_string())),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Seq(_) | Value::Map(_) => None,
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter_map(|candidate| {
            let other = candidate.to_ascii_lowercase();
            let similarity = strsim::jaro_winkler(&lower, &other);
            let edits = strsim::damerau_levenshtein(&lower, &other);
            let close = similarity >= 0.8 || edits <= (lower.len().min(other.len()) / 3).max(1);
            // Fewest edits first, then the most similar; ties keep the earlier candidate.
            close.then_some((edits, -similarity, candidate))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, _, candidate)| candidate)
}

/// One entry of a mapping: the key as text, and the key and value nodes.
pub(crate) struct Entry<'n> {
    pub key: String,
    pub key_node: &'n Node,
    pub value: &'n Node,
}

/// The file being parsed; builds located errors.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
}

impl Ctx<'_> {
    /// The position of a node in this file, boxed for an error.
    pub fn at(&self, node: &Node) -> Box<Position> {
        Box::new(self.pos(node))
    }

    /// The position of a node in this file.
    pub fn pos(&self, node: &Node) -> Position {
        Position {
            file: self.file.to_string(),
            line: (node.line > 0).then_some(node.line),
            column: (node.column > 0).then_some(node.column),
        }
    }

    /// "expected X, found <the node>".
    pub fn invalid(&self, node: &Node, path: &str, expected: impl Into<String>) -> SpecError {
        self.invalid_found(node, path, expected, describe(node))
    }

    /// "expected X, found Y" with a custom Y.
    pub fn invalid_found(
        &self,
        node: &Node,
        path: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> SpecError {
        SpecError::InvalidValue {
            at: self.at(node),
            path: path.to_string(),
            expected: expected.into(),
            found: found.into(),
            hint: None,
        }
    }

    /// The entries of a mapping node (null counts as empty), rejecting non-scalar and duplicate
    /// keys.
    pub fn mapping<'n>(
        &self,
        node: &'n Node,
        path: &str,
        expected: &str,
    ) -> Result<Vec<Entry<'n>>, SpecError> {
        let pairs = match &node.value {
            Value::Map(pairs) => pairs,
            Value::Null => return Ok(Vec::new()),
            _ => return Err(self.invalid(node, path, expected)),
        };
        let mut entries: Vec<Entry<'n>> = Vec::with_capacity(pairs.len());
        for (key_node, value) in pairs {
            let Some(key) = scalar_text(key_node) else {
                return Err(self.invalid_found(
                    key_node,
                    path,
                    "keys that are plain names",
                    format!("{} as a key", describe(key_node)),
                ));
            };
            if let Some(first) = entries.iter().find(|e| e.key == key) {
                return Err(SpecError::DuplicateKey {
                    at: self.at(key_node),
                    path: child(path, &key),
                    first_line: first.key_node.line,
                });
            }
            entries.push(Entry { key, key_node, value });
        }
        Ok(entries)
    }

    /// An unknown-key error, with a "did you mean" hint from `known` or, failing that, from
    /// `elsewhere` (keys that belong to another section, given with their full path).
    pub fn unknown_key(
        &self,
        entry: &Entry<'_>,
        path: &str,
        known: &[&str],
        elsewhere: &[(&str, &str)],
    ) -> SpecError {
        let hint = closest(&entry.key, known.iter().copied())
            .map(|k| k.to_string())
            .or_else(|| {
                elsewhere
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(&entry.key))
                    .map(|(_, full)| full.to_string())
            })
            .or_else(|| {
                let keys: Vec<&str> = elsewhere.iter().map(|(k, _)| *k).collect();
                let key = closest(&entry.key, keys)?;
                elsewhere
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, full)| full.to_string())
            });
        SpecError::UnknownKey {
            at: self.at(entry.key_node),
            path: child(path, &entry.key),
            hint,
            expected: known.join(", "),
        }
    }

    /// A string scalar.
    pub fn string(&self, node: &Node, path: &str, expected: &str) -> Result<String, SpecError> {
        match &node.value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(self.invalid(node, path, expected)),
        }
    }

    /// A string scalar, or `None` for null.
    pub fn opt_string(&self, node: &Node, path: &str, expected: &str) -> Result<Option<String>, SpecError> {
        match &node.value {
            Value::Null => Ok(None),
            _ => self.string(node, path, expected).map(Some),
        }
    }

    /// A non-empty string scalar.
    pub fn non_empty_string(&self, node: &Node, path: &str, expected: &str) -> Result<String, SpecError> {
        let text = self.string(node, path, expected)?;
        if text.trim().is_empty() {
            return Err(self.invalid(node, path, expected));
        }
        Ok(text)
    }

    /// A boolean: YAML `true`/`false`, or the YAML 1.1 spellings SkyPilot (PyYAML) accepts.
    pub fn boolean(&self, node: &Node, path: &str) -> Result<bool, SpecError> {
        let parsed = match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) => parse_bool(s),
            _ => None,
        };
        parsed.ok_or_else(|| self.invalid(node, path, "true or false"))
    }

    /// Converts any node to JSON (for free-form sections such as `config`).
    pub fn json_of(&self, node: &Node, path: &str) -> Result<serde_json::Value, SpecError> {
        Ok(match &node.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => {
                if let Ok(small) = i64::try_from(*i) {
                    small.into()
                } else if let Ok(big) = u64::try_from(*i) {
                    big.into()
                } else {
                    serde_json::Value::String(i.to_string())
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => serde_json::Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.json_of(item, &index(path, i)))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(_) => {
                let mut object = serde_json::Map::new();
                for entry in self.mapping(node, path, "a mapping")? {
                    let value = self.json_of(entry.value, &child(path, &entry.key))?;
                    object.insert(entry.key, value);
                }
                serde_json::Value::Object(object)
            }
        })
    }
}

/// `true`/`false` and the YAML 1.1 spellings (`yes`, `no`, `on`, `off`), any case.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" => Some(true),
        "false" | "no" | "off" | "n" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
