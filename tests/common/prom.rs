//! Reading the counters file (`stats { file }`) the module writes for node_exporter.

use std::path::Path;
use std::time::{Duration, Instant};

/// The value of the sample `name{labels}` in the file, if it is there.
pub fn sample(path: &Path, name_and_labels: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The sample once it equals `expected` (the writer runs every `interval`), else
/// whatever it was after 30 s: the caller's assertion then shows the difference.
pub fn wait_for(path: &Path, name_and_labels: &str, expected: f64) -> Option<f64> {
    wait_until(path, name_and_labels, |value| value == expected)
}

/// The sample once `good` holds for it, else whatever it was after 30 s.
pub fn wait_until(path: &Path, name_and_labels: &str, good: impl Fn(f64) -> bool) -> Option<f64> {
    let started = Instant::now();
    loop {
        let value = sample(path, name_and_labels);
        if value.is_some_and(&good) || started.elapsed() > Duration::from_secs(30) {
            return value;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
