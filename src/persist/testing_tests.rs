use super::*;

#[test]
fn crash_keeps_only_what_was_synced() {
    let fs = FaultFs::new();
    let d = Path::new("/d");
    fs.create_dir_all(d).unwrap();
    let a = d.join("a");
    let f = fs.open_write(&a).unwrap();
    f.write_at(0, b"one").unwrap();
    f.sync_data().unwrap();
    f.write_at(3, b"two").unwrap();
    // The entry was never made durable: the file vanishes.
    assert!(fs.crash().bytes(&a).is_none());

    let fs = FaultFs::new();
    fs.create_dir_all(d).unwrap();
    let f = fs.open_write(&a).unwrap();
    f.write_at(0, b"one\0\0\0\0").unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(d).unwrap();
    // Written over the zeros: a crash keeps what was synced, plus a prefix
    // of what was pending.
    f.write_at(3, b"two").unwrap();
    let after = fs.crash_keeping(1);
    assert_eq!(after.bytes(&a).unwrap(), b"onet\0\0\0");
    // The old handle is dead.
    assert!(f.write_at(0, b"x").is_err());
    assert!(fs.read(&a).is_err());
}

#[test]
fn faults_fire_and_clear() {
    let fs = FaultFs::new();
    let d = Path::new("/d");
    fs.create_dir_all(d).unwrap();
    let a = d.join("a");
    let f = fs.open_write(&a).unwrap();
    fs.set_faults(Faults {
        tear_next_write_at: Some(2),
        ..Faults::default()
    });
    let e = f.write_at(0, b"abcdef").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EIO));
    assert_eq!(fs.bytes(&a).unwrap(), b"ab");
    f.write_at(2, b"c").unwrap();
    fs.set_faults(Faults {
        sync: Some(ENOSPC),
        write: Some(EIO),
        ..Faults::default()
    });
    assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(ENOSPC));
    assert!(f.write_at(3, b"d").is_err());
    fs.clear_faults();
    f.sync_data().unwrap();
    assert_eq!(fs.sync_count(), 1);
    // The entry is durable only after sync_dir; truncation at once.
    assert!(fs.durable_bytes(&a).is_none());
    fs.sync_dir(d).unwrap();
    assert_eq!(fs.durable_bytes(&a).unwrap(), b"abc");
    fs.truncate(&a, 1).unwrap();
    assert_eq!(fs.durable_bytes(&a).unwrap(), b"a");
}

#[test]
fn rename_and_remove_need_sync_dir() {
    let fs = FaultFs::new();
    let d = Path::new("/d");
    fs.create_dir_all(d).unwrap();
    fs.set_bytes(&d.join("old"), b"x".to_vec());
    fs.set_bytes(&d.join("tmp"), b"y".to_vec());
    fs.rename(&d.join("tmp"), &d.join("new")).unwrap();
    fs.remove(&d.join("old")).unwrap();
    let c = fs.crash();
    assert_eq!(c.paths(), vec![d.join("old"), d.join("tmp")]);
    c.rename(&d.join("tmp"), &d.join("new")).unwrap();
    c.remove(&d.join("old")).unwrap();
    c.sync_dir(d).unwrap();
    assert_eq!(c.crash().paths(), vec![d.join("new")]);
}
