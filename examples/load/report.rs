//! How the figures are printed: one compact table per scenario, then its
//! targets with the measured value and PASS/MISS. Nothing is asserted: a miss
//! is a figure to read, not a failure.

use crate::client::{Latency, Outcome};

/// A target and what was measured against it.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is compared, with the target (`keypool/bare req/s ≥ 70 %`).
    pub what: String,
    /// The measured value, formatted.
    pub measured: String,
    /// Whether it met the target; `None` when it could not be measured.
    pub pass: Option<bool>,
}

/// One scenario's printed result.
#[derive(Debug, Default)]
pub struct Table {
    /// The scenario name and its setup, on one line.
    pub title: String,
    /// Column names; the first column is left-aligned, the others right-aligned.
    pub header: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<String>>,
    /// The targets.
    pub checks: Vec<Check>,
    /// Further lines printed under the table.
    pub notes: Vec<String>,
}

/// The usual columns of a latency table.
pub const LATENCY_HEADER: [&str; 6] = ["run", "req/s", "p50", "p99", "max", "errors"];

impl Table {
    /// A table titled `title` with `header` columns.
    pub fn new(title: impl Into<String>, header: &[&str]) -> Table {
        Table {
            title: title.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            ..Table::default()
        }
    }

    /// Adds a row of [`LATENCY_HEADER`] columns for a timed run.
    pub fn latency_row(&mut self, name: &str, o: &Outcome) -> Latency {
        let l = Latency::of(&o.samples);
        self.rows.push(vec![
            name.to_string(),
            count(o.req_rate()),
            ms(l.p50_us),
            ms(l.p99_us),
            ms(l.max_us),
            o.errors.to_string(),
        ]);
        if let Some(note) = o.error_note() {
            self.notes.push(format!("{name}: {note}"));
        }
        l
    }

    /// Adds a target.
    pub fn check(&mut self, what: impl Into<String>, measured: impl Into<String>, pass: bool) {
        self.checks.push(Check {
            what: what.into(),
            measured: measured.into(),
            pass: Some(pass),
        });
    }

    /// Adds a target that this run could not measure, saying why.
    pub fn not_measured(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.checks.push(Check {
            what: what.into(),
            measured: why.into(),
            pass: None,
        });
    }

    /// Prints the table.
    pub fn print(&self) {
        println!("\n== {}", self.title);
        let cols = self.header.len();
        let mut width = vec![0usize; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::from("  ");
            for (i, c) in r.iter().enumerate().take(cols) {
                let pad = width[i] - c.chars().count();
                if i == 0 {
                    line.push_str(c);
                    line.push_str(&" ".repeat(pad));
                } else {
                    line.push_str("  ");
                    line.push_str(&" ".repeat(pad));
                    line.push_str(c);
                }
            }
            println!("{}", line.trim_end());
        }
        print_checks(&self.checks);
        for n in &self.notes {
            println!("  note: {n}");
        }
    }
}

/// Prints targets as `what  measured  PASS|MISS`, aligned.
pub fn print_checks(checks: &[Check]) {
    let w = checks
        .iter()
        .map(|c| c.what.chars().count())
        .max()
        .unwrap_or(0);
    let m = checks
        .iter()
        .map(|c| c.measured.chars().count())
        .max()
        .unwrap_or(0);
    for c in checks {
        println!(
            "  target: {}{}  {}{}  {}",
            c.what,
            " ".repeat(w - c.what.chars().count()),
            " ".repeat(m - c.measured.chars().count()),
            c.measured,
            match c.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "n/a",
            }
        );
    }
}

/// Microseconds as milliseconds with two decimals.
pub fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// A rate or count with thousands separators, no decimals.
pub fn count(x: f64) -> String {
    let n = x.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `a / b` as a percentage.
pub fn pct(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        100.0 * a / b
    } else {
        0.0
    }
}
