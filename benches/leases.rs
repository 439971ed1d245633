//! Criterion benchmarks of the second round's pool paths, to show that they
//! do not grow with what they must not grow with:
//!
//! - checkout_release_waiters: a checkout and its release (which frees a key
//!   and so calls `Waiters::freed`, the long-poll wake-up hook `App::write`
//!   runs for every freed key) while 0, 1,000 or 100,000 long polls wait on
//!   *other* pools. The waiters are registered outside the timed loop.
//! - checkout_release_named: a checkout and its release in one random pool of
//!   1, 100 or 10,000 named pools of 10 keys each (one account), name lookup
//!   included (`Pools::pool_id`, as the route does).
//! - batch_checkout: `count` = 1, 10, 100 from a 100,000-key pool, and the
//!   releases of what it took (per key: divide by `count`).
//!
//! Run with `cargo bench --bench leases`. It prints; it asserts nothing.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use keypool::app::waiters::Waiters;
use keypool::clock::Millis;
use keypool::ids::AccountId;
use keypool::pool::{PoolConfig, PoolEvent, Pools};
use rand::Rng;

const ACCOUNT: AccountId = AccountId(1);
const T0: Millis = 1_000;
const KEY_TTL: Millis = 1 << 50;
const BLOCK: Millis = 60_000;

fn noop(_: &PoolEvent) {}

fn config() -> PoolConfig {
    PoolConfig {
        key_ttl: KEY_TTL,
        block_ttl: BLOCK,
        shards: 32,
    }
}

/// One checkout of `pool` and the release of what it took, waking waiters as
/// `App::write` does.
fn checkout_release(p: &Pools, w: &Waiters, pool: AccountId, now: Millis) {
    let got = p
        .checkout_batch(pool, 1, BLOCK, now, &mut noop, &mut |_, _| {})
        .expect("the pool has free keys");
    let c = &got[0];
    p.release(pool, c.key_id, Some(c.lease_id), now, &mut noop)
        .expect("our own lease");
    w.freed(pool);
}

fn waiters(c: &mut Criterion) {
    let p = Pools::new(config());
    for _ in 0..1_000 {
        p.create(ACCOUNT, T0, &mut noop);
    }
    let mut g = c.benchmark_group("checkout_release_waiters");
    for n in [0usize, 1_000, 100_000] {
        let w = Waiters::default();
        // Long polls on other pools (ids no key has), one per pool.
        let held: Vec<_> = (0..n)
            .map(|i| {
                w.register(AccountId(2 + i as u64), AccountId(2 + i as u64), 1)
                    .expect("under the cap")
            })
            .collect();
        let mut now = T0;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                now += 1;
                checkout_release(&p, &w, ACCOUNT, now);
            })
        });
        black_box(held.len());
    }
    g.finish();
}

fn named(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkout_release_named");
    for pools in [1usize, 100, 10_000] {
        let p = Pools::new(config());
        let w = Waiters::default();
        let names: Vec<String> = (0..pools).map(|i| format!("pool-{i}")).collect();
        for name in &names {
            let owner = p.bind(ACCOUNT, name, &mut noop);
            for _ in 0..10 {
                p.create(owner, T0, &mut noop);
            }
        }
        let picks: Vec<usize> = {
            let mut rng = rand::thread_rng();
            (0..1 << 16).map(|_| rng.gen_range(0..pools)).collect()
        };
        let mut i = 0usize;
        let mut now = T0;
        g.bench_with_input(BenchmarkId::from_parameter(pools), &pools, |b, _| {
            b.iter(|| {
                i = (i + 1) & ((1 << 16) - 1);
                now += 1;
                let owner = p.pool_id(ACCOUNT, &names[picks[i]]).expect("bound");
                checkout_release(&p, &w, owner, now);
            })
        });
    }
    g.finish();
}

fn batch(c: &mut Criterion) {
    let p = Pools::new(config());
    for _ in 0..100_000 {
        p.create(ACCOUNT, T0, &mut noop);
    }
    let mut g = c.benchmark_group("batch_checkout");
    let mut now = T0;
    for count in [1usize, 10, 100] {
        g.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, &count| {
            b.iter(|| {
                now += 1;
                let got = p
                    .checkout_batch(ACCOUNT, count, BLOCK, now, &mut noop, &mut |evs, _| {
                        black_box(evs.len());
                    })
                    .expect("free keys");
                for k in &got {
                    p.release(ACCOUNT, k.key_id, Some(k.lease_id), now, &mut noop)
                        .expect("our own lease");
                }
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    waiters(&mut c);
    named(&mut c);
    batch(&mut c);
    c.final_summary();
}
