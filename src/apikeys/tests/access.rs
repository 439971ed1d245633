//! The platform's access rules on keys: scopes and allowlists given at
//! creation, disable/enable, `check` (the verify route's domain half), and
//! their replay and snapshot round trips.

use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn restricted(name: &str) -> CreateKey {
    CreateKey {
        name: Some(name.into()),
        access: KeyAccess {
            meta: Some(r#"{"team":"ml"}"#.into()),
            ..restricted_access()
        },
        ..CreateKey::default()
    }
}

fn restricted_access() -> KeyAccess {
    KeyAccess::from_request(
        Some(&["pool:read".into(), "billing.read".into()]),
        None,
        Some(&["10.0.0.0/8".into(), "2001:db8::/32".into()]),
    )
    .unwrap()
}

#[test]
fn a_restricted_key_is_logged_with_its_access_and_enforced() {
    let k = keys();
    let (log, mut emit) = recorder();
    let plain = k.create(ALICE, named("plain"), T0, &mut emit).unwrap();
    let r = k.create(ALICE, restricted("r"), T0, &mut emit).unwrap();
    let log = log.lock().clone();
    assert!(
        matches!(log[0], ApiKeyEvent::Created { .. }),
        "default access: first-round event"
    );
    assert!(
        matches!(&log[1], ApiKeyEvent::CreatedWith { access, .. } if access.custom == ["billing.read"])
    );

    assert_eq!(
        k.verify(&plain.key, LOCAL, T0).unwrap().scopes,
        ScopeSet::DEFAULT
    );
    assert_eq!(
        k.verify(&r.key, LOCAL, T0),
        Err(KeyAuthError::AddressRefused)
    );
    let auth = k.verify(&r.key, ip("10.1.2.3"), T0).unwrap();
    assert!(auth.scopes.has(Scope::PoolRead) && !auth.scopes.has(Scope::PoolWrite));
    assert!(k.verify(&r.key, ip("::ffff:10.1.2.3"), T0).is_ok());
    assert!(k.verify(&r.key, ip("2001:db8:5::1"), T0).is_ok());
    let item = k
        .list(ALICE, T0)
        .into_iter()
        .find(|v| v.key_id == r.key_id)
        .unwrap();
    assert_eq!(item.scopes, ["pool:read", "billing.read"]);
    assert_eq!(item.allowed_ips, ["10.0.0.0/8", "2001:db8::/32"]);
    assert_eq!(item.meta.as_deref(), Some(r#"{"team":"ml"}"#));
    assert_eq!(item.usage_count, 3, "refused uses are not counted");
}

#[test]
fn disable_and_enable_only_the_owners_key() {
    let k = keys();
    let (log, mut emit) = recorder();
    let a = k.create(ALICE, named("a"), T0, &mut emit).unwrap();
    assert_eq!(
        k.set_disabled(BOB, a.key_id, true, &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert_eq!(
        k.set_disabled(ALICE, Uuid::new_v4(), true, &mut emit),
        Err(ApiKeyError::NotFound)
    );
    k.set_disabled(ALICE, a.key_id, true, &mut emit).unwrap();
    k.set_disabled(ALICE, a.key_id, true, &mut emit).unwrap();
    assert_eq!(log.lock().len(), 2, "disabling a disabled key logs nothing");
    assert_eq!(k.verify(&a.key, LOCAL, T0), Err(KeyAuthError::Disabled));
    assert!(k.list(ALICE, T0)[0].disabled);
    k.set_disabled(ALICE, a.key_id, false, &mut emit).unwrap();
    assert!(k.verify(&a.key, LOCAL, T0).is_ok());
    assert!(!k.list(ALICE, T0)[0].disabled);
}

#[test]
fn check_gives_each_status_and_counts_live_uses() {
    let k = keys();
    let (_, mut emit) = recorder();
    let r = k.create(ALICE, restricted("r"), T0, &mut emit).unwrap();
    let expiring = k
        .create(
            ALICE,
            CreateKey {
                expires_in: Some(60),
                ..named("e")
            },
            T0,
            &mut emit,
        )
        .unwrap();
    let revoked = k.create(ALICE, named("x"), T0, &mut emit).unwrap();
    k.revoke(ALICE, &revoked.key, T0, &mut emit).unwrap();
    let disabled = k.create(ALICE, named("d"), T0, &mut emit).unwrap();
    k.set_disabled(ALICE, disabled.key_id, true, &mut emit)
        .unwrap();
    let bobs = k.create(BOB, named("b"), T0, &mut emit).unwrap();

    let status = |key: &str, scope: Option<&str>, now| k.check(ALICE, key, scope, now).status;
    let live = |has_scope| KeyStatus::Live { has_scope };
    // The allowlist is not the verifier's business: it is not the key's user.
    assert_eq!(status(&r.key, None, T0), live(true));
    assert_eq!(status(&r.key, Some("billing.read"), T0), live(true));
    assert_eq!(status(&r.key, Some("pool:read"), T0), live(true));
    assert_eq!(status(&r.key, Some("pool:write"), T0), live(false));
    assert_eq!(status(&r.key, Some("billing.write"), T0), live(false));
    assert_eq!(status(&expiring.key, None, T0 + 60_000), KeyStatus::Expired);
    assert_eq!(status(&revoked.key, None, T0), KeyStatus::Revoked);
    assert_eq!(status(&disabled.key, None, T0), KeyStatus::Disabled);
    assert_eq!(
        status(&bobs.key, None, T0),
        KeyStatus::NotFound,
        "another account's"
    );
    assert_eq!(status("sk_live_nope", None, T0), KeyStatus::NotFound);
    assert_eq!(status(&generate_key(), None, T0), KeyStatus::NotFound);

    let c = k.check(ALICE, &r.key, None, T0);
    let key = c.key.unwrap();
    assert_eq!((key.key_id, key.name.as_deref()), (r.key_id, Some("r")));
    assert_eq!(key.scopes, ["pool:read", "billing.read"]);
    assert_eq!(key.meta.as_deref(), Some(r#"{"team":"ml"}"#));
    assert!(k.check(ALICE, &bobs.key, None, T0).key.is_none());
    let uses = |id| {
        k.list(ALICE, T0)
            .into_iter()
            .find(|v| v.key_id == id)
            .unwrap()
            .usage_count
    };
    assert_eq!(
        uses(r.key_id),
        6,
        "live checks count, with the scope or without"
    );
    assert_eq!(uses(disabled.key_id), 0);
}

#[test]
fn access_survives_replay_and_snapshots() {
    let k = keys();
    let (log, mut emit) = recorder();
    let r = k.create(ALICE, restricted("r"), T0, &mut emit).unwrap();
    let p = k.create(ALICE, named("p"), T0 + 1, &mut emit).unwrap();
    k.set_disabled(ALICE, p.key_id, true, &mut emit).unwrap();
    let q = k
        .replace_primary(
            BOB,
            None,
            KeyAccess::from_request(None, Some("worker"), None).unwrap(),
            T0 + 2,
            &mut emit,
        )
        .unwrap();
    k.set_disabled(ALICE, r.key_id, true, &mut emit).unwrap();
    k.set_disabled(ALICE, r.key_id, false, &mut emit).unwrap();
    let want = k.image_full();
    assert_eq!(
        want.1.access.len(),
        3,
        "only keys with other than the default"
    );
    let log = log.lock().clone();

    let replayed = keys();
    for e in log.iter().chain(&log) {
        replayed.apply(e);
    }
    assert_eq!(replayed.image_full(), want);
    for start in 0..log.len() {
        let s = ApiKeys::restore_full(k.config().clone(), want.0.clone(), want.1.clone());
        for e in &log[start..] {
            s.apply(e);
        }
        assert_eq!(s.image_full(), want, "suffix from {start}");
    }
    let s = ApiKeys::restore_full(k.config().clone(), want.0.clone(), want.1.clone());
    assert_eq!(
        s.verify(&r.key, LOCAL, T0),
        Err(KeyAuthError::AddressRefused)
    );
    assert_eq!(s.verify(&p.key, LOCAL, T0), Err(KeyAuthError::Disabled));
    let bob = s.verify(&q.key, LOCAL, T0).unwrap();
    assert_eq!(bob.scopes, Role::Worker.scopes());
    // A snapshot of the second round has no access rules: defaults.
    let old = ApiKeys::restore(k.config().clone(), want.0.clone());
    assert_eq!(
        old.verify(&p.key, LOCAL, T0).unwrap().scopes,
        ScopeSet::DEFAULT
    );
}
