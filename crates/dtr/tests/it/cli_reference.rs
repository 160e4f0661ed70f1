//! docs/cli-reference.md is the parser's own help: this fails when they differ.
//! Regenerate with `DTR_UPDATE_DOCS=1 cargo nextest run -E 'test(cli_reference)'`.

#[test]
fn the_cli_reference_in_docs_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli-reference.md");
    let rendered = dtr::cli::reference::markdown();
    if std::env::var("DTR_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).expect("read docs/cli-reference.md");
    assert!(
        committed == rendered,
        "docs/cli-reference.md is out of date: run DTR_UPDATE_DOCS=1 cargo nextest run -E 'test(cli_reference)'"
    );
}
