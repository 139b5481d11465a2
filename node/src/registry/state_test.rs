use super::*;

fn avro(fields: &str) -> SchemaInput {
    SchemaInput {
        schema: format!(r#"{{"type":"record","name":"Order","fields":[{fields}]}}"#),
        ..SchemaInput::default()
    }
}

const V1: &str = r#"{"name":"id","type":"string"}"#;
const V2: &str = r#"{"name":"id","type":"string"},{"name":"n","type":"int","default":0}"#;
const BREAKING: &str = r#"{"name":"id","type":"int"}"#;

/// Plans and, like the leader after a successful write, applies.
fn run(s: &mut State, op: impl FnOnce(&State) -> Result<Plan, RegistryError>) -> Result<Value, RegistryError> {
    let plan = op(s)?;
    for r in plan.records {
        s.apply(r);
    }
    Ok(plan.answer)
}

fn code<T: std::fmt::Debug>(r: Result<T, RegistryError>) -> u32 {
    r.expect_err("an error").code
}

#[test]
fn registering_assigns_versions_and_global_ids_and_is_idempotent() {
    let mut s = State::default();
    let a = run(&mut s, |s| s.register("orders-value", &avro(V1))).expect("v1");
    assert_eq!(a, json!({"id": 1, "version": 1}));
    let again = run(&mut s, |s| s.register("orders-value", &avro(V1))).expect("same");
    assert_eq!(again, a, "the same schema again is the same version");
    let b = run(&mut s, |s| s.register("orders-value", &avro(V2))).expect("v2");
    assert_eq!(b, json!({"id": 2, "version": 2}));
    // The same schema under another subject: the same id, that subject's version 1.
    let c = run(&mut s, |s| s.register("audit-value", &avro(V1))).expect("other subject");
    assert_eq!(c, json!({"id": 1, "version": 1}));
    assert_eq!(s.subjects(false), json!(["audit-value", "orders-value"]));
    assert_eq!(s.versions("orders-value", false), Ok(json!([1, 2])));
    let latest = s.get_version("orders-value", VersionSpec::Latest, false).expect("latest");
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["id"], 2);
    assert!(latest.get("schemaType").is_none(), "AVRO is left out, as Confluent does");
    assert_eq!(s.schema_by_id(2).expect("id 2")["schema"], latest["schema"]);
    assert_eq!(code(s.schema_by_id(9)), 40403);
}

#[test]
fn an_incompatible_schema_is_refused_with_409_and_changes_nothing() {
    let mut s = State::default();
    run(&mut s, |s| s.register("t-value", &avro(V1))).expect("v1");
    let before = s.snapshot();
    let e = s.register("t-value", &avro(BREAKING)).expect_err("incompatible");
    assert_eq!((e.code, e.http_status()), (409, 409));
    assert!(e.message.contains("version 1"), "{e}");
    assert_eq!(s.snapshot(), before);
    // With the subject at NONE it goes in.
    run(&mut s, |s| s.set_config(Some("t-value"), Level::None)).expect("config");
    assert_eq!(run(&mut s, |s| s.register("t-value", &avro(BREAKING))).expect("v2")["version"], 2);
}

#[test]
fn compatibility_can_be_tested_without_registering() {
    let mut s = State::default();
    run(&mut s, |s| s.register("t", &avro(V1))).expect("v1");
    let ok = s.test_compatibility("t", Some(VersionSpec::Latest), &avro(V2), false).expect("test");
    assert_eq!(ok, json!({"is_compatible": true}));
    let bad = s.test_compatibility("t", None, &avro(BREAKING), true).expect("test");
    assert_eq!(bad["is_compatible"], false);
    assert_eq!(bad["messages"].as_array().map(Vec::len), Some(1));
    // Nothing to compare with: compatible (as Confluent answers), for a subject that does not
    // exist yet and for `latest`; a numbered version still has to exist.
    assert_eq!(s.test_compatibility("nope", None, &avro(V1), false), Ok(json!({"is_compatible": true})));
    let latest = s.test_compatibility("nope", Some(VersionSpec::Latest), &avro(BREAKING), false);
    assert_eq!(latest, Ok(json!({"is_compatible": true})));
    assert_eq!(code(s.test_compatibility("nope", Some(VersionSpec::Number(1)), &avro(V1), false)), 40401);
    assert_eq!(code(s.test_compatibility("t", Some(VersionSpec::Number(5)), &avro(V1), false)), 40402);
    assert_eq!(s.versions("t", false), Ok(json!([1])), "testing registers nothing");
}

