//! A property test: random sequences of operations on [`Pools`] against a plain
//! `BTreeMap` model that settles every deadline before every step. Checks every
//! answer, the counts and the whole state after each reap, and that replaying
//! the emitted events reproduces the state.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const KEY_TTL: Millis = 5_000;
const BLOCK_TTL: Millis = 1_000;

fn cfg() -> PoolConfig {
    PoolConfig {
        key_ttl: KEY_TTL,
        block_ttl: BLOCK_TTL,
        shards: 4,
    }
}

/// Which lease a release or delete passes.
#[derive(Debug, Clone, Copy)]
enum Lease {
    No,
    Current,
    Random,
}

#[derive(Debug, Clone)]
enum Op {
    Create(u64),
    Checkout(u64),
    Get(u64, usize),
    Release(u64, usize, Lease),
    Delete(u64, usize, Lease),
    Keepalive(u64, usize),
    /// Release under the current lease with this cooldown (ms).
    Cool(u64, usize, Millis),
    /// Extend the current lease (or a random one) to this many ms from now.
    Extend(u64, usize, bool, Millis),
    Advance(Millis),
    /// The wall clock steps back this far (after a reap, so that nothing the
    /// model has settled is still pending in the pool). New deadlines then
    /// arrive out of order and take the deadline queues' fallback heaps.
    StepBack(Millis),
    Reap,
}

