//! `disk`: what one fdatasync costs on this disk, in the directory keypool's
//! data directories go to (`target/<profile>/`). An appending write changes
//! the file's size, so its fdatasync must also commit metadata (a journal
//! commit on ext4); an overwrite of blocks already written (a pre-zeroed
//! file) flushes only data. A fallocated file is in between: its blocks are
//! reserved but unwritten, so the first write to each converts an extent.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::time::Instant;

use crate::procs::{self, BoxError};
use crate::report::{count, median, table};
use crate::Args;

/// Write sizes measured: a small group-commit batch and one page.
const SIZES: [usize; 2] = [512, 4096];

/// `disk` (see the example's doc).
pub fn run(a: &Args) -> Result<(), BoxError> {
    procs::pin_self_to_client_cpu();
    let dir = procs::temp_dir("disk")?;
    println!(
        "\n== fdatasync latency, {} writes per case, in {}",
        a.count,
        dir.path().display()
    );
    let mut rows = Vec::new();
    for size in SIZES {
        for case in [Case::Append, Case::Zeroed, Case::Fallocated] {
            let path = dir.path().join(format!("{case:?}-{size}"));
            let lat = measure(&path, case, size, a.count)?;
            std::fs::remove_file(&path)?;
            rows.push(row(case, size, lat));
        }
    }
    table(
        &["case", "write", "p50", "p99", "mean", "max", "syncs/s"],
        &rows,
        2,
    );
    Ok(())
}

/// Where each write goes.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// At the end of a growing file.
    Append,
    /// Over a file written with zeros (and synced) beforehand.
    Zeroed,
    /// Into a file whose blocks were reserved with fallocate(2) (unwritten).
    Fallocated,
}

/// Latencies (µs) of `count` write + fdatasync pairs.
fn measure(
    path: &std::path::Path,
    case: Case,
    size: usize,
    count: usize,
) -> Result<Vec<f64>, BoxError> {
    let total = (size * count) as u64;
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)?;
    match case {
        Case::Append => {}
        Case::Zeroed => {
            let zeros = vec![0u8; 1 << 20];
            let mut left = total;
            let mut w = &file;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                w.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            file.sync_all()?;
        }
        Case::Fallocated => {
            // SAFETY: fallocate(2) on a file descriptor we own.
            let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, total as libc::off_t) };
            if rc != 0 {
                return Err(format!("fallocate: {}", std::io::Error::last_os_error()).into());
            }
            file.sync_all()?;
        }
    }
    let record = vec![0x5au8; size];
    let mut lat = Vec::with_capacity(count);
    for i in 0..count {
        let t = Instant::now();
        match case {
            Case::Append => (&file).write_all(&record)?,
            Case::Zeroed | Case::Fallocated => file.write_all_at(&record, (i * size) as u64)?,
        }
        file.sync_data()?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(lat)
}

fn row(case: Case, size: usize, mut lat: Vec<f64>) -> Vec<String> {
    lat.sort_by(f64::total_cmp);
    let pick = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    let us = |x: f64| format!("{x:.0} µs");
    let what = match case {
        Case::Append => "append (file grows)",
        Case::Zeroed => "overwrite, pre-zeroed file",
        Case::Fallocated => "overwrite, fallocated file",
    };
    vec![
        what.to_string(),
        format!("{size} B"),
        us(median(lat.clone()).unwrap_or(0.0)),
        us(pick(0.99)),
        us(mean),
        us(lat[lat.len() - 1]),
        count(1e6 / mean),
    ]
}
