//! The per-flag CLI reference (docs/cli-reference.md), rendered from the clap definitions so
//! that it cannot drift from the parser. `tests/cli_reference.rs` checks the file is current.

use clap::CommandFactory;

use super::args::Cli;

/// Markdown of `dtr --help` and the long help of every user-facing subcommand.
pub fn markdown() -> String {
    // env values of the machine that renders it must not end up in the file
    let mut cmd = Cli::command()
        .term_width(100)
        .mut_subcommands(|sub| sub.mut_args(|a| a.hide_env_values(true)));
    cmd.build();
    let mut out = String::from(
        "# dtr command-line reference\n\n\
         Generated from the parser (`src/cli/args.rs`) by `DTR_UPDATE_DOCS=1 cargo test --test \
         cli_reference`; do not edit by hand. Exit codes, environment variable aliases and \
         behaviour are described in [cli.md](cli.md).\n\n",
    );
    out.push_str("## dtr\n\n```text\n");
    out.push_str(&cmd.render_long_help().to_string());
    out.push_str("```\n");
    for sub in cmd.get_subcommands_mut().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_string();
        out.push_str(&format!("\n## dtr {name}\n\n```text\n"));
        out.push_str(&sub.render_long_help().to_string());
        out.push_str("```\n");
    }
    // trailing spaces from clap's layout are noise in a diff
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
