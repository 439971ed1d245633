//! Criterion benchmarks of the key pool's operations at 1,000, 100,000 and
//! 1,000,000 keys, to show that their cost does not grow with the pool: create,
//! checkout+release, keepalive, delete, and the reaper's cost per key reaped.
//! Each pool is built once per size, outside the timed loops, and each loop
//! keeps the pool's size steady. Emitting is a no-op.
//!
//! What is measured, and what is kept out of the timed code:
//! - The clock advances by 1 ms per operation, as in real use: deadlines are
//!   `now + ttl`, so they arrive in order (the pool's common case).
//! - Keys an operation acts on are picked uniformly at random from the whole
//!   pool, so the random access into a large key table that a real client's
//!   request causes is part of the cost. The picks are drawn before timing, into
//!   a vector read front to back, so neither the RNG nor cache misses on a
//!   vector of ids are counted as the operation.
//! - create: BATCH creates (timed); deleting them again (untimed).
//! - checkout_release: one checkout of a random free key plus its release.
//! - keepalive: one keepalive of a random key.
//! - delete: BATCH deletes of distinct random keys (timed); creating their
//!   replacements (untimed).
//! - reap_per_key: a separate pool of the same size in steady state, where key
//!   `i` was created at ms `i` with `key_ttl` = size ms; untimed, BATCH more
//!   creates; timed, the reap that deletes the BATCH oldest keys (whose slots
//!   were last touched a whole pool ago, so cold). One iteration = one key.
//!
//! - baseline_hashmap_get: for comparison in the same run, the textbook O(1)
//!   operation, one `std::collections::HashMap<Uuid, u64>::get` of a random
//!   key in a map of the same size. Its own 1M/1K ratio shows how much of an
//!   operation's growth is the memory hierarchy (a 1,000-key pool lives in L1
//!   and L2; a 1,000,000-key pool is ~88 MB, so each random key is a DRAM
//!   miss) rather than the algorithm.
//!
//! Run with `cargo bench --bench pool`. Under `cargo bench` it first prints the
//! resident memory per key of a 1,000,000-key pool (VmRSS before and after
//! building it); it prints, it does not assert (benchmarks are not tests).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use keypool::clock::Millis;
use keypool::ids::AccountId;
use keypool::pool::{PoolConfig, PoolEvent, Pools};
use rand::seq::index::sample;
use rand::Rng;
use uuid::Uuid;

const OWNER: AccountId = AccountId(1);
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// Keys created or deleted per timed batch in the create, delete and reap benches.
const BATCH: usize = 1_000;
/// Random keepalive picks drawn ahead (cycled through): 16 MiB, far more
/// than any cache, read in order so that the prefetcher hides it.
const PICKS: usize = 1 << 20;
/// The time the pools are built at.
const T0: Millis = 1_000;
/// Long enough that no key of the base pool expires while benchmarking.
const KEY_TTL: Millis = 1 << 50;

fn noop(_: &PoolEvent) {}

fn config(key_ttl: Millis) -> PoolConfig {
    PoolConfig {
        key_ttl,
        block_ttl: 60_000,
        ..PoolConfig::default()
    }
}

/// A pool of `size` free keys of [`OWNER`], created 1 ms apart from `T0` on,
/// and their ids.
fn build(size: usize, key_ttl: Millis) -> (Pools, Vec<Uuid>) {
    let pools = Pools::new(config(key_ttl));
    let keys = (0..size)
        .map(|i| pools.create(OWNER, T0 + i as Millis, &mut noop).key_id)
        .collect();
    (pools, keys)
}

