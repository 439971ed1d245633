//! Group-commit benchmark of the write-ahead log (prints, asserts nothing).
//!
//! With `--fsync always`, 1, 16 and 64 tokio tasks each loop `append` +
//! `durable` for a fixed count against the real disk (a temporary directory
//! under `./target`), and the records/s of each run are printed with the
//! 64-vs-1 ratio. Group commit should make 64 writers at least 10× faster than
//! one: they share each fdatasync.
//!
//! `cargo run --release --example wal_bench [records-per-writer]` (default 200).

use std::sync::Arc;
use std::time::Instant;

use keypool::persist::{FsyncMode, Log, LogOptions, RealFs};

/// One run: `writers` tasks, `per_writer` records each. Returns records/s.
async fn run(writers: usize, per_writer: usize) -> Result<f64, Box<dyn std::error::Error>> {
    std::fs::create_dir_all("target")?;
    let tmp = tempfile::Builder::new()
        .prefix("wal_bench-")
        .tempdir_in("target")?;
    let opts = LogOptions::new(tmp.path(), FsyncMode::Always);
    let (log, _) = Log::open(opts, Arc::new(RealFs))?;
    // About the size of an encoded key-pool event.
    let record = vec![0x5au8; 96];
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let log = log.clone();
            let record = record.clone();
            tokio::spawn(async move {
                for _ in 0..per_writer {
                    let lsn = log.append(&record)?;
                    log.durable(lsn).await?;
                }
                Ok::<_, keypool::persist::PersistError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let m = log.metrics();
    log.close().await?;
    let records = writers * per_writer;
    let rate = records as f64 / secs;
    println!(
        "{writers:>3} writers: {records:>6} records in {secs:>6.3} s = {rate:>9.0} records/s, \
         {} fsyncs ({:.1} records per fsync)",
        m.fsyncs,
        records as f64 / m.fsyncs.max(1) as f64
    );
    Ok(rate)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let per_writer: usize = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 200,
    };
    println!("write-ahead log, --fsync always, {per_writer} records per writer, real disk under ./target");
    let one = run(1, per_writer).await?;
    let _sixteen = run(16, per_writer).await?;
    let sixty_four = run(64, per_writer).await?;
    println!(
        "64 writers vs 1: {:.1}x (target: at least 10x)",
        sixty_four / one
    );
    Ok(())
}
