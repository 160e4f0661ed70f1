//! Optional encryption of backup archives with age (https://age-encryption.org/v1), binary
//! (not armored). A backup is either a plain tar or an age file whose plaintext is that tar.
//!
//! Writing: [`encrypt`] wraps the output in an age encryptor for a passphrase (age's scrypt
//! recipient, work factor chosen by age for about one second on this machine) or for X25519
//! recipients (`age1...`), or passes bytes through for [`Protection::None`]. The result must be
//! [`Encrypting::finish`]ed: without it the last chunk is never written and the file is
//! truncated (which a reader then refuses).
//!
//! Reading: [`open`] peeks at the first bytes only; an age header means decrypt with the given
//! [`Keys`], anything else is handed through unchanged. Both directions stream in age's 64 KiB
//! chunks: memory does not grow with the size of the backup. Every chunk is authenticated, so a
//! damaged or truncated ciphertext surfaces as an `io::Error` from `read` (its inner error is a
//! [`CryptError`]), never as silently wrong data.
//!
//! No message here ever contains a passphrase or a secret key.

use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::SecretString;

use dtr_core::secret::Secret;

/// The first bytes of every age file (`age-encryption.org/v1`); the version is checked by age,
/// so a file from a newer format is refused as such rather than read as a tar.
const AGE_MAGIC_PREFIX: &[u8] = b"age-encryption.org/";
/// The first bytes of an ASCII-armored age file, which dtr does not write.
const ARMOR_BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
/// How many bytes [`open`] reads before deciding: enough for either marker.
const PEEK_LEN: usize = ARMOR_BEGIN.len();

/// How a backup is protected when written.
#[derive(Clone, Debug)]
pub enum Protection {
    None,
    /// age's scrypt recipient; anyone with the passphrase can decrypt.
    Passphrase(Secret<String>),
    /// age X25519 public keys (`age1...`); any of the matching identities can decrypt.
    Recipients(Vec<String>),
}

/// What a reader may use to open an encrypted backup.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    pub passphrase: Option<Secret<String>>,
    /// `AGE-SECRET-KEY-1...` strings, e.g. from [`read_identity_file`].
    pub identities: Vec<Secret<String>>,
}

/// Why a backup cannot be encrypted or opened. Messages name what to do next and never contain
/// a passphrase or a secret key.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error(
        "the backup is encrypted: give the passphrase with DTR_BACKUP_PASSPHRASE or the identity \
         with --backup-identity-file"
    )]
    KeysMissing,
    #[error(
        "the backup is encrypted with a passphrase, and only identities were given: give the \
         passphrase with DTR_BACKUP_PASSPHRASE"
    )]
    PassphraseNeeded,
    #[error(
        "the backup is encrypted to age recipients, and only a passphrase was given: give the \
         matching identity with --backup-identity-file"
    )]
    IdentityNeeded,
    #[error(
        "the passphrase or identity does not open this backup: check DTR_BACKUP_PASSPHRASE or \
         --backup-identity-file"
    )]
    WrongKey,
    #[error(
        "the backup's passphrase encryption asks for much more work than this machine is set for \
         (scrypt work factor {required}, this machine's target {target}): decrypt it on a faster \
         machine or with the age tool (age -d) and restore the plain backup"
    )]
    ExcessiveWork { required: u8, target: u8 },
    #[error(
        "the backup's encryption header is damaged or altered ({0}): it cannot be opened; use \
         another copy of the backup"
    )]
    DamagedHeader(String),
    #[error(
        "the backup is encrypted with a newer age format than this dtr reads: decrypt it with a \
         current age tool (age -d) and restore the plain backup"
    )]
    UnknownFormat,
    #[error(
        "the backup is ASCII-armored age, which dtr does not read: remove the armor with \
         `age -d` (giving the key) and restore the plain backup, or re-encrypt it without -a"
    )]
    Armored,
    #[error(
        "the encrypted backup is damaged or was altered after it was written ({0}): use another \
         copy of the backup"
    )]
    Damaged(#[source] io::Error),
    #[error(
        "the encrypted backup ends early ({0}): it was cut off while being written or copied; \
         use a complete copy of the backup"
    )]
    Truncated(#[source] io::Error),
    #[error("cannot read the start of the backup: {0}")]
    Read(#[source] io::Error),
    #[error("cannot write the encryption header of the backup: {0}")]
    Write(#[source] io::Error),
    #[error("the backup passphrase is empty: give a non-empty passphrase")]
    EmptyPassphrase,
    #[error("no recipient given to encrypt the backup to: give at least one age1... public key")]
    NoRecipients,
    #[error(
        "recipient {shown} is not an age X25519 public key ({reason}): give an age1... key as \
         printed by `age-keygen -y IDENTITY_FILE`"
    )]
    BadRecipient { shown: String, reason: String },
    #[error(
        "a secret key (AGE-SECRET-KEY-1...) was given as a recipient: give its public key \
         (age1..., from `age-keygen -y IDENTITY_FILE`) and keep the secret key for restores"
    )]
    SecretKeyAsRecipient,
    #[error(
        "identity {index} is not an age X25519 secret key ({reason}): give AGE-SECRET-KEY-1... \
         keys as written by age-keygen"
    )]
    BadIdentity { index: usize, reason: String },
    #[error(
        "cannot read the identity file {}: {source}; give a readable file written by age-keygen",
        path.display()
    )]
    IdentityFileUnreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the identity file {} has a line {line} that is not an age secret key ({reason}): it \
         must hold AGE-SECRET-KEY-1... lines and # comments, as written by age-keygen",
        path.display()
    )]
    BadIdentityFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "the identity file {} holds no AGE-SECRET-KEY-1... line: give the file written by \
         age-keygen",
        path.display()
    )]
    EmptyIdentityFile { path: PathBuf },
}

