//! List pagination (`limit` and `continue`), as the API server does it: items in key order
//! (namespace, then name), at most `limit` of them, and a `continue` token naming the last key
//! given, with `remainingItemCount`. Unlike etcd, the simulator keeps no old snapshots: a
//! continued list reads the objects as they are now, after that key (the token still carries the
//! first page's resourceVersion, and a token from another list is refused).

use std::sync::Arc;

use serde_json::{Value, json};

use super::reply::{Params, number_param};
use crate::status::ApiError;

/// One page of a list.
pub(super) struct Page {
    pub items: Vec<Arc<Value>>,
    /// When more items follow: the token for the next page, and how many follow.
    pub next: Option<(String, usize)>,
}

fn key(object: &Value) -> (String, String) {
    let text = |field: &str| object["metadata"][field].as_str().unwrap_or_default().to_string();
    (text("namespace"), text("name"))
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The page of `items` (in key order) that `limit` and `continue` in `params` ask for; `list`
/// names the list (kind and namespace), so that a token is not used on another one.
pub(super) fn page(items: Vec<Arc<Value>>, params: &Params, list: &str, rv: u64) -> Result<Page, ApiError> {
    let invalid = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let after = match params.get("continue").filter(|c| !c.is_empty()) {
        None => None,
        Some(token) => {
            let decoded: Value = unhex(token)
                .and_then(|text| serde_json::from_str(&text).ok())
                .ok_or_else(|| invalid("not a token this simulator gave"))?;
            if decoded["v"] != "kubesim/v1" || decoded["list"] != list {
                return Err(invalid("it belongs to another list"));
            }
            let start = |i: usize| decoded["start"][i].as_str().map(str::to_string);
            Some((start(0).unwrap_or_default(), start(1).unwrap_or_default()))
        }
    };
    let mut items = items;
    if let Some(after) = &after {
        items.retain(|o| key(o) > *after);
    }
    let limit = number_param(params, "limit")?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let Some(limit) = limit.filter(|l| items.len() > *l) else {
        return Ok(Page { items, next: None });
    };
    let remaining = items.len() - limit;
    items.truncate(limit);
    let last = items.last().map(|o| key(o)).unwrap_or_default();
    let token = json!({"v": "kubesim/v1", "rv": rv, "list": list, "start": [last.0, last.1]});
    Ok(Page {
        items,
        next: Some((hex(&token.to_string()), remaining)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(namespace: &str, name: &str) -> Arc<Value> {
        Arc::new(json!({"metadata": {"namespace": namespace, "name": name}}))
    }

    fn names(page: &Page) -> Vec<String> {
        page.items.iter().map(|o| key(o).1).collect()
    }

    #[test]
    fn pages_follow_each_other_and_tokens_stay_with_their_list() {
        let items: Vec<Arc<Value>> = ["a", "b", "c"]
            .into_iter()
            .map(|n| object("default", n))
            .collect();
        let mut params = Params::from([("limit".to_string(), "2".to_string())]);
        let first = page(items.clone(), &params, "pods/default", 7).expect("first page");
        assert_eq!(names(&first), ["a", "b"]);
        let (token, remaining) = first.next.expect("a continue token");
        assert_eq!(remaining, 1);
        params.insert("continue".to_string(), token.clone());
        let second = page(items.clone(), &params, "pods/default", 8).expect("second page");
        assert_eq!(names(&second), ["c"]);
        assert!(second.next.is_none());
        let other = page(items.clone(), &params, "secrets/default", 8)
            .err()
            .expect("refused");
        assert!(
            other.message.contains("continue key is not valid"),
            "{}",
            other.message
        );
        params.insert("continue".to_string(), "zz".to_string());
        assert!(page(items, &params, "pods/default", 8).is_err());
    }
}
