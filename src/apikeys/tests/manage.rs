//! Managing keys: revoke by id or prefix, delete by name, the list, and the
//! primary key of seed 003, each only among the caller's own keys.

use super::*;

#[test]
fn revoke_by_key_id_or_prefix_only_among_the_callers_keys() {
    let k = keys();
    let (log, mut emit) = recorder();
    let by_key = k.create(ALICE, named("1"), T0, &mut emit).unwrap();
    let by_id = k.create(ALICE, named("2"), T0, &mut emit).unwrap();
    let by_prefix = k.create(ALICE, named("3"), T0, &mut emit).unwrap();
    let bobs = k.create(BOB, named("1"), T0, &mut emit).unwrap();

    // Bob cannot revoke Alice's keys by any selector, and nothing changes.
    let n = log.lock().len();
    for sel in [
        by_key.key.clone(),
        by_key.key_id.to_string(),
        by_key.key_prefix.clone(),
    ] {
        assert_eq!(
            k.revoke(BOB, &sel, T0, &mut emit),
            Err(ApiKeyError::NotFound),
            "{sel}"
        );
    }
    // Nor can someone with no keys at all, nor garbage.
    assert_eq!(
        k.revoke(AccountId(9), &by_key.key, T0, &mut emit),
        Err(ApiKeyError::NotFound)
    );
    for sel in ["", "nonsense", "sk_live_", &Uuid::new_v4().to_string()] {
        assert_eq!(
            k.revoke(ALICE, sel, T0, &mut emit),
            Err(ApiKeyError::NotFound)
        );
    }
    assert_eq!(log.lock().len(), n);
    assert!(k.verify(&by_key.key, LOCAL, T0).is_ok());

    assert_eq!(
        k.revoke(ALICE, &by_key.key, T0 + 1, &mut emit),
        Ok(by_key.key_id)
    );
    assert_eq!(
        k.revoke(ALICE, &by_id.key_id.to_string(), T0 + 1, &mut emit),
        Ok(by_id.key_id)
    );
    assert_eq!(
        k.revoke(ALICE, &by_prefix.key_prefix, T0 + 1, &mut emit),
        Ok(by_prefix.key_id)
    );
    for key in [&by_key.key, &by_id.key, &by_prefix.key] {
        assert_eq!(k.verify(key, LOCAL, T0 + 1), Err(KeyAuthError::Revoked));
    }
    assert!(k.verify(&bobs.key, LOCAL, T0 + 1).is_ok());
    // Again: fine, and logs nothing more.
    let n = log.lock().len();
    assert_eq!(
        k.revoke(ALICE, &by_key.key, T0 + 2, &mut emit),
        Ok(by_key.key_id)
    );
    assert_eq!(log.lock().len(), n);
    let v = k.list(ALICE, T0 + 2);
    assert!(v.iter().all(|v| v.revoked && v.revoked_at == Some(T0 + 1)));
}

fn fake_record(owner: AccountId, prefix: &str, created_at: Millis) -> KeyRecord {
    let key = generate_key();
    KeyRecord {
        key_id: Uuid::new_v4(),
        owner,
        name: None,
        hash: key_hash(&key),
        prefix: prefix.into(),
        created_at,
        expires_at: None,
        rate_limit: None,
        revoked_at: None,
        primary: false,
        usage: KeyUsage::default(),
    }
}

#[test]
fn an_ambiguous_prefix_revokes_nothing() {
    let k = keys();
    let (_, mut emit) = recorder();
    // Two keys sharing a display prefix (1 in 14.8 million per pair): made
    // by hand.
    let a = fake_record(ALICE, "sk_live_Same", T0);
    let b = fake_record(ALICE, "sk_live_Same", T0 + 1);
    for r in [&a, &b] {
        k.apply(&ApiKeyEvent::Created {
            record: Box::new(r.clone()),
            revokes: None,
        });
    }
    assert_eq!(
        k.revoke(ALICE, "sk_live_Same", T0, &mut emit),
        Err(ApiKeyError::AmbiguousPrefix)
    );
    assert!(k.list(ALICE, T0).iter().all(|v| !v.revoked));
    // Once one is revoked by id, the prefix names the other.
    k.revoke(ALICE, &a.key_id.to_string(), T0, &mut emit)
        .unwrap();
    assert_eq!(k.revoke(ALICE, "sk_live_Same", T0, &mut emit), Ok(b.key_id));
}

