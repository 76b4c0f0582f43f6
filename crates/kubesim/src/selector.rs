//! Label and field selectors, as list and watch requests send them (`labelSelector=app=web,tier in
//! (a,b)`, `fieldSelector=spec.nodeName=n1,status.phase!=Failed`).
//!
//! Parse errors become `400 BadRequest` answers. Field selectors accept only the fields the real API
//! server indexes for each kind, so a selector that works here works against a real cluster.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum LabelOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    GreaterThan(i64),
    LessThan(i64),
}

/// A parsed label selector; every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector {
    requirements: Vec<(String, LabelOp)>,
}

/// A parsed field selector; every `field=value` / `field!=value` term must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

fn valid_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && name.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric);
    let prefix_ok = !key.contains('/') || crate::config::is_dns_subdomain(prefix);
    name_ok && prefix_ok
}

/// Whether `value` is a valid label value (empty allowed).
pub(crate) fn valid_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && value.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && value.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric))
}

/// Whether `key` is a valid label or annotation key.
pub(crate) fn valid_label_key(key: &str) -> bool {
    valid_key(key)
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(format!("unbalanced parentheses in {text:?}"));
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in {text:?}"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for part in split_top_level(text)? {
            let part = part.trim();
            let bad = |why: &str| format!("unable to parse requirement: {part:?}: {why}");
            let check_value = |v: &str| {
                if valid_label_value(v) {
                    Ok(v.to_owned())
                } else {
                    Err(bad("invalid label value"))
                }
            };
            let (key, op) = if let Some(key) = part.strip_prefix('!') {
                (key.trim(), LabelOp::DoesNotExist)
            } else if let Some(open) = part.find('(') {
                let close = part
                    .rfind(')')
                    .filter(|c| *c == part.len() - 1)
                    .ok_or_else(|| bad("expected ')'"))?;
                let head = part[..open].trim();
                let (key, word) = head
                    .rsplit_once(char::is_whitespace)
                    .ok_or_else(|| bad("expected 'in' or 'notin'"))?;
                let values = part[open + 1..close]
                    .split(',')
                    .map(|v| check_value(v.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                match word {
                    "in" => (key.trim(), LabelOp::In(values)),
                    "notin" => (key.trim(), LabelOp::NotIn(values)),
                    _ => return Err(bad("expected 'in' or 'notin'")),
                }
            } else if let Some((key, value)) = part.split_once("!=") {
                (key.trim(), LabelOp::NotEquals(check_value(value.trim())?))
            } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (key.trim(), LabelOp::Equals(check_value(value.trim())?))
            } else if let Some((key, value)) = part.split_once('>') {
                (
                    key.trim(),
                    LabelOp::GreaterThan(value.trim().parse().map_err(|_| bad("expected an integer"))?),
                )
            } else if let Some((key, value)) = part.split_once('<') {
                (
                    key.trim(),
                    LabelOp::LessThan(value.trim().parse().map_err(|_| bad("expected an integer"))?),
                )
            } else {
                (part, LabelOp::Exists)
            };
            if !valid_key(key) {
                return Err(bad("invalid label key"));
            }
            requirements.push((key.to_owned(), op));
        }
        Ok(Self { requirements })
    }

    /// Whether `labels` satisfy the selector.
    pub(crate) fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.requirements.iter().all(|(key, op)| {
            let value = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
            match op {
                LabelOp::Equals(v) => value == Some(v.as_str()),
                LabelOp::NotEquals(v) => value != Some(v.as_str()),
                LabelOp::In(vs) => value.is_some_and(|x| vs.iter().any(|v| v == x)),
                LabelOp::NotIn(vs) => !value.is_some_and(|x| vs.iter().any(|v| v == x)),
                LabelOp::Exists => value.is_some(),
                LabelOp::DoesNotExist => value.is_none(),
                LabelOp::GreaterThan(n) => value.and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x > *n),
                LabelOp::LessThan(n) => value.and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x < *n),
            }
        })
    }

    /// Whether `labels` (a plain map) satisfy the selector.
    #[cfg(test)]
    pub(crate) fn matches_map(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        let map = labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        self.matches(Some(&map))
    }
}

impl FieldSelector {
    /// Parses the `fieldSelector` query syntax, accepting only the `supported` field paths.
    pub(crate) fn parse(text: &str, supported: &[&str]) -> Result<Self, String> {
        let mut terms = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self { terms });
        }
        for part in text.split(',') {
            let part = part.trim();
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!("invalid selector: {part:?}; can't understand '{part}'"));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self { terms })
    }

    /// Whether `object` satisfies the selector (a missing field reads as the empty string).
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, equal, want)| {
            let path = match field.as_str() {
                "source" => "source.component",
                other => other,
            };
            let have = path.split('.').try_fold(object, |v, key| v.get(key));
            let have = match have {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (have == *want) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_syntax() {
        let labels: std::collections::BTreeMap<String, String> =
            [("app", "web"), ("tier", "gpu"), ("n", "5")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let cases = [
            ("app=web", true),
            ("app==web,tier=gpu", true),
            ("app!=web", false),
            ("tier in (gpu, cpu)", true),
            ("tier notin (gpu)", false),
            ("app,!missing", true),
            ("missing", false),
            ("n>4,n<6", true),
            ("example.com/x notin (a)", true),
            ("", true),
        ];
        for (text, expect) in cases {
            assert_eq!(
                LabelSelector::parse(text).unwrap().matches_map(&labels),
                expect,
                "{text}"
            );
        }
        for bad in ["app=we b", "tier in (a", "tier on (a)", "=x", "a>b", "app=web)"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn field_selector_syntax() {
        let supported = ["metadata.name", "spec.nodeName", "status.phase"];
        let pod = json!({"metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Running"}});
        assert!(
            FieldSelector::parse("metadata.name=p,status.phase!=Failed", &supported)
                .unwrap()
                .matches(&pod)
        );
        assert!(
            FieldSelector::parse("spec.nodeName=", &supported)
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("spec.nodeName==n1", &supported)
                .unwrap()
                .matches(&pod)
        );
        assert_eq!(
            FieldSelector::parse("spec.foo=x", &supported).unwrap_err(),
            "field label not supported: spec.foo"
        );
        assert!(FieldSelector::parse("nonsense", &supported).is_err());
    }
}
