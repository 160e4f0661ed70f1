//! Questions for a person at a terminal. Asked only when stdin and stderr are terminals; without
//! one, commands fail listing the missing flags instead.

use std::io::IsTerminal;

use crate::error::{Error, Result};

pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn prompt_err(e: dialoguer::Error) -> Error {
    Error::io(
        "read the answer from the terminal",
        std::io::Error::other(e.to_string()),
    )
}

/// The original's pick-list: `Choose a replica [first]:`.
pub fn pick(label: &str, choices: &[String]) -> Result<String> {
    pick_default(label, choices, 0)
}

/// A pick-list whose preselected answer is `choices[default]`.
pub fn pick_default(label: &str, choices: &[String], default: usize) -> Result<String> {
    let theme = dialoguer::theme::SimpleTheme;
    let i = dialoguer::Select::with_theme(&theme)
        .with_prompt(label)
        .items(choices)
        .default(default.min(choices.len().saturating_sub(1)))
        .interact()
        .map_err(prompt_err)?;
    Ok(choices[i].clone())
}

pub fn confirm(question: &str) -> Result<bool> {
    let theme = dialoguer::theme::SimpleTheme;
    dialoguer::Confirm::with_theme(&theme)
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(prompt_err)
}

/// A new password, typed twice, never echoed.
pub fn new_password(label: &str) -> Result<String> {
    let theme = dialoguer::theme::SimpleTheme;
    dialoguer::Password::with_theme(&theme)
        .with_prompt(label)
        .with_confirmation("Repeat it", "The two entries differ")
        .interact()
        .map_err(prompt_err)
}
