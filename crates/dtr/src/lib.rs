//! `dtr`: an open replacement for the Docker Trusted Registry bootstrapper. One binary: the
//! bootstrapper's commands (`install`, `join`, `backup`, ...) run `dtr_bootstrap`'s
//! operations; the hidden in-cluster commands (`api`, `jobrunner`, `phase2`, ...) run
//! `dtr_server`'s roles. This crate only parses, prompts and prints (`cli`).

pub mod cli;
