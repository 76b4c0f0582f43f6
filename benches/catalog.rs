//! Catalog benchmarks: `cargo bench --bench catalog`.
//!
//! - `catalog/load_embedded`: parse every embedded CSV into indexed offers (target < 50 ms).
//! - `catalog/query/*`: one indexed query (target < 20 µs).
//! - `catalog/list_accelerators`: the `show-gpus` summary over every accelerator.

#![allow(clippy::unwrap_used)] // a benchmark on fixed data: failing loudly is right

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use skyplan::catalog::{AcceleratorFilter, Amount, OfferQuery};

fn catalog_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("catalog");
    group.bench_function("load_embedded", |b| {
        b.iter(|| black_box(skyplan::embedded::catalog().unwrap()))
    });
    let catalog = skyplan::embedded::catalog().unwrap();
    println!("embedded catalog: {} offers", catalog.offers().len());

    let mut h100_spot = OfferQuery::accelerator("H100", Some(8.0));
    h100_spot.spot = true;
    group.bench_function("query/H100:8_spot_any_cloud", |b| {
        b.iter(|| black_box(catalog.query(black_box(&h100_spot))))
    });
    let l4 = OfferQuery::accelerator("L4", Some(1.0));
    group.bench_function("query/L4:1_on_demand", |b| {
        b.iter(|| black_box(catalog.query(black_box(&l4))))
    });
    let cpu = OfferQuery {
        accelerator: AcceleratorFilter::None,
        cpus: Some(Amount::at_least(8.0)),
        memory: Some(Amount::at_least(32.0)),
        region: Some("us-east-1".into()),
        ..Default::default()
    };
    group.bench_function("query/cpu_8+_32GB+_us-east-1", |b| {
        b.iter(|| black_box(catalog.query(black_box(&cpu))))
    });
    group.bench_function("list_accelerators", |b| {
        b.iter(|| black_box(catalog.accelerator_summaries(&OfferQuery::default())))
    });
    group.finish();
}

criterion_group!(benches, catalog_benches);
criterion_main!(benches);
