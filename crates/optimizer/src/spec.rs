//! Task specs: SkyPilot-compatible task YAML parsed into typed values.
#![allow(missing_docs, dead_code)]
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

#[derive(Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}
#[derive(Debug)]
pub struct Node {
    pub value: Value,
    pub line: u32,
    pub col: u32,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: Spanned<Value> = Spanned::deserialize(d)?;
        Ok(Node {
            value: s.value,
            line: s.referenced.line() as u32,
            col: s.referenced.column() as u32,
        })
    }
}
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                Value::deserialize(d)
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
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
                Ok(Value::Int(i128::try_from(v).map_err(E::custom)?))
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
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = a.next_element::<Node>()? {
                    out.push(n);
                }
                Ok(Value::Seq(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = a.next_key::<Node>()? {
                    let v = a.next_value::<Node>()?;
                    out.push((k, v));
                }
                Ok(Value::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn exp() {
        let y = "a: 1\nb:\n  - x\n  - {L4, A10G}\n  - !!set {? q}\nc: yes\nd: 0755\ne:\nf: ~\ng: \"4\"\nh: 1.10\n&anc i: *anc\nj: &x [1, 2]\nk: *x\n";
        let opts = serde_saphyr::options! { strict_booleans: true, leading_zero_numbers_as_strings: true };
        let r: Result<Node, _> = serde_saphyr::from_str_with_options(y, opts);
        println!("{r:#?}");
        let m: Result<Vec<Node>, _> = serde_saphyr::from_str_multiple("a: 1\n---\nb: [2\n");
        match m {
            Err(e) => println!("ERR {:?} / {} / {:?}", e.location(), e.without_snippet(), e),
            Ok(v) => println!("{v:?}"),
        }
        let m: Result<Vec<Node>, _> = serde_saphyr::from_str_multiple("a: 1\n---\nb: 2\n---\n");
        println!("{m:?}");
        let m: Result<Node, _> = serde_saphyr::from_str("a: 1\na: 2\n");
        match m {
            Err(e) => println!("ERR {:?} / {}", e.location(), e.without_snippet()),
            Ok(v) => println!("{v:?}"),
        }
        let m: Result<Vec<Node>, _> =
            serde_saphyr::from_str_multiple("---\n---\na: 1\n---\n# c\n---\ny: !!set {a}\n");
        println!("{m:?}");
        let m: Result<Node, _> = serde_saphyr::from_str("a: 1\n---\nb: 2\n");
        println!("{m:?}");
    }
}