fn bench_size(c: &mut Criterion, size: usize) {
    let (pools, mut keys) = build(size, KEY_TTL);
    let mut now = T0 + size as Millis;
    let id = BenchmarkId::from_parameter(size);
    let mut rng = rand::thread_rng();

    // Timed: BATCH creates. Untimed: deleting them again.
    c.benchmark_group("create").bench_function(id.clone(), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut made = Vec::with_capacity(BATCH);
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(BATCH);
                let start = Instant::now();
                for _ in 0..n {
                    now += 1;
                    made.push(pools.create(OWNER, now, &mut noop).key_id);
                }
                spent += start.elapsed();
                for k in made.drain(..) {
                    let _ = pools.delete(OWNER, k, None, now, &mut noop);
                }
                left -= n;
            }
            spent
        })
    });

    c.benchmark_group("checkout_release")
        .bench_function(id.clone(), |b| {
            b.iter(|| {
                now += 1;
                let lease = pools
                    .checkout(OWNER, now, &mut noop)
                    .expect("the pool has free keys");
                black_box(pools.release(OWNER, lease.key_id, Some(lease.lease_id), now, &mut noop))
            })
        });

    let picks: Vec<Uuid> = (0..PICKS)
        .map(|_| keys[rng.gen_range(0..keys.len())])
        .collect();
    let mut next = 0;
    c.benchmark_group("keepalive")
        .bench_function(id.clone(), |b| {
            b.iter(|| {
                now += 1;
                next = (next + 1) % PICKS;
                black_box(pools.keepalive(OWNER, picks[next], now, &mut noop))
            })
        });

    // The baseline: a random lookup in a std HashMap of the same size, with
    // the same picks read in the same order.
    let map: std::collections::HashMap<Uuid, u64> = keys
        .iter()
        .enumerate()
        .map(|(i, &k)| (k, i as u64))
        .collect();
    c.benchmark_group("baseline_hashmap_get")
        .bench_function(id.clone(), |b| {
            b.iter(|| {
                next = (next + 1) % PICKS;
                black_box(map.get(&picks[next]))
            })
        });
    drop(map);
    drop(picks);

    // Untimed: choosing BATCH distinct random keys. Timed: deleting them.
    // Untimed: creating their replacements.
    c.benchmark_group("delete").bench_function(id.clone(), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(BATCH);
                let at = sample(&mut rng, keys.len(), n);
                let victims: Vec<Uuid> = at.iter().map(|i| keys[i]).collect();
                now += 1;
                let start = Instant::now();
                for &k in &victims {
                    black_box(pools.delete(OWNER, k, None, now, &mut noop).is_ok());
                }
                spent += start.elapsed();
                for i in at.iter() {
                    now += 1;
                    keys[i] = pools.create(OWNER, now, &mut noop).key_id;
                }
                left -= n;
            }
            spent
        })
    });

    assert_eq!(
        pools.totals().total as usize,
        size,
        "the pool kept its size"
    );
    drop(pools);

    // Key i was created at T0 + i and expires `size` ms later; each create
    // below advances the clock 1 ms, so a reap at `rnow` finds exactly the
    // BATCH keys created `size` ms earlier due.
    let (pools, _) = build(size, size as Millis);
    let mut rnow = T0 + size as Millis - 1;
    c.benchmark_group("reap_per_key").bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(BATCH);
                for _ in 0..n {
                    rnow += 1;
                    pools.create(OWNER, rnow, &mut noop);
                }
                let start = Instant::now();
                let reaped = pools.reap(rnow, &mut noop);
                spent += start.elapsed();
                assert_eq!(
                    reaped.expired, n,
                    "the oldest n keys, and only they, expired"
                );
                left -= n;
            }
            spent
        })
    });
    assert_eq!(
        pools.totals().total as usize,
        size,
        "the reap pool kept its size"
    );
}

/// The process's resident set size in bytes, from /proc/self/status.
fn vm_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Prints the resident memory per key of a 1,000,000-key pool.
fn memory_per_key() {
    const N: usize = 1_000_000;
    let Some(before) = vm_rss() else {
        println!("memory per key: /proc/self/status unavailable");
        return;
    };
    let pools = Pools::new(config(KEY_TTL));
    for _ in 0..N {
        pools.create(OWNER, T0, &mut noop);
    }
    let after = vm_rss().unwrap_or(before);
    let per_key = after.saturating_sub(before) as f64 / N as f64;
    println!(
        "memory per key at {N} keys: {per_key:.1} bytes (VmRSS {} -> {} MiB)",
        before >> 20,
        after >> 20
    );
    black_box(pools.totals());
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs each bench once
    // without it, and then the 1M-key memory measurement is skipped.
    if std::env::args().any(|a| a == "--bench") {
        memory_per_key();
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for size in SIZES {
        bench_size(&mut c, size);
    }
    c.final_summary();
}
