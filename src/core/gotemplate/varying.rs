//! The mark a template's execution leaves when its output varies from one rendering to
//! the next (see [`super::VARYING`] and [`super::render_once`]). Templates execute
//! synchronously on one thread, so a thread-local flag tells which execution it was.

use std::cell::Cell;

thread_local! {
    /// Set while a template executes on this thread when its output varies.
    static VARIED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the template executing on this thread as one whose output varies.
pub(super) fn varies() {
    VARIED.with(|v| v.set(true));
}

/// Clears the mark, returning whether it was set.
pub(super) fn reset() -> bool {
    VARIED.with(|v| v.replace(false))
}