#[test]
fn soft_then_hard_delete_follow_confluents_rules() {
    let mut s = State::default();
    run(&mut s, |s| s.register("t", &avro(V1))).expect("v1");
    run(&mut s, |s| s.register("t", &avro(V2))).expect("v2");
    assert_eq!(code(s.delete_subject("t", true)), 40405, "permanent before soft");
    assert_eq!(run(&mut s, |s| s.delete_version("t", VersionSpec::Number(1), false)), Ok(json!(1)));
    assert_eq!(code(s.delete_version("t", VersionSpec::Number(1), false)), 40406);
    assert_eq!(s.versions("t", false), Ok(json!([2])));
    assert_eq!(s.versions("t", true), Ok(json!([1, 2])));
    assert_eq!(s.schema_by_id(1).map(|_| ()), Ok(()), "a soft-deleted version's id still resolves");
    assert_eq!(run(&mut s, |s| s.delete_subject("t", false)), Ok(json!([2])));
    assert_eq!(code(s.delete_subject("t", false)), 40404);
    assert_eq!(code(s.versions("t", false)), 40401);
    assert_eq!(s.subjects(false), json!([]));
    assert_eq!(s.subjects(true), json!(["t"]));
    assert_eq!(run(&mut s, |s| s.delete_subject("t", true)), Ok(json!([1, 2])));
    assert_eq!(s.subjects(true), json!([]));
    assert_eq!(code(s.schema_by_id(1)), 40403, "no version uses id 1 any more");
    // Ids are not reused after a hard delete.
    let again = run(&mut s, |s| s.register("t", &avro(BREAKING))).expect("fresh");
    assert_eq!(again, json!({"id": 3, "version": 1}));
}

#[test]
fn a_permanent_version_delete_needs_a_soft_one_first() {
    let mut s = State::default();
    run(&mut s, |s| s.register("t", &avro(V1))).expect("v1");
    assert_eq!(code(s.delete_version("t", VersionSpec::Number(1), true)), 40407);
    run(&mut s, |s| s.delete_version("t", VersionSpec::Number(1), false)).expect("soft");
    assert_eq!(run(&mut s, |s| s.delete_version("t", VersionSpec::Number(1), true)), Ok(json!(1)));
    assert_eq!(code(s.get_version("t", VersionSpec::Number(1), true)), 40401);
}

#[test]
fn configuration_is_global_with_subject_overrides() {
    let mut s = State::default();
    assert_eq!(s.get_config(None, false), Ok(json!({"compatibilityLevel": "BACKWARD"})));
    assert_eq!(code(s.get_config(Some("t"), false)), 40408);
    assert_eq!(s.get_config(Some("t"), true), Ok(json!({"compatibilityLevel": "BACKWARD"})));
    run(&mut s, |s| s.set_config(None, Level::Full)).expect("global");
    run(&mut s, |s| s.set_config(Some("t"), Level::None)).expect("subject");
    assert_eq!(s.level_of("t"), Level::None);
    assert_eq!(s.level_of("u"), Level::Full);
    assert_eq!(run(&mut s, |s| s.delete_config(Some("t"))), Ok(json!({"compatibilityLevel": "NONE"})));
    assert_eq!(s.level_of("t"), Level::Full);
    assert_eq!(code(s.delete_config(Some("never-seen"))), 40401);
}

