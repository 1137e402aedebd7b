//! Allocation index cost as the pool fills: proposing a free VNI or address must not slow down
//! with the number already allocated.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ironnet_registry::alloc::{AddressPool, IpFamily, VniPool, VniRange};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn vni(c: &mut Criterion) {
    let mut group = c.benchmark_group("vni_propose_and_take");
    for filled in [1_000u32, 1_000_000] {
        let mut pool = VniPool::new(VniRange::DEFAULT);
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..filled {
            let v = pool.propose(&mut rng).unwrap();
            pool.mark_taken(v);
        }
        group.bench_function(format!("{filled}_allocated"), |b| {
            b.iter_batched_ref(
                || pool.clone(),
                |p| {
                    let v = p.propose(&mut rng).unwrap();
                    p.mark_taken(v);
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn address(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipv4_propose_and_take");
    // A /12 holds ~1M addresses: fill 1k, then 1M (nearly full, the worst case for probing).
    for filled in [1_000u32, 1_000_000] {
        let mut pool = AddressPool::new(["10.0.0.0/12".parse().unwrap()]);
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..filled {
            let ip = pool.propose(IpFamily::IPv4, &mut rng).unwrap();
            pool.mark_taken(ip);
        }
        group.bench_function(format!("{filled}_allocated"), |b| {
            b.iter_batched_ref(
                || pool.clone(),
                |p| {
                    let ip = p.propose(IpFamily::IPv4, &mut rng).unwrap();
                    p.mark_taken(ip);
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, vni, address);
criterion_main!(benches);