fn op() -> impl Strategy<Value = Op> {
    let owner = 0..3u64;
    let key = any::<usize>();
    let lease = prop_oneof![Just(Lease::No), Just(Lease::Current), Just(Lease::Random)];
    prop_oneof![
        4 => owner.clone().prop_map(Op::Create),
        4 => owner.clone().prop_map(Op::Checkout),
        1 => (owner.clone(), key).prop_map(|(o, k)| Op::Get(o, k)),
        3 => (owner.clone(), key, lease.clone()).prop_map(|(o, k, l)| Op::Release(o, k, l)),
        1 => (owner.clone(), key, lease).prop_map(|(o, k, l)| Op::Delete(o, k, l)),
        2 => (owner.clone(), key).prop_map(|(o, k)| Op::Keepalive(o, k)),
        2 => (owner.clone(), key, 0..3_000u64).prop_map(|(o, k, c)| Op::Cool(o, k, c)),
        2 => (owner, key, any::<bool>(), 1..4_000u64).prop_map(|(o, k, cur, b)| Op::Extend(o, k, cur, b)),
        3 => (0..2_000u64).prop_map(Op::Advance),
        1 => (0..3_000u64).prop_map(Op::StepBack),
        1 => Just(Op::Reap),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct MKey {
    owner: AccountId,
    created_at: Millis,
    expires_at: Millis,
    block: Option<BlockInfo>,
    cooling: Option<Millis>,
}

#[derive(Default)]
struct Model {
    keys: BTreeMap<Uuid, MKey>,
}

impl Model {
    /// Applies every deadline that has passed at `now`.
    fn settle(&mut self, now: Millis) {
        self.keys.retain(|_, k| k.expires_at > now);
        for k in self.keys.values_mut() {
            if k.block.is_some_and(|b| b.blocked_until <= now) {
                k.block = None;
            }
            if k.cooling.is_some_and(|c| c <= now) {
                k.cooling = None;
            }
        }
    }

    fn mine(&mut self, owner: AccountId, key_id: Uuid) -> Option<&mut MKey> {
        self.keys.get_mut(&key_id).filter(|k| k.owner == owner)
    }

    fn stats(&self, owner: Option<AccountId>) -> Stats {
        let mut s = Stats::default();
        for k in self
            .keys
            .values()
            .filter(|k| owner.is_none_or(|o| o == k.owner))
        {
            s.total += 1;
            if k.block.is_some() {
                s.blocked += 1;
            } else if k.cooling.is_some() {
                s.cooling += 1;
            } else {
                s.available += 1;
            }
        }
        s
    }

    fn image(&self) -> Vec<KeyImage> {
        self.keys
            .iter()
            .map(|(&key_id, k)| KeyImage {
                key_id,
                owner: k.owner,
                created_at: k.created_at,
                expires_at: k.expires_at,
                blocked: k.block,
            })
            .collect()
    }
}

fn sorted_image(p: &Pools) -> Vec<KeyImage> {
    let mut keys = p.image().keys;
    keys.sort_by_key(|k| k.key_id);
    keys
}

/// After a full reap, the pool holds exactly the model's keys and counts.
fn compare(p: &Pools, m: &Model) {
    for shard in p.shards.iter() {
        shard.lock().check_invariants();
    }
    assert_eq!(sorted_image(p), m.image());
    for o in 0..3 {
        assert_eq!(p.stats(AccountId(o)), m.stats(Some(AccountId(o))));
    }
    assert_eq!(p.totals(), m.stats(None));
}

fn run(ops: Vec<Op>) {
    let p = Pools::new(cfg());
    let mut m = Model::default();
    let mut log: Vec<PoolEvent> = Vec::new();
    let mut ever: Vec<Uuid> = Vec::new();
    let mut now: Millis = 1_000_000;
    for op in ops {
        m.settle(now);
        let mut emit = |e: &PoolEvent| log.push(e.clone());
        let pick = |i: usize| {
            if ever.is_empty() {
                Uuid::new_v4()
            } else {
                ever[i % ever.len()]
            }
        };
        match op {
            Op::Create(o) => {
                let c = p.create(AccountId(o), now, &mut emit);
                assert_eq!(c.expires_at, now + KEY_TTL);
                let k = MKey {
                    owner: AccountId(o),
                    created_at: now,
                    expires_at: c.expires_at,
                    block: None,
                    cooling: None,
                };
                m.keys.insert(c.key_id, k);
                ever.push(c.key_id);
            }
            Op::Checkout(o) => match p.checkout(AccountId(o), now, &mut emit) {
                Ok(c) => {
                    let k = m
                        .mine(AccountId(o), c.key_id)
                        .expect("checked out a key of the owner");
                    assert_eq!(k.block, None, "checked out a blocked key");
                    assert_eq!(k.cooling, None, "checked out a cooling key");
                    assert_eq!(
                        (c.expires_at, c.blocked_until),
                        (k.expires_at, now + BLOCK_TTL)
                    );
                    k.block = Some(BlockInfo {
                        lease_id: c.lease_id,
                        blocked_at: now,
                        blocked_until: c.blocked_until,
                    });
                }
                Err(e) => {
                    assert_eq!(e, PoolError::NoAvailableKeys);
                    assert_eq!(m.stats(Some(AccountId(o))).available, 0);
                }
            },
            Op::Get(o, i) => {
                let key_id = pick(i);
                let want = m.mine(AccountId(o), key_id).map(|k| KeyInfo {
                    key_id,
                    created_at: k.created_at,
                    expires_at: k.expires_at,
                    blocked: k.block,
                    cooling_until: k.cooling,
                    value: None,
                    metadata: None,
                });
                assert_eq!(p.get(AccountId(o), key_id, now).ok(), want);
            }
            Op::Release(o, i, l) | Op::Delete(o, i, l) => {
                let key_id = pick(i);
                let delete = matches!(op, Op::Delete(..));
                let k = m.mine(AccountId(o), key_id).copied();
                let current = k.and_then(|k| k.block).map(|b| b.lease_id);
                let lease = match l {
                    Lease::No => None,
                    Lease::Current => Some(current.unwrap_or_else(Uuid::new_v4)),
                    Lease::Random => Some(Uuid::new_v4()),
                };
                let want = match (k, lease) {
                    (None, _) => Err(PoolError::NotFound),
                    (Some(_), Some(l)) if current != Some(l) => Err(PoolError::LeaseMismatch),
                    (Some(_), None) if !delete && current.is_none() => Err(PoolError::NotBlocked),
                    _ => Ok(()),
                };
                let got = if delete {
                    p.delete(AccountId(o), key_id, lease, now, &mut emit)
                } else {
                    p.release(AccountId(o), key_id, lease, now, &mut emit)
                };
                assert_eq!(got, want, "{op:?}");
                if got.is_ok() {
                    if delete {
                        m.keys.remove(&key_id);
                    } else if let Some(k) = m.mine(AccountId(o), key_id) {
                        k.block = None;
                    }
                }
            }
            Op::Cool(o, i, cooldown) => {
                let key_id = pick(i);
                let k = m.mine(AccountId(o), key_id).copied();
                let lease = k.and_then(|k| k.block).map(|b| b.lease_id);
                let got = p.release_cooling(AccountId(o), key_id, lease, cooldown, now, &mut emit);
                let want = match (k, lease) {
                    (None, _) => Err(PoolError::NotFound),
                    (Some(_), None) => Err(PoolError::NotBlocked),
                    _ => Ok(()),
                };
                assert_eq!(got, want, "{op:?}");
                if got.is_ok() {
                    let k = m.mine(AccountId(o), key_id).expect("it was there");
                    k.block = None;
                    k.cooling = (cooldown > 0).then_some(now + cooldown);
                }
            }
            Op::Extend(o, i, current, block) => {
                let key_id = pick(i);
                let k = m.mine(AccountId(o), key_id).copied();
                let held = k.and_then(|k| k.block);
                let lease = match (current, held) {
                    (true, Some(b)) => b.lease_id,
                    _ => Uuid::new_v4(),
                };
                let got = p.extend(AccountId(o), key_id, lease, block, now, &mut emit);
                let want = match (k, held) {
                    (None, _) => Err(PoolError::NotFound),
                    (Some(_), None) => Err(PoolError::NotBlocked),
                    (Some(_), Some(b)) if b.lease_id != lease => Err(PoolError::LeaseMismatch),
                    (Some(_), Some(_)) => Ok(Extended {
                        key_id,
                        lease_id: lease,
                        blocked_until: now + block,
                    }),
                };
                assert_eq!(got, want, "{op:?}");
                if got.is_ok() {
                    let k = m.mine(AccountId(o), key_id).expect("it was there");
                    if let Some(b) = &mut k.block {
                        b.blocked_until = now + block;
                    }
                }
            }
            Op::Keepalive(o, i) => {
                let key_id = pick(i);
                let got = p.keepalive(AccountId(o), key_id, now, &mut emit);
                match m.mine(AccountId(o), key_id) {
                    Some(k) => {
                        assert_eq!(got, Ok(now + KEY_TTL));
                        k.expires_at = now + KEY_TTL;
                    }
                    None => assert_eq!(got, Err(PoolError::NotFound)),
                }
            }
            Op::Advance(d) => now += d,
            Op::StepBack(d) => {
                p.reap(now, &mut emit);
                compare(&p, &m);
                now -= d;
            }
            Op::Reap => {
                p.reap(now, &mut emit);
                compare(&p, &m);
            }
        }
    }
    m.settle(now);
    p.reap(now, &mut |e| log.push(e.clone()));
    compare(&p, &m);
    let replayed = Pools::new(cfg());
    log.iter().for_each(|e| replayed.apply(e));
    assert_eq!(sorted_image(&replayed), m.image());
    compare(&replayed, &m);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn pools_behave_like_the_model(ops in prop::collection::vec(op(), 1..200)) {
        run(ops);
    }
}
