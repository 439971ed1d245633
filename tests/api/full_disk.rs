//! A real full disk: a 3 MB tmpfs as the data directory, filled until the log's
//! writes fail with ENOSPC. A delete answered 503 leaves its key, a create
//! answered 503 leaves no key, and after `kill -9`, freeing the space and a
//! restart, the pool holds exactly what was acknowledged. Needs root (to mount
//! the tmpfs); skips with a message otherwise. The server's own stderr is on
//! that full disk as well.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{eventually, Server};

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and touches no memory of ours.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("full_disk: skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("keypool-tmpfs-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .ok()?
            .keep()
            .join("mnt");
        std::fs::create_dir(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("full_disk: skipped: cannot mount a tmpfs here");
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn free_bytes(&self) -> u64 {
        let path = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: `stat` is a plain out-parameter of the right type, and `path`
        // a NUL-terminated string that outlives the call.
        unsafe {
            let mut stat: libc::statvfs = std::mem::zeroed();
            assert_eq!(libc::statvfs(path.as_ptr(), &mut stat), 0);
            stat.f_bavail as u64 * stat.f_frsize as u64
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Fills the file system of `dir` until about `leave` bytes are free.
fn fill(fs: &Tmpfs, filler: &Path, leave: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(filler).unwrap();
    let chunk = vec![0xa5u8; 4096];
    while fs.free_bytes() > leave {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
}

fn stats_total(s: &Server) -> u64 {
    s.call("GET", "/stats", None, None).body["total"]
        .as_u64()
        .unwrap()
}

#[test]
fn on_a_full_disk_refused_changes_do_not_happen_and_the_restart_holds_what_was_acknowledged() {
    let Some(fs) = Tmpfs::mount("3m") else { return };
    // The server's stderr (`data.stderr`, see `support.rs`) is on the full disk
    // too: a log line it cannot write must not hurt a request (regression: it
    // made tracing call eprintln!, which panicked, and connections died).
    let data = fs.0.join("data");
    let flags = ["--open-pool", "--snapshot-interval", "1h"];
    let mut s = Server::start_in(&data, &flags).expect("starts on the tmpfs");
    let mut keys: Vec<String> = (0..3000)
        .map(|_| {
            let r = s.call("POST", "/keys", None, None);
            assert_eq!(r.status, 201, "{}", r.text);
            r.str("key_id")
        })
        .collect();
    let filler = fs.0.join("filler.bin");
    fill(&fs, &filler, 8 << 10);

    // Delete and create, one by one, until the disk refuses: the log first
    // uses up the zeros it wrote ahead, then must grow and cannot. Each
    // refused delete leaves its key.
    let mut refused_deletes = vec![];
    for _ in 0..40_000 {
        if refused_deletes.len() >= 5 {
            break;
        }
        let Some(id) = keys.pop() else { break };
        let r = s.call("DELETE", &format!("/keys/{id}"), None, None);
        match r.status {
            200 => {}
            503 => {
                assert!(r.error().contains("nothing was changed"), "{}", r.text);
                let got = s.call("GET", &format!("/keys/{id}"), None, None);
                assert_eq!(got.status, 200, "a refused delete deleted {id}");
                refused_deletes.push(id.clone());
                keys.insert(0, id);
                continue;
            }
            other => panic!("delete answered {other}: {}", r.text),
        }
        let r = s.call("POST", "/keys", None, None);
        match r.status {
            201 => keys.insert(0, r.str("key_id")),
            503 => {}
            other => panic!("create answered {other}: {}", r.text),
        }
    }
    assert!(!refused_deletes.is_empty(), "the disk never filled up");
    let acked = keys.len() as u64;
    assert_eq!(stats_total(&s), acked);

    // Creates on the full disk: a refused one leaves no key.
    let mut created = 0;
    for _ in 0..20 {
        let r = s.call("POST", "/keys", None, None);
        match r.status {
            201 => created += 1,
            503 => assert!(r.error().contains("nothing was changed"), "{}", r.text),
            other => panic!("create answered {other}: {}", r.text),
        }
    }
    assert_eq!(stats_total(&s), acked + created);

    // kill -9, space returns, restart: exactly what was acknowledged.
    s.kill9();
    std::fs::remove_file(&filler).unwrap();
    s.restart();
    assert_eq!(stats_total(&s), acked + created);
    for id in &refused_deletes {
        let got = s.call("GET", &format!("/keys/{id}"), None, None);
        assert_eq!(got.status, 200, "refused delete of {id} happened after all");
    }
    // And the server takes changes again.
    assert!(eventually(Duration::from_secs(5), || s
        .call("POST", "/keys", None, None)
        .status
        == 201));
    s.kill9();
}
