//! Server-side apply and managedFields costs on a realistic custom resource: a spec with a
//! 50-element map-list, a set, labels, and two managers.
//!
//! Run: `cargo bench -p ironnet-structured --bench apply -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ironnet_structured::{
    ApplyRequest, BodyFormat, FieldSet, Operation, Schema, UpdateRequest, apply, decode_body,
    update_managed_fields,
};
use jiff::Timestamp;
use serde_json::{Value, json};

fn schema() -> Schema {
    Schema::from_openapi(&json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer"},
                    "ports": {
                        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {
                            "name": {"type": "string"}, "port": {"type": "integer"}, "protocol": {"type": "string"}
                        }}
                    },
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
                }
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    }))
    .expect("valid schema")
}

fn config(replicas: i64) -> Value {
    let ports: Vec<Value> = (0..50)
        .map(|i| json!({"name": format!("p{i}"), "port": 8000 + i, "protocol": "TCP"}))
        .collect();
    json!({
        "apiVersion": "bench.ironnet.dev/v1", "kind": "Bench",
        "metadata": {"name": "b", "labels": {"app": "bench", "tier": "x"}},
        "spec": {"replicas": replicas, "ports": ports, "tags": ["a", "b", "c"]}
    })
}

fn bench(c: &mut Criterion) {
    let schema = schema();
    let now = Timestamp::from_second(1_700_000_000).expect("valid time");
    let first = apply(ApplyRequest {
        live: None,
        applied: &config(1),
        manager: "kubectl",
        subresource: None,
        force: false,
        schema: &schema,
        managed_fields: &[],
        api_version: "bench.ironnet.dev/v1",
        now,
        reset_fields: None,
    })
    .expect("first apply");
    let live = first.object.clone();
    let applied_same = config(1);
    let applied_changed = config(2);

    c.bench_function("apply_noop_50_ports", |b| {
        b.iter(|| {
            black_box(apply(ApplyRequest {
                live: Some(&live),
                applied: &applied_same,
                manager: "kubectl",
                subresource: None,
                force: false,
                schema: &schema,
                managed_fields: &first.managed_fields,
                api_version: "bench.ironnet.dev/v1",
                now,
                reset_fields: None,
            }))
        })
    });
    c.bench_function("apply_change_50_ports", |b| {
        b.iter(|| {
            black_box(apply(ApplyRequest {
                live: Some(&live),
                applied: &applied_changed,
                manager: "kubectl",
                subresource: None,
                force: false,
                schema: &schema,
                managed_fields: &first.managed_fields,
                api_version: "bench.ironnet.dev/v1",
                now,
                reset_fields: None,
            }))
        })
    });
    let mut updated = live.clone();
    updated["spec"]["replicas"] = json!(5);
    c.bench_function("update_managed_fields_50_ports", |b| {
        b.iter(|| {
            black_box(update_managed_fields(UpdateRequest {
                old: Some(&live),
                new: &updated,
                manager: "kubectl-edit",
                operation: Operation::Update,
                subresource: None,
                managed_fields: &first.managed_fields,
                schema: &schema,
                api_version: "bench.ironnet.dev/v1",
                now,
                reset_fields: None,
            }))
        })
    });
    let fields = first.managed_fields[0].fields_v1.clone().expect("fields").0;
    c.bench_function("fieldsv1_decode_encode_50_ports", |b| {
        b.iter(|| black_box(FieldSet::from_fields_v1(&fields).expect("decodes").to_fields_v1()))
    });
    let body = serde_json::to_vec(&config(1)).expect("serializes");
    c.bench_function("decode_body_json", |b| {
        b.iter(|| black_box(decode_body(&body, BodyFormat::Json)))
    });
    c.bench_function("decode_body_json_as_yaml", |b| {
        b.iter(|| black_box(decode_body(&body, BodyFormat::Yaml)))
    });
    c.bench_function("serde_json_from_slice_reference", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(&body)))
    });
    let yaml = serde_saphyr::to_string(&config(1)).expect("serializes");
    c.bench_function("decode_body_yaml", |b| {
        b.iter(|| black_box(decode_body(yaml.as_bytes(), BodyFormat::Yaml)))
    });
    c.bench_function("serde_saphyr_from_str_reference", |b| {
        b.iter(|| black_box(serde_saphyr::from_str::<Value>(&yaml)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
