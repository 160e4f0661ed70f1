//! Backups of a cluster's metadata. `archive`: the archive format, its writer and its strict
//! reader (docs/backup-format.md). The `backup` and `restore` operations that produce and load
//! it are not implemented yet (`dtr backup` / `dtr restore` answer "not available yet").

pub mod archive;