#[test]
fn delete_by_name_is_the_callers_only() {
    let k = keys();
    let (_, mut emit) = recorder();
    let alices = k.create(ALICE, named("dev1"), T0, &mut emit).unwrap();
    let bobs = k.create(BOB, named("dev2"), T0, &mut emit).unwrap();
    assert_eq!(
        k.delete_by_name(ALICE, "dev2", &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert_eq!(
        k.delete_by_name(AccountId(9), "dev2", &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert!(k.verify(&bobs.key, LOCAL, T0).is_ok());
    assert_eq!(k.delete_by_name(ALICE, "dev1", &mut emit), Ok(1));
    assert_eq!(
        k.delete_by_name(ALICE, "dev1", &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert_eq!(k.verify(&alices.key, LOCAL, T0), Err(KeyAuthError::Unknown));
    assert!(k.list(ALICE, T0).is_empty());
    // The name is free again.
    assert!(k.create(ALICE, named("dev1"), T0, &mut emit).is_ok());
}

#[test]
fn list_is_newest_first_with_revoked_keys_and_thirty_days() {
    let k = keys();
    let (_, mut emit) = recorder();
    let old = k.create(ALICE, named("old"), T0, &mut emit).unwrap();
    let new = k.create(ALICE, named("new"), T0 + 1, &mut emit).unwrap();
    k.create(BOB, named("bob"), T0 + 2, &mut emit).unwrap();
    k.revoke(ALICE, &old.key_prefix, T0 + 3, &mut emit).unwrap();
    let v = k.list(ALICE, T0 + 3);
    assert_eq!(
        v.iter().map(|v| v.key_id).collect::<Vec<_>>(),
        vec![new.key_id, old.key_id]
    );
    assert!(v[1].revoked && !v[0].revoked);
    assert_eq!(v[0].name.as_deref(), Some("new"));
    assert_eq!(v[0].key_prefix, new.key_prefix);
    for item in &v {
        assert_eq!(item.usage_by_day.len(), 30);
        assert_eq!(item.usage_by_day[29].day, "2026-11-22");
        assert_eq!(item.usage_by_day[0].day, "2026-10-24");
    }
    assert!(k.list(AccountId(9), T0).is_empty());
}

#[test]
fn primary_key_is_replaced_and_revoked() {
    let k = keys();
    let (log, mut emit) = recorder();
    assert_eq!(k.primary(ALICE, T0), None);
    assert_eq!(
        k.revoke_primary(ALICE, T0, &mut emit),
        Err(ApiKeyError::NotFound)
    );
    // An ordinary key is not the primary one.
    k.create(ALICE, named("other"), T0, &mut emit).unwrap();
    assert_eq!(k.primary(ALICE, T0), None);

    let first = k
        .replace_primary(
            ALICE,
            Some("Production Key".into()),
            KeyAccess::default(),
            T0,
            &mut emit,
        )
        .unwrap();
    let p = k.primary(ALICE, T0).unwrap();
    assert_eq!(p.key_id, first.key_id);
    assert_eq!(p.name.as_deref(), Some("Production Key"));
    assert!(p.primary);
    k.verify(&first.key, LOCAL, T0 + 5).unwrap();
    let pref = KeyPreference::new(k.primary(ALICE, T0 + 5).as_ref(), 1000);
    assert!(pref.has_key);
    assert_eq!(pref.usage_count, 1);
    assert_eq!(pref.key_prefix.as_deref(), Some(&first.key_prefix[..]));

    // Replacing keeps the name available and revokes the old key in the
    // same record.
    let second = k
        .replace_primary(
            ALICE,
            Some("Production Key".into()),
            KeyAccess::default(),
            T0 + 10,
            &mut emit,
        )
        .unwrap();
    assert_eq!(
        log.lock().last(),
        Some(&ApiKeyEvent::Created {
            record: Box::new(
                k.image()
                    .keys
                    .into_iter()
                    .find(|r| r.key_id == second.key_id)
                    .unwrap()
            ),
            revokes: Some(first.key_id),
        })
    );
    assert_eq!(
        k.verify(&first.key, LOCAL, T0 + 10),
        Err(KeyAuthError::Revoked)
    );
    assert_eq!(k.primary(ALICE, T0 + 10).unwrap().key_id, second.key_id);
    assert_eq!(k.primary(BOB, T0 + 10), None);

    assert_eq!(
        k.revoke_primary(ALICE, T0 + 20, &mut emit),
        Ok(second.key_id)
    );
    assert_eq!(
        k.verify(&second.key, LOCAL, T0 + 20),
        Err(KeyAuthError::Revoked)
    );
    assert_eq!(k.primary(ALICE, T0 + 20), None);
    assert_eq!(
        k.revoke_primary(ALICE, T0 + 20, &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert!(!KeyPreference::new(None, 1000).has_key);
    // The ordinary key was never touched.
    assert!(k
        .list(ALICE, T0 + 20)
        .iter()
        .any(|v| v.name.as_deref() == Some("other") && !v.revoked));
}
