//! `RedisStore` against a real `redis-server` on 127.0.0.1: the `MemoryStore` behaviours, a
//! differential run against `MemoryStore`, concurrent admissions, and a server that goes away and
//! comes back. Fails, saying what is missing, when no server can be started (no test here skips).

#![allow(clippy::unwrap_used, reason = "tests and their helpers may unwrap")]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::smallvec;
use switchyard::ErrorKind;
use switchyard::state::{
    Admit, Check, Choice, Counter, Flag, Lease, MemoryStore, RedisConfig, RedisStore, Settlement, StateStore, Sticky,
};

use support::redis::Redis;

async fn store(redis: &Redis, test: &str) -> RedisStore {
    store_in(redis, &redis.namespace(test)).await
}

/// A store on namespace `ns` (for tests that look at its keys).
async fn store_in(redis: &Redis, ns: &str) -> RedisStore {
    let config = RedisConfig::new().with_namespace(ns).with_response_timeout(Duration::from_secs(2));
    RedisStore::connect(redis.url(), config).await.unwrap()
}

fn admit(limit: f64, costs: &[f64]) -> Admit {
    Admit {
        counters: vec![Counter::new("budget:global:day:1", Duration::from_secs(3600))],
        choices: costs
            .iter()
            .enumerate()
            .map(|(i, &c)| Choice {
                label: Arc::from(format!("m{i}")),
                charges: smallvec![(0, c)],
                checks: smallvec![Check { terms: smallvec![(0, 1.0)], limit, soft: false }],
                flag: None,
            })
            .collect(),
        lease_ttl: Duration::from_secs(60),
        sticky: None,
        settle: Vec::new(),
        flags: Vec::new(),
        lease_id: None,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn redis_store_is_send_sync_clone_and_a_state_store() {
    fn is<T: Send + Sync + Clone + std::fmt::Debug>() {}
    is::<RedisStore>();
    let _: fn(&dyn StateStore) = |_| {};
    let _: fn(RedisStore) -> Arc<dyn StateStore> = |s| Arc::new(s);
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn takes_the_first_choice_that_fits_and_downgrades_near_the_limit() {
    let redis = Redis::shared();
    let store = store(&redis, "first_fit").await;
    let a = admit(1.0, &[0.6, 0.1]);
    let first = store.admit(&a).await.unwrap();
    assert_eq!(first.choice, Some(0));
    assert_eq!(first.values, vec![0.6]);
    let second = store.admit(&a).await.unwrap();
    assert_eq!(second.choice, Some(1), "0.6 more would exceed 1.0; the cheaper choice fits");
    assert!(close(second.values[0], 0.7));
    let full = store.admit(&admit(0.75, &[0.6, 0.1])).await.unwrap();
    assert_eq!(full.choice, None);
    assert!(full.lease.is_none());
    assert!(close(full.values[0], 0.7));
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn settlement_reconciles_and_release_gives_everything_back() {
    let redis = Redis::shared();
    let store = store(&redis, "settle").await;
    let a = admit(1.0, &[0.5]);
    let lease = store.admit(&a).await.unwrap().lease.unwrap();
    assert_eq!(lease.charges.len(), 1);
    store.settle(&[Settlement { lease, actual: smallvec![0.2] }]).await.unwrap();
    assert!(close(store.read(&a.counters).await.unwrap()[0], 0.2));
    let lease = store.admit(&a).await.unwrap().lease.unwrap();
    assert!(close(store.read(&a.counters).await.unwrap()[0], 0.7));
    // Piggybacked on an admission: applied before the checks.
    let mut b = admit(0.5, &[0.3]);
    b.settle = vec![Settlement::release(lease)];
    let after = store.admit(&b).await.unwrap();
    assert_eq!(after.choice, Some(0), "0.2 + 0.3 fits once the release is applied");
    assert!(close(after.values[0], 0.5));
    // Unreserved spending just adds.
    store.settle(&[Settlement::unreserved([(a.counters[0].clone(), 0.25)])]).await.unwrap();
    assert!(close(store.read(&a.counters).await.unwrap()[0], 0.75));
    // A counter that was never written reads 0.
    let missing = Counter::new("nothing:here", Duration::ZERO);
    assert_eq!(store.read(&[missing]).await.unwrap(), vec![0.0]);
    assert_eq!(store.read(&[]).await.unwrap(), Vec::<f64>::new());
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn an_expired_lease_gives_its_reservation_back_and_a_late_settlement_adds_the_actual() {
    let redis = Redis::shared();
    let store = store(&redis, "expired").await;
    let mut a = admit(1.0, &[0.5]);
    a.lease_ttl = Duration::from_millis(1);
    let lease = store.admit(&a).await.unwrap().lease.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let again = store.admit(&admit(0.5, &[0.5])).await.unwrap();
    assert_eq!(again.choice, Some(0), "the expired reservation no longer counts");
    let late = Settlement { lease, actual: smallvec![0.25] };
    store.settle(std::slice::from_ref(&late)).await.unwrap();
    assert!(close(store.read(&a.counters).await.unwrap()[0], 0.75));
    // Sent again (as after a lost reply): nothing changes.
    store.settle(&[late]).await.unwrap();
    assert!(close(store.read(&a.counters).await.unwrap()[0], 0.75));
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_flag_set_by_one_store_blocks_its_choice_for_another_until_it_expires() {
    let redis = Redis::shared();
    let ns = redis.namespace("flags");
    let (one, two) = (store_in(&redis, &ns).await, store_in(&redis, &ns).await);
    let mut a = admit(10.0, &[0.1, 0.1]);
    a.choices[0].flag = Some(Arc::from("circuit:m0"));
    let mut set = Admit {
        flags: vec![Flag { name: Arc::from("circuit:m0"), ttl: Duration::from_millis(300) }],
        ..Admit::default()
    };
    one.admit(&set).await.unwrap();
    let blocked = two.admit(&a).await.unwrap();
    assert_eq!(blocked.choice, Some(1));
    assert_eq!(blocked.blocked.len(), 1);
    assert_eq!(blocked.blocked[0].0, 0);
    assert!(blocked.blocked[0].1 > Duration::ZERO && blocked.blocked[0].1 <= Duration::from_millis(300));
    // A shorter flag does not shorten it.
    set.flags[0].ttl = Duration::from_millis(1);
    one.admit(&set).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(two.admit(&a).await.unwrap().choice, Some(1));
    // Once it expires, the choice is taken again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = two.admit(&a).await.unwrap();
    assert_eq!((later.choice, later.blocked.len()), (Some(0), 0));
    // Every choice flagged: nothing is taken, and each is reported.
    set.flags = vec![
        Flag { name: Arc::from("circuit:m0"), ttl: Duration::from_secs(5) },
        Flag { name: Arc::from("circuit:m1"), ttl: Duration::from_secs(5) },
    ];
    one.admit(&set).await.unwrap();
    a.choices[1].flag = Some(Arc::from("circuit:m1"));
    let none = two.admit(&a).await.unwrap();
    assert_eq!((none.choice, none.blocked.len()), (None, 2));
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_settlement_sent_twice_counts_once() {
    let redis = Redis::shared();
    let store = store(&redis, "settle_twice").await;
    let a = admit(1.0, &[0.5]);
    let lease = store.admit(&a).await.unwrap().lease.unwrap();
    let settled = Settlement { lease, actual: smallvec![0.2] };
    store.settle(std::slice::from_ref(&settled)).await.unwrap();
    let mut again = admit(1.0, &[0.1]);
    again.settle = vec![settled];
    let admitted = store.admit(&again).await.unwrap();
    assert!(close(admitted.values[0], 0.3), "{:?}", admitted.values);
}

/// An admission whose reply was lost: the caller named its lease, so it can give the reservation
/// back without knowing which choice was taken; in both stores, and once.
#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_named_lease_is_given_back_by_its_id_alone() {
    let redis = Redis::shared();
    let store = store(&redis, "release_id").await;
    let memory = MemoryStore::new();
    for s in [&store as &dyn StateStore, &memory] {
        let mut a = admit(1.0, &[0.75, 0.25]);
        a.lease_id = Some((1 << 52) + 11);
        let admitted = s.admit(&a).await.unwrap();
        assert_eq!(admitted.lease.as_ref().map(|l| l.id), Some((1 << 52) + 11));
        assert!(close(admitted.values[0], 0.75));
        // Released by id, with a settlement of another admission of the same counter alongside.
        let mut next = admit(1.0, &[0.5]);
        next.settle = vec![Settlement::release_id((1 << 52) + 11)];
        let after = s.admit(&next).await.unwrap();
        assert!(close(after.values[0], 0.5), "{:?}", after.values);
        // Again: nothing left to give back.
        s.settle(&[Settlement::release_id((1 << 52) + 11)]).await.unwrap();
        assert!(close(s.admit(&admit(1.0, &[0.0])).await.unwrap().values[0], 0.5));
        // A lease settled normally is not released by a later id-only settlement.
        let held = after.lease.unwrap();
        s.settle(&[Settlement { lease: held.clone(), actual: smallvec![0.4] }]).await.unwrap();
        s.settle(&[Settlement::release_id(held.id)]).await.unwrap();
        assert!(close(s.admit(&admit(1.0, &[0.0])).await.unwrap().values[0], 0.4));
    }
}

/// Local spending replayed after a call that got no answer (it may have been applied): the batch
/// goes again under its id and is added once, by both stores.
#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_batch_of_unreserved_charges_sent_again_counts_once() {
    let redis = Redis::shared();
    let store = store(&redis, "batch_twice").await;
    let memory = MemoryStore::new();
    let a = admit(10.0, &[0.0]);
    let counter = a.counters[0].clone();
    let batch = Settlement::unreserved_once(42, [(counter.clone(), 0.75)]);
    let other = Settlement::unreserved_once(43, [(counter.clone(), 0.5)]);
    for s in [&store as &dyn StateStore, &memory] {
        s.settle(std::slice::from_ref(&batch)).await.unwrap();
        let mut again = a.clone();
        again.settle = vec![batch.clone(), other.clone(), batch.clone()];
        let admitted = s.admit(&again).await.unwrap();
        assert!(close(admitted.values[0], 1.25), "{:?}", admitted.values);
        // Plain unreserved amounts still add every time.
        s.settle(&[Settlement::unreserved([(counter.clone(), 0.25)])]).await.unwrap();
        s.settle(&[Settlement::unreserved([(counter.clone(), 0.25)])]).await.unwrap();
        assert!(close(s.admit(&a).await.unwrap().values[0], 1.75));
    }
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn an_expired_lease_settled_before_any_admission_still_gives_its_reservation_back() {
    let redis = Redis::shared();
    let store = store(&redis, "expired_settle").await;
    let mut a = admit(1.0, &[0.5]);
    a.lease_ttl = Duration::from_millis(1);
    let lease = store.admit(&a).await.unwrap().lease.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    store.settle(&[Settlement { lease, actual: smallvec![0.25] }]).await.unwrap();
    assert!(close(store.read(&a.counters).await.unwrap()[0], 0.25));
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn counters_expire_ttl_after_creation() {
    let redis = Redis::shared();
    let store = store(&redis, "ttl").await;
    let mut a = admit(1.0, &[0.5]);
    a.counters[0] = Counter::new("rpm:short", Duration::from_millis(30));
    store.admit(&a).await.unwrap();
    assert!(close(store.read(&a.counters).await.unwrap()[0], 0.5));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(store.read(&a.counters).await.unwrap(), vec![0.0]);
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn documents_are_shared_by_stores_of_a_namespace_within_their_bounds() {
    let redis = Redis::shared();
    let ns = redis.namespace("documents");
    let hour = Duration::from_secs(3600);
    let (a, b) = (store_in(&redis, &ns).await, store_in(&redis, &ns).await);
    let (da, db) = (a.documents("kept", hour, 3, 100).unwrap(), b.documents("kept", hour, 3, 100).unwrap());
    assert!(da.put("r1", b"{\"kept\": 1}").await.unwrap());
    assert_eq!(db.get("r1").await.unwrap().as_deref(), Some(&b"{\"kept\": 1}"[..]));
    // Another namespace or set does not see it; a key never kept is none.
    let elsewhere = store(&redis, "documents-elsewhere").await.documents("kept", hour, 3, 100).unwrap();
    assert_eq!(elsewhere.get("r1").await.unwrap(), None);
    assert_eq!(a.documents("other", hour, 3, 100).unwrap().get("r1").await.unwrap(), None);
    assert_eq!(da.get("r2").await.unwrap(), None);
    // It sits under the namespace's document prefix, expiring with the set's time to live.
    let mut con = raw(&redis).await;
    let ttl: i64 = redis::cmd("PTTL").arg(format!("{{{ns}}}:d:kept:r1")).query_async(&mut con).await.unwrap();
    assert!(ttl > 3_590_000 && ttl <= 3_600_000, "{ttl}");
    // Kept again, it is replaced; three at most: a fourth pushes the oldest out, whoever kept it.
    assert!(da.put("r1", b"one").await.unwrap());
    assert_eq!(db.get("r1").await.unwrap().as_deref(), Some(&b"one"[..]));
    for key in ["r2", "r3", "r4"] {
        assert!(db.put(key, b"x").await.unwrap());
    }
    assert_eq!(da.get("r1").await.unwrap(), None);
    assert!(da.get("r2").await.unwrap().is_some());
    assert!(da.get("r3").await.unwrap().is_some() && da.get("r4").await.unwrap().is_some());
    let total = |set: &str| format!("{{{ns}}}:db:{set}");
    let held: String = redis::cmd("GET").arg(total("kept")).query_async(&mut con).await.unwrap();
    assert_eq!(held, "3", "the replaced and the pushed-out documents' bytes were given back");
    // The oldest go first even when kept within one millisecond, whatever their names.
    let burst = a.documents("burst", hour, 2, 100).unwrap();
    for key in ["k3", "k1", "k2"] {
        assert!(burst.put(key, b"x").await.unwrap());
    }
    assert_eq!(burst.get("k3").await.unwrap(), None);
    assert!(burst.get("k1").await.unwrap().is_some() && burst.get("k2").await.unwrap().is_some());
    // 100 bytes together: a third 40 pushes out the first; 101 are not kept and push out nothing.
    let bytes = a.documents("bytes", hour, 10, 100).unwrap();
    for key in ["b1", "b2", "b3"] {
        assert!(bytes.put(key, &[b'y'; 40]).await.unwrap());
    }
    assert_eq!(bytes.get("b1").await.unwrap(), None);
    assert!(bytes.get("b2").await.unwrap().is_some() && bytes.get("b3").await.unwrap().is_some());
    assert!(!bytes.put("huge", &[b'z'; 101]).await.unwrap());
    assert_eq!(bytes.get("huge").await.unwrap(), None);
    assert!(bytes.get("b2").await.unwrap().is_some());
    let held: String = redis::cmd("GET").arg(total("bytes")).query_async(&mut con).await.unwrap();
    assert_eq!(held, "80");
    // Deleted once, it is gone and its bytes are given back; a second delete finds nothing.
    assert!(bytes.delete("b2").await.unwrap());
    assert!(!bytes.delete("b2").await.unwrap());
    assert_eq!(bytes.get("b2").await.unwrap(), None);
    let held: String = redis::cmd("GET").arg(total("bytes")).query_async(&mut con).await.unwrap();
    assert_eq!(held, "40");
    // A document expires with its time to live; the next put sweeps it out of the count and the
    // bytes. The bookkeeping lives as long as the longest-lived document.
    let short = a.documents("short", Duration::from_secs(1), 5, 100).unwrap();
    assert!(short.put("s1", b"xx").await.unwrap());
    assert!(short.get("s1").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(short.get("s1").await.unwrap(), None);
    assert!(short.put("s2", b"x").await.unwrap());
    let left: i64 = redis::cmd("ZCARD").arg(format!("{{{ns}}}:di:short")).query_async(&mut con).await.unwrap();
    assert_eq!(left, 1);
    let held: String = redis::cmd("GET").arg(total("short")).query_async(&mut con).await.unwrap();
    assert_eq!(held, "1");
    let longer = a.documents("short", hour, 5, 100).unwrap();
    assert!(longer.put("s3", b"x").await.unwrap());
    assert!(short.put("s4", b"x").await.unwrap());
    let ttl: i64 = redis::cmd("PTTL").arg(total("short")).query_async(&mut con).await.unwrap();
    assert!(ttl > 3_590_000, "a shorter time to live did not cut the bookkeeping short: {ttl}");
    // Bad names and a zero time to live are refused.
    for bad in ["", "a:b", "{x}"] {
        assert_eq!(a.documents(bad, hour, 1, 1).unwrap_err().kind(), ErrorKind::Config, "{bad:?}");
    }
    assert_eq!(a.documents("kept", Duration::ZERO, 1, 1).unwrap_err().kind(), ErrorKind::Config);
    assert_eq!(a.documents("kept", Duration::MAX, 1, 1).unwrap_err().kind(), ErrorKind::Config);
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn idle_counters_live_while_admissions_list_or_change_them() {
    let redis = Redis::shared();
    let store = store(&redis, "idle").await;
    let ttl = Duration::from_millis(300);
    let (idle, fixed) = (Counter::idle("exp:e:a:routed", ttl), Counter::new("exp:e:b:routed", ttl));
    store.settle(&[Settlement::unreserved([(idle.clone(), 1.0), (fixed.clone(), 1.0)])]).await.unwrap();
    // Listed by admissions (as every sync of shared learning lists its counters) more often than
    // `ttl`: the idle counter outlives its ttl, the other does not.
    let listing = Admit { counters: vec![idle.clone(), fixed.clone()], ..Admit::default() };
    let started = Instant::now();
    while started.elapsed() < ttl * 2 {
        store.admit(&listing).await.unwrap();
        tokio::time::sleep(ttl / 6).await;
    }
    assert_eq!(store.read(&[idle.clone(), fixed.clone()]).await.unwrap(), vec![1.0, 0.0]);
    // A change starts its time again as well; left alone, it expires.
    let started = Instant::now();
    while started.elapsed() < ttl * 2 {
        store.settle(&[Settlement::unreserved([(idle.clone(), 1.0)])]).await.unwrap();
        tokio::time::sleep(ttl / 6).await;
    }
    assert!(store.read(std::slice::from_ref(&idle)).await.unwrap()[0] > 2.0);
    tokio::time::sleep(ttl + ttl / 2).await;
    assert_eq!(store.read(&[idle]).await.unwrap(), vec![0.0]);
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn sticky_choice_goes_first_while_it_fits() {
    let redis = Redis::shared();
    let store = store(&redis, "sticky").await;
    let mut a = admit(1.0, &[0.1, 0.1]);
    a.sticky = Some(Sticky { key: Arc::from("sticky:conv"), ttl: Duration::from_secs(60) });
    let first = store.admit(&a).await.unwrap();
    assert_eq!((first.choice, first.sticky_hit), (Some(0), false));
    a.choices.reverse();
    let second = store.admit(&a).await.unwrap();
    assert_eq!(a.choices[second.choice.unwrap()].label.as_ref(), "m0");
    assert!(second.sticky_hit);
    // When the sticky choice no longer fits, the next one is taken and becomes sticky.
    a.choices[1].checks[0].limit = 0.0;
    let third = store.admit(&a).await.unwrap();
    assert_eq!((third.choice, third.sticky_hit), (Some(0), false));
    assert_eq!(a.choices[0].label.as_ref(), "m1");
    a.choices[1].checks[0].limit = 1.0;
    let fourth = store.admit(&a).await.unwrap();
    assert_eq!((fourth.choice, fourth.sticky_hit), (Some(0), true));
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn sliding_window_weights_the_previous_bucket() {
    let redis = Redis::shared();
    let store = store(&redis, "sliding").await;
    let counters = vec![Counter::new("rpm:m:0", Duration::ZERO), Counter::new("rpm:m:1", Duration::ZERO)];
    let first = store
        .admit(&Admit {
            counters: counters.clone(),
            choices: vec![Choice {
                label: Arc::from("m"),
                charges: smallvec![(0, 10.0)],
                checks: smallvec![],
                flag: None,
            }],
            // A live lease: an expired one would give its 10 back at the next admission.
            lease_ttl: Duration::from_secs(60),
            ..Admit::default()
        })
        .await
        .unwrap();
    assert!(first.lease.is_some());
    let check = Check { terms: smallvec![(0, 0.5), (1, 1.0)], limit: 6.5, soft: false };
    let choice = Choice { label: Arc::from("m"), charges: smallvec![(1, 1.0)], checks: smallvec![check], flag: None };
    let a = Admit { counters, choices: vec![choice], lease_ttl: Duration::from_secs(60), ..Admit::default() };
    assert_eq!(store.admit(&a).await.unwrap().choice, Some(0), "5 + 1 ≤ 6.5");
    assert_eq!(store.admit(&a).await.unwrap().choice, None, "5 + 2 > 6.5");
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn infinite_limits_and_no_checks_always_fit() {
    let redis = Redis::shared();
    let store = store(&redis, "inf").await;
    let a = admit(f64::INFINITY, &[1e300]);
    assert_eq!(store.admit(&a).await.unwrap().choice, Some(0));
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn bad_indices_are_an_error_not_a_panic() {
    let redis = Redis::shared();
    let store = store(&redis, "bad").await;
    let mut a = admit(1.0, &[0.5]);
    a.choices[0].charges[0].0 = 7;
    assert_eq!(store.admit(&a).await.unwrap_err().kind(), ErrorKind::Routing);
    let mut a = admit(1.0, &[0.5]);
    a.choices[0].charges[0].1 = f64::NAN;
    assert!(store.admit(&a).await.is_err());
}

/// The differential test's draws: the crate's stable `uniform` over a counter, so the sequence is
/// the same on every run.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 += 1;
        switchyard::uniform(None, self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((self.unit() * n as f64) as u64).min(n.saturating_sub(1))
    }
}

/// Both stores add in doubles, in the same order: their values are equal, not just close.
#[tokio::test]
#[ignore = "needs redis-server"]
async fn same_sequence_same_choices_and_values_as_memory_store() {
    let redis = Redis::shared();
    let store = store(&redis, "differential").await;
    let memory = MemoryStore::new();
    let mut rng = Rng(0x5EED);
    let counters: Vec<Counter> = (0..4).map(|i| Counter::new(format!("c:{i}"), Duration::from_secs(3600))).collect();
    let labels = ["a", "b", "c", "d"];
    // Leases of both stores, side by side.
    let mut open: Vec<(Lease, Lease)> = Vec::new();
    let (mut taken, mut refused, mut hits) = (0, 0, 0);
    for step in 0..300 {
        let mut settle_m = Vec::new();
        let mut settle_r = Vec::new();
        for _ in 0..rng.below(3) {
            if open.is_empty() {
                break;
            }
            let (m, r) = open.swap_remove(rng.below(open.len() as u64) as usize);
            let actual: smallvec::SmallVec<[f64; 4]> = m
                .charges
                .iter()
                .map(|(_, reserved)| if rng.below(3) == 0 { 0.0 } else { reserved * rng.unit() * 1.5 })
                .collect();
            if rng.below(4) == 0 {
                // Given back by id alone, as after a lost reply.
                settle_m.push(Settlement::release_id(m.id));
                settle_r.push(Settlement::release_id(r.id));
            } else {
                settle_m.push(Settlement { lease: m, actual: actual.clone() });
                settle_r.push(Settlement { lease: r, actual });
            }
        }
        if rng.below(10) == 0 {
            let extra = Settlement::unreserved([(counters[rng.below(4) as usize].clone(), rng.unit())]);
            settle_m.push(extra.clone());
            settle_r.push(extra);
        }
        if rng.below(5) == 0 {
            memory.settle(&settle_m).await.unwrap();
            store.settle(&settle_r).await.unwrap();
            settle_m.clear();
            settle_r.clear();
        }
        let choices = (0..1 + rng.below(4))
            .map(|i| {
                let charges = (0..1 + rng.below(2)).map(|_| (rng.below(4) as u32, rng.unit() * 2.0)).collect();
                let checks = (0..rng.below(3))
                    .map(|_| Check {
                        terms: (0..1 + rng.below(2)).map(|_| (rng.below(4) as u32, 0.25 + rng.unit())).collect(),
                        limit: 2.0 + rng.unit() * 20.0,
                        soft: rng.below(3) == 0,
                    })
                    .collect();
                Choice { label: Arc::from(labels[i as usize]), charges, checks, flag: None }
            })
            .collect();
        let sticky = (rng.below(3) == 0)
            .then(|| Sticky { key: Arc::from(format!("s:{}", rng.below(3))), ttl: Duration::from_secs(60) });
        let mut a = Admit {
            counters: counters.clone(),
            choices,
            lease_ttl: Duration::from_secs(60),
            sticky,
            settle: settle_m,
            flags: Vec::new(),
            // Half the leases named by the caller, the same in both stores.
            lease_id: (rng.below(2) == 0).then_some((1 << 52) + step),
        };
        let m = memory.admit(&a).await.unwrap();
        a.settle = settle_r;
        let r = store.admit(&a).await.unwrap();
        assert_eq!(m.choice, r.choice, "step {step}");
        assert_eq!(m.sticky_hit, r.sticky_hit, "step {step}");
        match m.choice {
            Some(_) => taken += 1,
            None => refused += 1,
        }
        hits += usize::from(m.sticky_hit);
        for (x, y) in m.values.iter().zip(&r.values) {
            assert_eq!(x, y, "step {step}: memory {x}, redis {y}");
        }
        if let (Some(ml), Some(rl)) = (m.lease, r.lease) {
            assert_eq!(ml.charges, rl.charges);
            open.push((ml, rl));
        }
        let (mv, rv) = (memory.read(&counters).await.unwrap(), store.read(&counters).await.unwrap());
        for (x, y) in mv.iter().zip(&rv) {
            assert_eq!(x, y, "step {step}: memory {x}, redis {y}");
        }
    }
    assert!(taken > 30 && refused > 30 && hits > 5, "the sequence exercises every outcome: {taken} {refused} {hits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn concurrent_admissions_never_exceed_the_limit() {
    let redis = Redis::shared();
    let store = store(&redis, "concurrent").await;
    let a = Arc::new(admit(100.0, &[1.0]));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, a) = (store.clone(), a.clone());
        tasks.spawn(async move {
            let mut leases = Vec::new();
            for _ in 0..64 {
                if let Some(lease) = store.admit(&a).await.unwrap().lease {
                    leases.push(lease);
                }
            }
            leases
        });
    }
    let mut leases = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        leases.extend(joined.unwrap());
    }
    assert_eq!(leases.len(), 100, "512 tries at 1.0 each against a limit of 100");
    let ids: std::collections::HashSet<_> = leases.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), leases.len(), "lease ids are unique");
    assert!(store.read(&a.counters).await.unwrap()[0] <= 100.0 + 1e-9);
    let releases: Vec<Settlement> = leases.into_iter().map(Settlement::release).collect();
    store.settle(&releases).await.unwrap();
    assert!(store.read(&a.counters).await.unwrap()[0].abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn calls_fail_fast_while_the_server_is_down_and_recover_when_it_is_back() {
    let mut redis = Redis::owned();
    let config = RedisConfig::new()
        .with_namespace(redis.namespace("fault"))
        .with_connection_timeout(Duration::from_millis(250))
        .with_response_timeout(Duration::from_millis(100));
    let bound = Duration::from_millis(350 + 500);
    let store = RedisStore::connect(redis.url(), config).await.unwrap();
    let a = admit(10.0, &[1.0]);
    assert_eq!(store.admit(&a).await.unwrap().choice, Some(0));

    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let err = store.admit(&a).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store, "{err}");
        assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
        let err = store.read(&a.counters).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    }

    assert!(redis.start(), "restart on the same port");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.admit(&a).await {
            Ok(admitted) => {
                // The restarted server kept nothing.
                assert_eq!(admitted.values, vec![1.0]);
                break;
            }
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::Store);
                assert!(Instant::now() < deadline, "still failing after the restart: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(store.read(&a.counters).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn a_lazy_store_starts_while_the_server_is_down() {
    let mut redis = Redis::owned();
    let config = RedisConfig::new().with_namespace(redis.namespace("lazy"));
    redis.stop();
    assert_eq!(RedisStore::connect(redis.url(), config.clone()).await.unwrap_err().kind(), ErrorKind::Store);
    let store = RedisStore::lazy(redis.url(), config).unwrap();
    let started = Instant::now();
    let err = store.read(&[Counter::new("x", Duration::ZERO)]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(started.elapsed() < Duration::from_millis(850), "took {:?}", started.elapsed());
    assert!(redis.start());
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.read(&[Counter::new("x", Duration::ZERO)]).await.is_err() {
        assert!(Instant::now() < deadline, "still failing after the server came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn errors_carry_no_password() {
    let err = RedisStore::lazy("redis://:hunter2@[::1", RedisConfig::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(!format!("{err} {err:?}").contains("hunter2"));
    let err = RedisStore::lazy("redis://127.0.0.1:1", RedisConfig::new().with_namespace("")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let store = RedisStore::lazy("redis://:hunter2@127.0.0.1:1", RedisConfig::new()).unwrap();
    assert!(!format!("{store:?}").contains("hunter2"));
    let err = store.read(&[Counter::new("x", Duration::ZERO)]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn an_admission_without_choices_adds_and_reads_thousands_of_counters() {
    // What a sync of shared learning sends: many additions and reads, no candidates.
    let redis = Redis::shared();
    let store = store(&redis, "many").await;
    let counters: Vec<Counter> = (0..9_000).map(|i| Counter::new(format!("sum:{i}"), Duration::ZERO)).collect();
    let adds = counters.iter().enumerate().filter(|(i, _)| i % 3 == 0).map(|(i, c)| (c.clone(), i as f64));
    let admit = Admit { counters: counters.clone(), settle: vec![Settlement::unreserved(adds)], ..Admit::default() };
    let admitted = store.admit(&admit).await.unwrap();
    assert_eq!((admitted.choice, admitted.lease), (None, None));
    assert_eq!(admitted.values.len(), 9_000);
    for (i, v) in admitted.values.iter().enumerate() {
        assert_eq!(*v, if i % 3 == 0 { i as f64 } else { 0.0 }, "counter {i}");
    }
    let memory = MemoryStore::new();
    assert_eq!(memory.admit(&admit).await.unwrap().values, admitted.values);
}

/// A raw connection to the server, for what the store API does not reach (its keys, the script
/// cache).
async fn raw(redis: &Redis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn amounts_round_trip_exactly_through_reserve_settle_sweep_and_read() {
    let redis = Redis::shared();
    for (n, x) in [0.1, 1.0 / 3.0, 1e-300, 1e300, 0.1 + 0.2, 123_456.789_012_345_68].into_iter().enumerate() {
        let store = store(&redis, &format!("exact_{n}")).await;
        let mut a = admit(f64::INFINITY, &[x]);
        let first = store.admit(&a).await.unwrap();
        assert_eq!(first.values, [x], "{x:e}");
        assert_eq!(store.read(&a.counters).await.unwrap(), [x], "{x:e}");
        // Settled at what was reserved: nothing changes.
        let lease = first.lease.unwrap();
        store.settle(&[Settlement { lease, actual: smallvec![x] }]).await.unwrap();
        assert_eq!(store.read(&a.counters).await.unwrap(), [x], "{x:e}");
        // A second reservation, released: back to exactly x.
        let second = store.admit(&a).await.unwrap();
        assert_eq!(second.values, [x + x], "{x:e}");
        store.settle(&[Settlement::release(second.lease.unwrap())]).await.unwrap();
        assert_eq!(store.read(&a.counters).await.unwrap(), [x], "{x:e}");
        // A reservation that expires is given back exactly by the sweep; its late settlement adds
        // the actual amount.
        a.lease_ttl = Duration::from_millis(1);
        let third = store.admit(&a).await.unwrap().lease.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let sweep = store.admit(&Admit { counters: a.counters.clone(), ..Admit::default() }).await.unwrap();
        assert_eq!(sweep.values, [x], "{x:e}");
        store.settle(&[Settlement { lease: third, actual: smallvec![x / 4.0] }]).await.unwrap();
        assert_eq!(store.read(&a.counters).await.unwrap(), [x + x / 4.0], "{x:e}");
    }
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_settlement_of_a_lease_swept_more_than_a_day_ago_adds_nothing() {
    let redis = Redis::shared();
    let ns = redis.namespace("swept_day");
    let store = store_in(&redis, &ns).await;
    let mut a = admit(10.0, &[1.0]);
    a.lease_ttl = Duration::from_millis(1);
    let (old, recent) = (store.admit(&a).await.unwrap().lease.unwrap(), store.admit(&a).await.unwrap().lease.unwrap());
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Both are swept; then one of them is made to look swept a day and a minute ago.
    assert_eq!(store.admit(&Admit { counters: a.counters.clone(), ..Admit::default() }).await.unwrap().values, [0.0]);
    let mut con = raw(&redis).await;
    let swept = format!("{{{ns}}}:leases:swept");
    let score: f64 = redis::cmd("ZSCORE").arg(&swept).arg(old.id).query_async(&mut con).await.unwrap();
    let () = redis::cmd("ZADD").arg(&swept).arg(score - 86_460_000.0).arg(old.id).query_async(&mut con).await.unwrap();
    store.settle(&[Settlement { lease: old, actual: smallvec![0.5] }]).await.unwrap();
    assert_eq!(store.read(&a.counters).await.unwrap(), [0.0], "forgotten after a day: nothing is added");
    store.settle(&[Settlement { lease: recent.clone(), actual: smallvec![0.25] }]).await.unwrap();
    assert_eq!(store.read(&a.counters).await.unwrap(), [0.25]);
    store.settle(&[Settlement { lease: recent, actual: smallvec![0.25] }]).await.unwrap();
    assert_eq!(store.read(&a.counters).await.unwrap(), [0.25], "once");
    let left: i64 = redis::cmd("ZCARD").arg(&swept).query_async(&mut con).await.unwrap();
    assert_eq!(left, 0, "settled ids leave the set of swept leases");
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_lease_written_in_the_earlier_text_format_is_swept() {
    // Leases kept their layout (a JSON array of counter keys and decimal amounts): a lease written
    // by an earlier version of the script is given back by this one.
    let redis = Redis::shared();
    let ns = redis.namespace("old_lease");
    let store = store_in(&redis, &ns).await;
    let a = admit(10.0, &[1.5]);
    store.admit(&a).await.unwrap();
    let mut con = raw(&redis).await;
    let record = format!("[\"{{{ns}}}:c:budget:global:day:1\",\"0.5\"]");
    let () =
        redis::cmd("HSET").arg(format!("{{{ns}}}:lease")).arg("999").arg(record).query_async(&mut con).await.unwrap();
    let () = redis::cmd("ZADD").arg(format!("{{{ns}}}:leases")).arg(1).arg("999").query_async(&mut con).await.unwrap();
    let after = store.admit(&Admit { counters: a.counters.clone(), ..Admit::default() }).await.unwrap();
    assert_eq!(after.values, [1.0]);
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn counters_listed_twice_are_one_counter() {
    let redis = Redis::shared();
    let store = store(&redis, "twice").await;
    let memory = MemoryStore::new();
    let day = Duration::from_secs(3600);
    let mut a = admit(2.0, &[0.75]);
    a.counters.push(Counter::new("budget:global:day:1", day));
    a.choices[0].charges.push((1, 0.5));
    a.choices[0].checks.push(Check { terms: smallvec![(1, 1.0)], limit: 2.0, soft: false });
    // Each admission adds 0.75 + 0.5 to the one counter: the third would exceed 2 on index 0.
    for expected in [Some(0), Some(0), None] {
        let (m, r) = (memory.admit(&a).await.unwrap(), store.admit(&a).await.unwrap());
        assert_eq!((m.choice, r.choice), (expected, expected));
        assert_eq!(memory.read(&a.counters).await.unwrap(), store.read(&a.counters).await.unwrap());
    }
    assert_eq!(store.read(&a.counters).await.unwrap(), [2.5, 2.5]);
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn the_script_is_loaded_again_when_the_server_lost_it() {
    // A server of its own: flushing the script cache must not disturb other tests.
    let redis = Redis::owned();
    let store = store(&redis, "noscript").await;
    let a = admit(10.0, &[1.0]);
    assert_eq!(store.admit(&a).await.unwrap().choice, Some(0));
    let mut con = raw(&redis).await;
    let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut con).await.unwrap();
    let again = store.admit(&a).await.unwrap();
    assert_eq!((again.choice, again.values), (Some(0), vec![2.0]));
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_counter_that_is_not_a_number_is_an_error_not_a_panic() {
    let redis = Redis::shared();
    let ns = redis.namespace("nan");
    let store = store_in(&redis, &ns).await;
    let mut con = raw(&redis).await;
    let () =
        redis::cmd("SET").arg(format!("{{{ns}}}:c:budget:global:day:1")).arg("x").query_async(&mut con).await.unwrap();
    let a = admit(10.0, &[1.0]);
    assert_eq!(store.admit(&a).await.unwrap_err().kind(), ErrorKind::Store);
    assert_eq!(store.read(&a.counters).await.unwrap_err().kind(), ErrorKind::Store);
    // A sum that is no longer finite is refused as `INCRBYFLOAT` refused it.
    let big = admit(f64::INFINITY, &[f64::MAX]);
    let store = self::store(&redis, "overflow").await;
    store.admit(&big).await.unwrap();
    assert_eq!(store.admit(&big).await.unwrap_err().kind(), ErrorKind::Store);
    assert_eq!(store.read(&big.counters).await.unwrap(), [f64::MAX]);
}