/// A backup being written: plain pass-through or an age stream. Call [`Encrypting::finish`].
pub struct Encrypting<W: Write>(Inner<W>);

enum Inner<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Encrypting<W> {
    /// Writes the last chunk (if encrypted), flushes, and hands back the output. Without it an
    /// encrypted backup is truncated and will not open.
    pub fn finish(self) -> io::Result<W> {
        let mut out = match self.0 {
            Inner::Plain(w) => w,
            Inner::Age(s) => s.finish()?,
        };
        out.flush()?;
        Ok(out)
    }

    pub fn is_encrypted(&self) -> bool {
        matches!(self.0, Inner::Age(_))
    }
}

impl<W: Write> Write for Encrypting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Inner::Plain(w) => w.write(buf),
            Inner::Age(s) => s.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.0 {
            Inner::Plain(w) => w.write_all(buf),
            Inner::Age(s) => s.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Inner::Plain(w) => w.flush(),
            Inner::Age(s) => s.flush(),
        }
    }
}

/// Wraps `out`: plain pass-through for [`Protection::None`], else an age encryptor (binary). The
/// age header is written at once. The result must be [`Encrypting::finish`]ed.
pub fn encrypt<W: Write>(out: W, protection: &Protection) -> Result<Encrypting<W>, CryptError> {
    encrypt_with_work_factor(out, protection, None)
}

/// [`encrypt`], with the scrypt work factor (log2 N) forced for a passphrase: only tests use
/// `Some`, to stay fast; real use always takes age's own choice (about one second).
fn encrypt_with_work_factor<W: Write>(
    out: W,
    protection: &Protection,
    work_factor: Option<u8>,
) -> Result<Encrypting<W>, CryptError> {
    let encryptor = match protection {
        Protection::None => return Ok(Encrypting(Inner::Plain(out))),
        Protection::Passphrase(pass) => {
            if pass.expose().is_empty() {
                return Err(CryptError::EmptyPassphrase);
            }
            let mut recipient =
                age::scrypt::Recipient::new(SecretString::from(pass.expose().clone()));
            if let Some(log_n) = work_factor {
                recipient.set_work_factor(log_n);
            }
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .expect("a single scrypt recipient is always accepted")
        }
        Protection::Recipients(list) => {
            if list.is_empty() {
                return Err(CryptError::NoRecipients);
            }
            let recipients = list
                .iter()
                .map(|s| x25519_recipient(s))
                .collect::<Result<Vec<_>, _>>()?;
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .expect("X25519 recipients are always compatible with each other")
        }
    };
    let stream = encryptor.wrap_output(out).map_err(CryptError::Write)?;
    Ok(Encrypting(Inner::Age(stream)))
}

/// Validates a recipient string early (for flag parsing): an age1... X25519 public key.
pub fn parse_recipient(s: &str) -> Result<(), CryptError> {
    x25519_recipient(s).map(|_| ())
}

fn x25519_recipient(s: &str) -> Result<age::x25519::Recipient, CryptError> {
    let s = s.trim();
    if s.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        return Err(CryptError::SecretKeyAsRecipient);
    }
    age::x25519::Recipient::from_str(s).map_err(|reason| CryptError::BadRecipient {
        // Only something shaped like a public key is echoed: a mistyped flag may hold anything.
        shown: if s.starts_with("age1") && s.len() <= 100 {
            format!("{s:?}")
        } else {
            "(value not shown)".to_string()
        },
        reason: reason.to_string(),
    })
}

fn x25519_identity(s: &str) -> Result<age::x25519::Identity, &'static str> {
    age::x25519::Identity::from_str(s.trim())
}

