//! Spreading retries, resyncs and leader-election tries over time, so many processes do not
//! act in lockstep.

/// A number in [0, 1) that differs between calls; good enough to spread retries,
/// resyncs and leader-election tries.
pub fn fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() % 10_000) as f64 / 10_000.0
}