#[test]
fn lookup_finds_the_version_of_a_schema() {
    let mut s = State::default();
    run(&mut s, |s| s.register("t", &avro(V1))).expect("v1");
    run(&mut s, |s| s.register("t", &avro(V2))).expect("v2");
    let spaced = SchemaInput { schema: avro(V1).schema.replace(',', ", "), ..SchemaInput::default() };
    assert_eq!(s.lookup("t", &spaced, false).expect("found")["version"], 1);
    assert_eq!(code(s.lookup("t", &avro(BREAKING), false)), 40403);
    assert_eq!(code(s.lookup("nope", &avro(V1), false)), 40401);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut s = State::default();
    run(&mut s, |s| s.register("t", &avro(V1))).expect("v1");
    let before = s.snapshot();
    assert_eq!(code(s.register("t", &SchemaInput { schema: "{".into(), ..SchemaInput::default() })), 42201);
    assert_eq!(code(s.register("", &avro(V1))), 422);
    assert_eq!(code(s.register("a\u{0}b", &avro(V1))), 422);
    let huge = SchemaInput { schema: format!("\"{}\"", "x".repeat(SCHEMA_BYTES_MAX)), ..SchemaInput::default() };
    assert_eq!(code(s.register("t", &huge)), 42201);
    let proto =
        SchemaInput { format: Format::Protobuf, schema: "syntax = \"proto3\";".into(), ..SchemaInput::default() };
    assert_eq!(code(s.register("t", &proto)), 42201);
    let dangling = SchemaInput {
        references: vec![Reference { name: "A".into(), subject: "nope".into(), version: 1 }],
        ..avro(V1)
    };
    assert_eq!(code(s.register("t", &dangling)), 42201);
    assert_eq!(s.snapshot(), before);
    assert_eq!(VersionSpec::parse("0").map_err(|e| e.code), Err(42202));
    assert_eq!(VersionSpec::parse("latest"), Ok(VersionSpec::Latest));
}

#[test]
fn references_are_resolved_from_registered_subjects() {
    let mut s = State::default();
    let address = SchemaInput {
        schema: r#"{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}"#.into(),
        ..SchemaInput::default()
    };
    run(&mut s, |s| s.register("address", &address)).expect("address");
    let order = SchemaInput {
        schema: r#"{"type":"record","name":"Order","fields":[{"name":"to","type":"Address"}]}"#.into(),
        references: vec![Reference { name: "Address".into(), subject: "address".into(), version: 1 }],
        ..SchemaInput::default()
    };
    let a = run(&mut s, |s| s.register("order", &order)).expect("order");
    assert_eq!(a, json!({"id": 2, "version": 1}));
    let got = s.get_version("order", VersionSpec::Latest, false).expect("order");
    assert_eq!(got["references"][0]["subject"], "address");
    // A referenced version cannot be deleted (42206); once the referrer is gone, it can.
    assert_eq!(code(s.delete_version("address", VersionSpec::Number(1), false)), 42206);
    assert_eq!(code(s.delete_subject("address", false)), 42206);
    run(&mut s, |s| s.delete_subject("order", false)).expect("soft-delete order");
    assert_eq!(code(s.delete_subject("address", false)), 42206, "a soft-deleted referrer still refers");
    run(&mut s, |s| s.delete_subject("order", true)).expect("hard-delete order");
    run(&mut s, |s| s.delete_subject("address", false)).expect("address is free");
}

#[test]
fn records_read_back_rebuild_the_same_state() {
    let mut s = State::default();
    let mut written = Vec::new();
    let mut go = |s: &mut State, op: &dyn Fn(&State) -> Result<Plan, RegistryError>| {
        let plan = op(s).expect("plan");
        for r in plan.records {
            written.push(r.encode());
            s.apply(r);
        }
    };
    go(&mut s, &|s| s.register("a", &avro(V1)));
    go(&mut s, &|s| s.register("a", &avro(V2)));
    go(&mut s, &|s| s.set_config(Some("a"), Level::Full));
    go(&mut s, &|s| s.delete_version("a", VersionSpec::Number(1), false));
    // The keyed state: the latest value per key, in key order.
    let mut keyed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (k, v) in written {
        if v.is_empty() {
            keyed.remove(&k);
        } else {
            keyed.insert(k, v);
        }
    }
    let mut loaded = State::default();
    for (k, v) in keyed {
        loaded.apply(Record::decode(&k, &v).expect("decodes"));
    }
    assert_eq!(loaded.snapshot(), s.snapshot(), "same state");
}
