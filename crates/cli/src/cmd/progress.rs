//! Progress of long work (`simulate`, `eval`, `bench`) on stderr, only when stderr is a
//! terminal: a pipe or a log file gets the results alone.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the counter line is redrawn.
const EVERY: Duration = Duration::from_millis(100);

pub struct Progress {
    on: bool,
    drawn: Option<Instant>,
    start: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            drawn: None,
            start: Instant::now(),
        }
    }

    /// One line about what starts now.
    pub fn note(&self, text: &str) {
        if self.on {
            eprintln!("{text}");
        }
    }

    /// `what done/total`, redrawn in place at most every 100 ms (and at the end).
    pub fn step(&mut self, what: &str, done: usize, total: usize) {
        if !self.on || (done < total && self.drawn.is_some_and(|t| t.elapsed() < EVERY)) {
            return;
        }
        self.drawn = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{what} {done}/{total} ");
        let _ = err.flush();
    }

    /// Ends the counter line with the time taken.
    pub fn finish(&self) {
        if self.on && self.drawn.is_some() {
            eprintln!("({:.1} s)", self.start.elapsed().as_secs_f64());
        }
    }
}
