//! What one client run measured, the medians over the turns, and how the
//! figures and the ratios are printed. Nothing is asserted: a target
//! missed is a figure to read (PASS/MISS), not a failure.

/// One measured run of one peer.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Successful operations per second (failed answers are not throughput).
    pub ops: f64,
    /// Median latency as the client saw it, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile, µs.
    pub p99_us: Option<f64>,
    /// Failed answers (non-2xx, socket errors, timeouts; Redis: failed calls).
    pub errors: u64,
    /// Checkouts and releases sent (wrk script only).
    pub checkouts: u64,
    /// See `checkouts`.
    pub releases: u64,
    /// The first failure, or anything odd.
    pub note: Option<String>,
    /// CPU the server used over the run, in cores (1.0 = its whole core).
    pub server_cpu: f64,
    /// CPU the client used, in cores.
    pub client_cpu: f64,
    /// The server's context switches (all threads, voluntary and not) per operation.
    pub server_switches: f64,
}

/// A peer's runs over all turns.
#[derive(Debug, Default)]
pub struct Series {
    /// Its name in the tables.
    pub name: String,
    /// The client and its setup, for the table.
    pub client: String,
    /// One per turn.
    pub runs: Vec<Run>,
}

/// The median of `xs` (the mean of the middle two for an even count).
pub fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

impl Series {
    /// Median ops/s.
    pub fn ops(&self) -> Option<f64> {
        median(self.runs.iter().map(|r| r.ops).collect())
    }

    /// Median p99, µs.
    pub fn p99(&self) -> Option<f64> {
        median(self.runs.iter().filter_map(|r| r.p99_us).collect())
    }

    /// Which side's core was busy (median CPU ≥ 90 %): what bounded the rate.
    fn busy(&self) -> String {
        let at =
            |f: fn(&Run) -> f64| median(self.runs.iter().map(f).collect()).unwrap_or(0.0) >= BUSY;
        match (at(|r| r.server_cpu), at(|r| r.client_cpu)) {
            (true, true) => "both",
            (true, false) => "server",
            (false, true) => "client",
            (false, false) => "neither",
        }
        .into()
    }

    fn p50(&self) -> Option<f64> {
        median(self.runs.iter().filter_map(|r| r.p50_us).collect())
    }

    /// The table row: name, client, ops/s, p50, p99, errors, CPU of each side, turns.
    pub fn row(&self) -> Vec<String> {
        let errors: u64 = self.runs.iter().map(|r| r.errors).sum();
        let cpu = |f: fn(&Run) -> f64| {
            median(self.runs.iter().map(f).collect())
                .map_or("-".into(), |c| format!("{:.0} %", 100.0 * c))
        };
        let turns: Vec<String> = self.runs.iter().map(|r| count(r.ops)).collect();
        vec![
            self.name.clone(),
            self.client.clone(),
            self.ops().map_or("-".into(), count),
            self.p50().map_or("-".into(), ms),
            self.p99().map_or("-".into(), ms),
            errors.to_string(),
            cpu(|r| r.server_cpu),
            cpu(|r| r.client_cpu),
            self.busy(),
            median(self.runs.iter().map(|r| r.server_switches).collect())
                .map_or("-".into(), |c| format!("{c:.2}")),
            turns.join(" / "),
        ]
    }
}

/// A core this busy (fraction) is taken to be what bounded a run.
const BUSY: f64 = 0.9;

/// The columns of [`Series::row`].
pub const HEADER: [&str; 11] = [
    "peer",
    "client",
    "ops/s",
    "p50",
    "p99",
    "errors",
    "server CPU",
    "client CPU",
    "busy ≥ 90 %",
    "server cs/op",
    "ops/s by turn",
];

/// Prints rows under `header`; the first `left` columns left-aligned, the others right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>], left: usize) {
    let head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&head).chain(rows).collect();
    let cols = header.len();
    let mut width = vec![0usize; cols];
    for r in &all {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    for r in &all {
        let mut line = String::from(" ");
        for (i, c) in r.iter().enumerate().take(cols) {
            let pad = " ".repeat(width[i] - c.chars().count());
            line.push_str("  ");
            if i < left {
                line.push_str(c);
                line.push_str(&pad);
            } else {
                line.push_str(&pad);
                line.push_str(c);
            }
        }
        println!("{}", line.trim_end());
    }
}

/// How a [`Check`]'s value is shown.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// `81.8 %`.
    Percent,
    /// `1.23×`.
    Factor,
    /// A latency in µs, shown in ms.
    Ms,
}

/// A figure from the medians against the target.
pub struct Check {
    /// `keypool never / Redis (no persistence)`.
    pub what: String,
    /// The value, or why there is none.
    pub value: Result<f64, String>,
    /// How it is shown.
    pub unit: Unit,
    /// `(at_least, bound)`: the target is `value >= bound` or `value < bound`;
    /// `None`: no target, a figure to read.
    pub target: Option<(bool, f64)>,
}

/// Prints checks: `what  value  target  PASS|MISS`.
pub fn checks(list: &[Check]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let fmt = |v: f64| match c.unit {
                Unit::Percent => format!("{:.1} %", 100.0 * v),
                Unit::Factor => format!("{v:.2}×"),
                Unit::Ms => ms(v),
            };
            let (value, verdict) = match (&c.value, c.target) {
                (Ok(v), Some((at_least, b))) => {
                    let pass = if at_least { *v >= b } else { *v < b };
                    (fmt(*v), if pass { "PASS" } else { "MISS" })
                }
                (Ok(v), None) => (fmt(*v), ""),
                (Err(why), _) => (why.clone(), "n/a"),
            };
            let target = match c.target {
                Some((true, b)) => format!("≥ {}", fmt(b)),
                Some((false, b)) => format!("< {}", fmt(b)),
                None => String::new(),
            };
            vec![c.what.clone(), value, target, verdict.into()]
        })
        .collect();
    table(&["figure", "value", "target", ""], &rows, 1);
}

/// `a / b` of two medians, or why not.
pub fn ratio_of(a: Option<&Series>, b: Option<&Series>) -> Result<f64, String> {
    match (a.and_then(Series::ops), b.and_then(Series::ops)) {
        (Some(x), Some(y)) if y > 0.0 => Ok(x / y),
        _ => Err("not measured".into()),
    }
}

/// Microseconds as milliseconds with two decimals.
pub fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
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
