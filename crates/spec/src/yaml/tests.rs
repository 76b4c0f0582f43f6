//! Tests of the YAML layer: locations, scalar spellings, syntax errors, duplicates.

use super::*;

#[test]
fn nodes_carry_locations() {
    let docs = load_documents("a: 1\nb:\n  - x\n  - {L4, A10G}\n", "t.yaml").unwrap();
    let Value::Map(entries) = &docs[0].value else {
        panic!("not a map")
    };
    let (key, value) = &entries[1];
    assert_eq!((key.line, key.column), (2, 1));
    let Value::Seq(items) = &value.value else {
        panic!("not a seq")
    };
    assert_eq!((items[1].line, items[1].column), (4, 5));
    let Value::Map(set) = &items[1].value else {
        panic!("not a set")
    };
    assert_eq!(set[1].0.value, Value::Str("A10G".into()));
    assert_eq!(set[1].1.value, Value::Null);
}

#[test]
fn yaml_1_1_booleans_and_odd_numbers_stay_strings() {
    let docs = load_documents("y: yes\nmode: 0755\nbig: 1_000\ninf: .inf\n", "t.yaml").unwrap();
    let Value::Map(entries) = &docs[0].value else {
        panic!("not a map")
    };
    let values: Vec<&Value> = entries.iter().map(|(_, v)| &v.value).collect();
    assert_eq!(entries[0].0.value, Value::Str("y".into()));
    assert_eq!(values[0], &Value::Str("yes".into()));
    assert_eq!(values[1], &Value::Str("0755".into()));
    assert_eq!(values[2], &Value::Str("1_000".into()));
    assert_eq!(values[3], &Value::Str(".inf".into()));

    let docs = load_documents("a: 3.10\nb: [1.0, &x 7, *x]\nc: 0x1F\n", "t.yaml").unwrap();
    let Value::Map(entries) = &docs[0].value else {
        panic!("not a map")
    };
    assert_eq!(scalar_text(&entries[0].1).as_deref(), Some("3.10"));
    let Value::Seq(items) = &entries[1].1.value else {
        panic!("not a seq")
    };
    let texts: Vec<_> = items.iter().filter_map(scalar_text).collect();
    assert_eq!(texts, ["1.0", "7", "7"]);
    assert_eq!(scalar_text(&entries[2].1).as_deref(), Some("31"));
}

#[test]
fn syntax_errors_are_located() {
    let err = load_documents("a: 1\n---\nb: [2\n", "t.yaml").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("t.yaml:3:4: invalid YAML: "), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn duplicate_keys_are_ours_to_report() {
    let docs = load_documents("a: 1\na: 2\n", "t.yaml").unwrap();
    let ctx = Ctx { file: "t.yaml" };
    let err = ctx.mapping(&docs[0], "", "a mapping").err().unwrap();
    assert_eq!(
        err.to_string(),
        "t.yaml:2:1: a: duplicate key; the first one is on line 1"
    );
}

#[test]
fn empty_documents_are_skipped() {
    assert_eq!(
        load_documents("---\n---\na: 1\n---\n# only a comment\n", "t.yaml")
            .unwrap()
            .len(),
        1
    );
    assert!(load_documents("", "t.yaml").unwrap().is_empty());
}
