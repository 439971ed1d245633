//! Criterion benchmarks of the key pool's operations at 1,000, 100,000 and
//! 1,000,000 keys, to show that their cost does not grow with the pool: create,
//! checkout+release, keepalive, delete, and the reaper's cost per key reaped.
//! Each pool is built once per size, outside the timed loops, and each loop
//! keeps the pool's size steady. Emitting is a no-op.
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
use uuid::Uuid;

const OWNER: AccountId = AccountId(1);
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// Keys created or deleted per timed batch in the create and delete benches.
const BATCH: usize = 1_000;
/// The time the pools are built at.
const T0: Millis = 1_000;
/// Long enough that no key of the base pool expires while benchmarking.
const KEY_TTL: Millis = 1 << 50;

fn noop(_: &PoolEvent) {}

fn config() -> PoolConfig {
    PoolConfig {
        key_ttl: KEY_TTL,
        block_ttl: 60_000,
        ..PoolConfig::default()
    }
}

/// A pool of `size` free keys of [`OWNER`], and their ids.
fn build(size: usize) -> (Pools, Vec<Uuid>) {
    let pools = Pools::new(config());
    let keys = (0..size)
        .map(|_| pools.create(OWNER, T0, &mut noop).key_id)
        .collect();
    (pools, keys)
}

fn bench_size(c: &mut Criterion, size: usize) {
    let (pools, keys) = build(size);
    let id = BenchmarkId::from_parameter(size);

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
                    made.push(pools.create(OWNER, T0, &mut noop).key_id);
                }
                spent += start.elapsed();
                for k in made.drain(..) {
                    let _ = pools.delete(OWNER, k, None, T0, &mut noop);
                }
                left -= n;
            }
            spent
        })
    });

    c.benchmark_group("checkout_release")
        .bench_function(id.clone(), |b| {
            b.iter(|| {
                let lease = pools
                    .checkout(OWNER, T0, &mut noop)
                    .expect("the pool has free keys");
                black_box(pools.release(OWNER, lease.key_id, Some(lease.lease_id), T0, &mut noop))
            })
        });

    // Each keepalive moves a key's deadline (now advances), as in real use.
    let mut now = T0;
    let mut i = 0;
    c.benchmark_group("keepalive")
        .bench_function(id.clone(), |b| {
            b.iter(|| {
                now += 1;
                i = (i + 7_919) % keys.len();
                black_box(pools.keepalive(OWNER, keys[i], now, &mut noop))
            })
        });

    // Untimed: BATCH creates. Timed: deleting them.
    c.benchmark_group("delete").bench_function(id.clone(), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(BATCH);
                let made: Vec<Uuid> = (0..n)
                    .map(|_| pools.create(OWNER, T0, &mut noop).key_id)
                    .collect();
                let start = Instant::now();
                for &k in &made {
                    black_box(pools.delete(OWNER, k, None, T0, &mut noop).is_ok());
                }
                spent += start.elapsed();
                left -= n;
            }
            spent
        })
    });

    // Untimed: BATCH keys that expire at `due` (inserted as replay would).
    // Timed: the reap that deletes them. One iteration = one key reaped.
    let mut due = T0;
    c.benchmark_group("reap_per_key").bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(BATCH);
                due += 1;
                for _ in 0..n {
                    pools.apply(&PoolEvent::Created {
                        owner: OWNER,
                        key_id: Uuid::new_v4(),
                        created_at: T0,
                        expires_at: due,
                    });
                }
                let start = Instant::now();
                let reaped = pools.reap(due, &mut noop);
                spent += start.elapsed();
                assert_eq!(reaped.expired, n, "the batch, and only the batch, expired");
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
    let pools = Pools::new(config());
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
