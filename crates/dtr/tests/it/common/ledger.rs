//! What the tests made on the engine, written down before it is made and crossed out once it
//! is gone, so that a run that was killed (a timeout, a machine restarted mid-run) leaves a
//! list and not an orphaned cluster: the next `scripts/test.sh` removes exactly what is listed
//! (scripts/test-leftovers.sh) before any test runs. Nothing else is ever removed that way.
//!
//! One line per object: `replica <id> <networks>` (`networks` is `made` when the replica's
//! test found no dtr-ol / dtr-br and may remove them, `kept` otherwise) or `volume <name>`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

/// The ledger file: `DTR_TEST_LEDGER`, or /var/tmp/dtr-tests/ledger (kept across restarts).
pub fn path() -> PathBuf {
    std::env::var_os("DTR_TEST_LEDGER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/dtr-tests/ledger"))
}

/// Writes `entry` down (before the object is made).
pub fn note(entry: &str) {
    let path = path();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot write the test ledger {}: {e}", path.display()));
    // one write of one short line: appends of several test processes do not interleave
    file.write_all(format!("{entry}\n").as_bytes())
        .unwrap_or_else(|e| panic!("cannot write the test ledger {}: {e}", path.display()));
}

/// Crosses out the line of `object` (`replica <id>`, `volume <name>`) once it is gone.
pub fn cross_out(object: &str) {
    let with_fields = format!("{object} ");
    let path = path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let kept: String = text
        .lines()
        .filter(|l| *l != object && !l.starts_with(&with_fields))
        .map(|l| format!("{l}\n"))
        .collect();
    // a rename is atomic: a concurrent reader sees the old or the new list, never half
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, kept).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}