/// Reads an identity file in age-keygen's format: `#` comment lines, blank lines, and one
/// `AGE-SECRET-KEY-1...` per line. Each key is checked; errors name the line, never its content.
pub fn read_identity_file(path: &Path) -> Result<Vec<Secret<String>>, CryptError> {
    let text = std::fs::read(path)
        .map_err(|source| CryptError::IdentityFileUnreadable {
            path: path.to_path_buf(),
            source,
        })
        .and_then(|bytes| {
            if bytes.starts_with(AGE_MAGIC_PREFIX) || bytes.starts_with(ARMOR_BEGIN) {
                return Err(CryptError::BadIdentityFile {
                    path: path.to_path_buf(),
                    line: 1,
                    reason: "the file is itself age-encrypted; decrypt it first".to_string(),
                });
            }
            String::from_utf8(bytes).map_err(|_| CryptError::IdentityFileUnreadable {
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
            })
        })?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| CryptError::BadIdentityFile {
            path: path.to_path_buf(),
            line: i + 1,
            reason: reason.to_string(),
        };
        if line.starts_with("AGE-PLUGIN-") {
            return Err(bad("plugin identities are not supported"));
        }
        x25519_identity(line).map_err(bad)?;
        keys.push(Secret::new(line.to_string()));
    }
    if keys.is_empty() {
        return Err(CryptError::EmptyIdentityFile {
            path: path.to_path_buf(),
        });
    }
    Ok(keys)
}

/// Peeks at the start of `input`: an age header means decrypt with `keys` (passphrase: scrypt;
/// identities: X25519), anything else is handed through unchanged (a plain tar). Returns the
/// reader and whether the backup was encrypted. Only the peeked bytes (and age's header and one
/// chunk) are buffered.
pub fn open<'a, R: Read + 'a>(
    mut input: R,
    keys: &Keys,
) -> Result<(Box<dyn Read + 'a>, bool), CryptError> {
    let mut peeked = [0u8; PEEK_LEN];
    let n = read_up_to(&mut input, &mut peeked).map_err(CryptError::Read)?;
    let head = &peeked[..n];
    let rejoined = Cursor::new(head.to_vec()).chain(input);

    if head.starts_with(ARMOR_BEGIN) {
        return Err(CryptError::Armored);
    }
    if !head.starts_with(AGE_MAGIC_PREFIX) {
        return Ok((Box::new(rejoined), false));
    }

    if keys.passphrase.is_none() && keys.identities.is_empty() {
        return Err(CryptError::KeysMissing);
    }
    let decryptor =
        age::Decryptor::new_buffered(io::BufReader::new(rejoined)).map_err(header_error)?;

    let reader = if decryptor.is_scrypt() {
        let Some(pass) = &keys.passphrase else {
            return Err(CryptError::PassphraseNeeded);
        };
        let identity = age::scrypt::Identity::new(SecretString::from(pass.expose().clone()));
        decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(header_error)?
    } else {
        if keys.identities.is_empty() {
            return Err(CryptError::IdentityNeeded);
        }
        let identities = keys
            .identities
            .iter()
            .enumerate()
            .map(|(i, s)| {
                x25519_identity(s.expose()).map_err(|reason| CryptError::BadIdentity {
                    index: i + 1,
                    reason: reason.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        decryptor
            .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
            .map_err(header_error)?
    };
    Ok((Box::new(Decrypting(reader)), true))
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn header_error(e: age::DecryptError) -> CryptError {
    use age::DecryptError as D;
    match e {
        D::DecryptionFailed | D::KeyDecryptionFailed | D::NoMatchingKeys => CryptError::WrongKey,
        D::ExcessiveWork { required, target } => CryptError::ExcessiveWork { required, target },
        D::UnknownFormat => CryptError::UnknownFormat,
        D::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => CryptError::Truncated(e),
        D::Io(e) => CryptError::Read(e),
        other => CryptError::DamagedHeader(other.to_string()),
    }
}

/// age's stream reader, with its authentication and truncation errors made explicit: the
/// `io::Error` keeps its kind and carries a [`CryptError`]: `Damaged` for `InvalidData` (a chunk
/// failed authentication), `Truncated` for `UnexpectedEof` (the stream ended before its last
/// chunk). Other errors of the underlying input pass through unchanged.
struct Decrypting<R>(R);

impl<R: Read> Read for Decrypting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            let kind = e.kind();
            match kind {
                io::ErrorKind::InvalidData => io::Error::new(kind, CryptError::Damaged(e)),
                io::ErrorKind::UnexpectedEof => io::Error::new(kind, CryptError::Truncated(e)),
                _ => e,
            }
        })
    }
}

#[cfg(test)]
mod tests;
