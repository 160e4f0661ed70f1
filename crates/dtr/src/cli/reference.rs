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
         Generated from the parser (`crates/dtr/src/cli/args.rs`) by `DTR_UPDATE_DOCS=1 cargo \
         nextest run -E 'test(cli_reference)'`; do not edit by hand. Exit codes, environment variable aliases and \
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
        // actions such as `images save` and `backup verify`
        for action in sub.get_subcommands_mut().filter(|s| !s.is_hide_set()) {
            let action_name = action.get_name().to_string();
            out.push_str(&format!("\n### dtr {name} {action_name}\n\n```text\n"));
            out.push_str(&action.render_long_help().to_string());
            out.push_str("```\n");
        }
    }
    // trailing spaces from clap's layout are noise in a diff
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The parser without its internal commands (those the images run), env values hidden. clap
/// cannot drop a subcommand, so the top level is made again with the visible ones.
fn public_command() -> clap::Command {
    let full = Cli::command();
    let mut top = clap::Command::new("dtr")
        .version(dtr_core::version::VERSION)
        .about(full.get_about().cloned().unwrap_or_default())
        .long_about(full.get_long_about().cloned().unwrap_or_default())
        .subcommand_required(true);
    for sub in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        top = top.subcommand(sub.clone().mut_args(|a| a.hide_env_values(true)));
    }
    top
}

/// `dtr completion <shell>`: the completion script of the parser.
pub fn completion(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut public_command(), "dtr", out);
}

/// `dtr man`: one roff page for dtr with a section per user-facing command (hidden internal
/// commands left out).
pub fn man(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut cmd = public_command();
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_subcommands_section(out)?;
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        writeln!(out, ".SH \"DTR {}\"", name.to_uppercase())?;
        let sub_page = clap_mangen::Man::new(sub.clone().bin_name(format!("dtr {name}")));
        sub_page.render_synopsis_section(out)?;
        sub_page.render_description_section(out)?;
        sub_page.render_options_section(out)?;
    }
    page.render_version_section(out)?;
    Ok(())
}
