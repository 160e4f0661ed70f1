//! Questions for a person at a terminal. Asked only when stdin and stderr are terminals; without
//! one, commands fail listing the missing flags instead.

use std::io::IsTerminal;

use dtr_bootstrap::error::{Error, Result};
use dtr_core::secret::Secret;

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

/// Collects the required values of a command: each one given (flag or env) is used, each one
/// missing is asked for on a terminal in the original's shape (`name (usage): `, passwords
/// hidden) or, without a terminal, noted so that one error can list them all.
pub struct Asker {
    interactive: bool,
    missing: Vec<(&'static str, &'static str)>,
}

impl Asker {
    pub fn new(interactive: bool) -> Asker {
        Asker {
            interactive,
            missing: Vec::new(),
        }
    }

    /// A required value: `given`, else the answer to `name (usage): `, else `None` (noted).
    pub fn value(
        &mut self,
        given: Option<String>,
        name: &str,
        usage: &str,
        flag: &'static str,
        env: &'static str,
    ) -> Result<Option<String>> {
        if given.is_some() {
            return Ok(given);
        }
        if !self.interactive {
            self.note_missing(flag, env);
            return Ok(None);
        }
        let theme = dialoguer::theme::SimpleTheme;
        let answer: String = dialoguer::Input::with_theme(&theme)
            .with_prompt(format!("{name} ({usage})"))
            .interact_text()
            .map_err(prompt_err)?;
        Ok(Some(answer.trim().to_string()))
    }

    /// A required secret: `given`, else asked without echo (`name: `), else `None` (noted).
    pub fn secret(
        &mut self,
        given: Option<String>,
        name: &str,
        flag: &'static str,
        env: &'static str,
    ) -> Result<Option<Secret<String>>> {
        if let Some(v) = given {
            return Ok(Some(Secret::new(v)));
        }
        if !self.interactive {
            self.note_missing(flag, env);
            return Ok(None);
        }
        let theme = dialoguer::theme::SimpleTheme;
        let answer = dialoguer::Password::with_theme(&theme)
            .with_prompt(name)
            .interact()
            .map_err(prompt_err)?;
        Ok(Some(Secret::new(answer)))
    }

    /// A value the command needs that no terminal can provide now (listed in the error).
    pub fn note_missing(&mut self, flag: &'static str, env: &'static str) {
        if !self.missing.contains(&(flag, env)) {
            self.missing.push((flag, env));
        }
    }

    /// Nothing noted missing so far.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// `Err(MissingInput)` listing every value noted missing.
    pub fn finish(self) -> Result<()> {
        if self.missing.is_empty() {
            Ok(())
        } else {
            Err(Error::MissingInput {
                missing: self.missing,
            })
        }
    }
}
