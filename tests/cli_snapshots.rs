//! The CLI's user-facing text, snapshotted: every case in `tests/cmd/` runs the built
//! `courier` from the repository root and compares stdout, stderr and the exit code with
//! the files beside it, so a change of wording shows up in review. After an intended
//! change: `TRYCMD=overwrite cargo test --test cli_snapshots`, then read the diff.

#[test]
fn cli_text() {
    trycmd::TestCases::new()
        .register_bin(
            "courier",
            std::path::Path::new(env!("CARGO_BIN_EXE_courier")),
        )
        .env("NO_COLOR", "1")
        .case("tests/cmd/*.toml");
}
