use std::io::{self, Read, Write};
use std::time::Instant;

use age::secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::*;

/// Fast scrypt for tests only (age's default targets ~1 s). Real use goes through `encrypt`.
const TEST_WORK_FACTOR: u8 = 10;

fn pass(s: &str) -> Secret<String> {
    Secret::new(s.to_string())
}

fn seal(data: &[u8], protection: &Protection) -> Vec<u8> {
    let mut w = encrypt_with_work_factor(Vec::new(), protection, Some(TEST_WORK_FACTOR)).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// Opens and reads everything; the outer error is `open`'s, the inner one `read`'s.
fn unseal(bytes: &[u8], keys: &Keys) -> Result<(io::Result<Vec<u8>>, bool), CryptError> {
    let (mut r, encrypted) = open(bytes, keys)?;
    let mut out = Vec::new();
    Ok((r.read_to_end(&mut out).map(|_| out), encrypted))
}

fn passphrase_keys(p: &str) -> Keys {
    Keys {
        passphrase: Some(pass(p)),
        identities: vec![],
    }
}

fn identity_keys(ids: &[&age::x25519::Identity]) -> Keys {
    Keys {
        passphrase: None,
        identities: ids
            .iter()
            .map(|i| Secret::new(i.to_string().expose_secret().to_string()))
            .collect(),
    }
}

/// Deterministic, incompressible-looking bytes.
fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A writer whose bytes stay visible to the test while an encryptor owns it.
#[derive(Clone, Default)]
struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The CryptError inside an io::Error from `read`.
fn inner(e: &io::Error) -> &CryptError {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<CryptError>())
        .unwrap_or_else(|| panic!("io error without a CryptError: {e:?}"))
}

/// Offset of the first payload byte: after the header's `--- MAC` line and the 16-byte nonce.
fn payload_offset(ct: &[u8]) -> usize {
    let mac_line = ct.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    let end = mac_line + ct[mac_line..].iter().position(|&b| b == b'\n').unwrap() + 1;
    end + 16
}

#[test]
fn passphrase_round_trip() {
    let plain = data(100_000);
    let ct = seal(&plain, &Protection::Passphrase(pass("correct horse")));
    assert!(ct.starts_with(b"age-encryption.org/v1\n"));
    assert_ne!(&ct[ct.len() - 1000..], &plain[plain.len() - 1000..]);
    let (out, encrypted) = unseal(&ct, &passphrase_keys("correct horse")).unwrap();
    assert!(encrypted);
    assert_eq!(out.unwrap(), plain);
}

#[test]
fn passphrase_at_default_work_factor_round_trip() {
    // The real path: age picks the work factor (about 1 s on this machine, in this build).
    let plain = data(10_000);
    let t = Instant::now();
    let mut w = encrypt(Vec::new(), &Protection::Passphrase(pass("pw"))).unwrap();
    assert!(w.is_encrypted());
    w.write_all(&plain).unwrap();
    let ct = w.finish().unwrap();
    let enc = t.elapsed();
    let t = Instant::now();
    let (out, _) = unseal(&ct, &passphrase_keys("pw")).unwrap();
    assert_eq!(out.unwrap(), plain);
    let header = String::from_utf8_lossy(&ct[..payload_offset(&ct)]).into_owned();
    let log_n = header.lines().nth(1).unwrap_or_default().to_string();
    eprintln!(
        "scrypt at age's default work factor: encrypt {enc:?}, decrypt {:?}, stanza {log_n:?}",
        t.elapsed()
    );
}

#[test]
fn x25519_round_trip() {
    let alice = age::x25519::Identity::generate();
    let bob = age::x25519::Identity::generate();
    let recipients = vec![alice.to_public().to_string(), bob.to_public().to_string()];
    for r in &recipients {
        parse_recipient(r).unwrap();
    }
    let plain = data(300_000);
    let ct = seal(&plain, &Protection::Recipients(recipients));
    for who in [&alice, &bob] {
        let (out, encrypted) = unseal(&ct, &identity_keys(&[who])).unwrap();
        assert!(encrypted);
        assert_eq!(out.unwrap(), plain);
    }
    // Extra identities and a passphrase alongside do not get in the way.
    let other = age::x25519::Identity::generate();
    let mut keys = identity_keys(&[&other, &bob]);
    keys.passphrase = Some(pass("unused"));
    assert_eq!(unseal(&ct, &keys).unwrap().0.unwrap(), plain);
}

#[test]
fn plain_passes_through_both_ways() {
    let plain = data(70_000);
    let mut w = encrypt(Vec::new(), &Protection::None).unwrap();
    assert!(!w.is_encrypted());
    w.write_all(&plain).unwrap();
    let written = w.finish().unwrap();
    assert_eq!(written, plain);

    // No keys are needed for a plain backup, and the peeked bytes come back first.
    let (out, encrypted) = unseal(&written, &Keys::default()).unwrap();
    assert!(!encrypted);
    assert_eq!(out.unwrap(), plain);

    // Shorter than the peek, empty, and almost-but-not-quite the magic.
    for short in [
        &b""[..],
        b"a",
        b"age-encryption",
        b"age-encryptio.org/v1\nrest",
    ] {
        let (out, encrypted) = unseal(short, &Keys::default()).unwrap();
        assert!(!encrypted);
        assert_eq!(out.unwrap(), short);
    }
}

#[test]
fn plain_peek_survives_one_byte_reads() {
    /// Hands out one byte per read, as a pipe may.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&b, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = b;
            self.0 = rest;
            Ok(1)
        }
    }
    let plain = data(5_000);
    let (mut r, encrypted) = open(Trickle(&plain), &Keys::default()).unwrap();
    assert!(!encrypted);
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, plain);

    let ct = seal(&plain, &Protection::Passphrase(pass("pw")));
    let (mut r, encrypted) = open(Trickle(&ct), &passphrase_keys("pw")).unwrap();
    assert!(encrypted);
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, plain);
}

#[test]
fn wrong_passphrase_is_refused() {
    let ct = seal(b"secret tar", &Protection::Passphrase(pass("right")));
    let err = unseal(&ct, &passphrase_keys("wrong")).unwrap_err();
    assert!(matches!(err, CryptError::WrongKey), "{err:?}");
    assert!(err
        .to_string()
        .starts_with("the passphrase or identity does not open this backup"));
    assert!(!err.to_string().contains("wrong"));
}

#[test]
fn wrong_identity_is_refused() {
    let alice = age::x25519::Identity::generate();
    let mallory = age::x25519::Identity::generate();
    let ct = seal(
        b"secret tar",
        &Protection::Recipients(vec![alice.to_public().to_string()]),
    );
    let err = unseal(&ct, &identity_keys(&[&mallory])).unwrap_err();
    assert!(matches!(err, CryptError::WrongKey), "{err:?}");
}

#[test]
fn encrypted_without_keys_is_refused() {
    let ct = seal(b"secret tar", &Protection::Passphrase(pass("pw")));
    let err = unseal(&ct, &Keys::default()).unwrap_err();
    assert!(matches!(err, CryptError::KeysMissing), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the backup is encrypted: give the passphrase with DTR_BACKUP_PASSPHRASE or the identity \
         with --backup-identity-file"
    );
}

#[test]
fn the_wrong_kind_of_key_is_named() {
    let alice = age::x25519::Identity::generate();
    let by_pass = seal(b"x", &Protection::Passphrase(pass("pw")));
    let by_key = seal(
        b"x",
        &Protection::Recipients(vec![alice.to_public().to_string()]),
    );
    let err = unseal(&by_pass, &identity_keys(&[&alice])).unwrap_err();
    assert!(matches!(err, CryptError::PassphraseNeeded), "{err:?}");
    let err = unseal(&by_key, &passphrase_keys("pw")).unwrap_err();
    assert!(matches!(err, CryptError::IdentityNeeded), "{err:?}");
}

#[test]
fn a_flipped_bit_in_the_body_is_a_read_error() {
    let plain = data(200_000); // four chunks: flip in the first, a middle and the last one
    let ct = seal(&plain, &Protection::Passphrase(pass("pw")));
    let start = payload_offset(&ct);
    for at in [start, start + 100_000, ct.len() - 1] {
        let mut bad = ct.clone();
        bad[at] ^= 0x04;
        let (out, encrypted) = unseal(&bad, &passphrase_keys("pw")).unwrap();
        assert!(encrypted);
        let err = out.expect_err("a damaged chunk must not read");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(inner(&err), CryptError::Damaged(_)), "{err:?}");
        assert!(err.to_string().contains("damaged"), "{err}");
    }
    // In the nonce: the payload key changes, so the first chunk fails.
    let mut bad = ct.clone();
    bad[start - 1] ^= 0x01;
    let err = unseal(&bad, &passphrase_keys("pw")).unwrap().0.unwrap_err();
    assert!(matches!(inner(&err), CryptError::Damaged(_)), "{err:?}");
}

#[test]
fn a_flipped_bit_in_the_header_mac_is_refused_at_open() {
    let ct = seal(b"x", &Protection::Passphrase(pass("pw")));
    let mac = ct.windows(4).position(|w| w == b"\n---").unwrap() + 6;
    let mut bad = ct.clone();
    bad[mac] = if bad[mac] == b'A' { b'B' } else { b'A' };
    let err = unseal(&bad, &passphrase_keys("pw")).unwrap_err();
    assert!(matches!(err, CryptError::DamagedHeader(_)), "{err:?}");
}

#[test]
fn a_truncated_ciphertext_is_a_read_error() {
    const CHUNK: usize = 64 * 1024;
    const TAG: usize = 16;
    let plain = data(3 * CHUNK + 123);
    let ct = seal(&plain, &Protection::Passphrase(pass("pw")));
    let start = payload_offset(&ct);
    // Mid-chunk, exactly after a full chunk, one byte short, and payload gone altogether.
    for len in [
        start + CHUNK / 2,
        start + CHUNK + TAG,
        start + 2 * (CHUNK + TAG),
        ct.len() - 1,
        start,
    ] {
        let (out, encrypted) = unseal(&ct[..len], &passphrase_keys("pw")).unwrap();
        assert!(encrypted);
        let err = out.expect_err("a truncated backup must not read to the end");
        let kind = err.kind();
        assert!(
            matches!(
                inner(&err),
                CryptError::Truncated(_) | CryptError::Damaged(_)
            ),
            "{len}: {err:?}"
        );
        assert!(
            kind == io::ErrorKind::UnexpectedEof || kind == io::ErrorKind::InvalidData,
            "{kind:?}"
        );
    }
    // Cut inside the header: refused at open.
    let err = unseal(&ct[..start - 20], &passphrase_keys("pw")).unwrap_err();
    assert!(matches!(err, CryptError::Truncated(_)), "{err:?}");
}

#[test]
fn an_unfinished_writer_leaves_a_backup_that_does_not_read() {
    let out = Shared::default();
    let mut w = encrypt_with_work_factor(
        out.clone(),
        &Protection::Passphrase(pass("pw")),
        Some(TEST_WORK_FACTOR),
    )
    .unwrap();
    w.write_all(&data(100_000)).unwrap(); // one full chunk reaches the output
    w.flush().unwrap();
    drop(w); // no finish(): the last chunk is never written
    let partial = out.0.borrow().clone();
    assert!(partial.len() > 64 * 1024);
    let err = unseal(&partial, &passphrase_keys("pw"))
        .unwrap()
        .0
        .unwrap_err();
    assert!(matches!(inner(&err), CryptError::Truncated(_)), "{err:?}");
    assert!(err.to_string().contains("ends early"), "{err}");
}

#[test]
fn several_mib_stream_without_buffering_everything() {
    const TOTAL: usize = 8 << 20;
    const CHUNK: usize = 64 * 1024;
    let plain = data(TOTAL);
    let alice = age::x25519::Identity::generate();

    // Writing: the output keeps up with the input, one chunk behind at most.
    let out = Shared::default();
    let mut w = encrypt_with_work_factor(
        out.clone(),
        &Protection::Recipients(vec![alice.to_public().to_string()]),
        None,
    )
    .unwrap();
    let mut written = 0;
    for piece in plain.chunks(1 << 20) {
        w.write_all(piece).unwrap();
        written += piece.len();
        let reached = out.0.borrow().len();
        assert!(reached + CHUNK >= written, "{reached} of {written}");
    }
    w.finish().unwrap();
    let ct = out.0.borrow().clone();
    assert!(ct.len() > TOTAL && ct.len() < TOTAL + TOTAL / CHUNK * 16 + 1024);

    // Reading: how far the input has been consumed when the first bytes come out.
    struct Counting<'a> {
        inner: &'a [u8],
        consumed: std::rc::Rc<std::cell::Cell<usize>>,
    }
    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.consumed.set(self.consumed.get() + n);
            Ok(n)
        }
    }
    let consumed = std::rc::Rc::new(std::cell::Cell::new(0));
    let input = Counting {
        inner: &ct,
        consumed: consumed.clone(),
    };
    let (mut r, encrypted) = open(input, &identity_keys(&[&alice])).unwrap();
    assert!(encrypted);
    let mut first = vec![0u8; 4096];
    r.read_exact(&mut first).unwrap();
    assert_eq!(first, plain[..4096]);
    assert!(
        consumed.get() <= 4 * CHUNK,
        "read {} bytes of input for the first 4 KiB of output",
        consumed.get()
    );
    let mut hasher = Sha256::new();
    hasher.update(&first);
    io::copy(&mut r, &mut hasher).unwrap();
    assert_eq!(hasher.finalize()[..], Sha256::digest(&plain)[..]);
    assert_eq!(consumed.get(), ct.len());
}

#[test]
fn recipients_are_checked() {
    let alice = age::x25519::Identity::generate();
    parse_recipient(&alice.to_public().to_string()).unwrap();

    let err = parse_recipient("age1notakey").unwrap_err();
    assert!(matches!(err, CryptError::BadRecipient { .. }), "{err:?}");
    assert!(err.to_string().contains("age1notakey"), "{err}");

    let err = parse_recipient("ssh-ed25519 AAAA hunter2").unwrap_err();
    assert!(matches!(err, CryptError::BadRecipient { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let secret = alice.to_string().expose_secret().to_string();
    let err = parse_recipient(&secret).unwrap_err();
    assert!(matches!(err, CryptError::SecretKeyAsRecipient), "{err:?}");
    assert!(!err.to_string().contains(&secret[16..]));
    let err = parse_recipient(&secret.to_lowercase()).unwrap_err();
    assert!(matches!(err, CryptError::SecretKeyAsRecipient), "{err:?}");

    let err = encrypt(Vec::new(), &Protection::Recipients(vec![]))
        .err()
        .unwrap();
    assert!(matches!(err, CryptError::NoRecipients), "{err:?}");
    let err = encrypt(Vec::new(), &Protection::Recipients(vec!["nope".into()]))
        .err()
        .unwrap();
    assert!(matches!(err, CryptError::BadRecipient { .. }), "{err:?}");
    let err = encrypt(Vec::new(), &Protection::Passphrase(pass("")))
        .err()
        .unwrap();
    assert!(matches!(err, CryptError::EmptyPassphrase), "{err:?}");
}

#[test]
fn identity_files_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let alice = age::x25519::Identity::generate();
    let bob = age::x25519::Identity::generate();
    let a = alice.to_string().expose_secret().to_string();
    let b = bob.to_string().expose_secret().to_string();

    let good = dir.path().join("key.txt");
    std::fs::write(
        &good,
        format!(
            "# created: 2024-01-01T00:00:00Z\n# public key: {}\n{a}\r\n\n  {b}  \n",
            alice.to_public()
        ),
    )
    .unwrap();
    let keys = read_identity_file(&good).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].expose(), &a);
    assert_eq!(keys[1].expose(), &b);

    // And they open a backup made for bob.
    let ct = seal(
        b"tar",
        &Protection::Recipients(vec![bob.to_public().to_string()]),
    );
    let opened = Keys {
        passphrase: None,
        identities: keys,
    };
    assert_eq!(unseal(&ct, &opened).unwrap().0.unwrap(), b"tar");

    let missing = dir.path().join("missing.txt");
    let err = read_identity_file(&missing).unwrap_err();
    assert!(
        matches!(err, CryptError::IdentityFileUnreadable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing.txt"), "{err}");

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, format!("# comment\n{a}\nAGE-SECRET-KEY-1HUNTER2\n")).unwrap();
    let err = read_identity_file(&bad).unwrap_err();
    assert!(
        matches!(err, CryptError::BadIdentityFile { line: 3, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("HUNTER2"), "{err}");
    assert!(!err.to_string().contains(&a), "{err}");

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# only a comment\n\n").unwrap();
    let err = read_identity_file(&empty).unwrap_err();
    assert!(
        matches!(err, CryptError::EmptyIdentityFile { .. }),
        "{err:?}"
    );

    let encrypted = dir.path().join("enc.txt");
    std::fs::write(
        &encrypted,
        seal(a.as_bytes(), &Protection::Passphrase(pass("p"))),
    )
    .unwrap();
    let err = read_identity_file(&encrypted).unwrap_err();
    assert!(matches!(err, CryptError::BadIdentityFile { .. }), "{err:?}");
}

#[test]
fn a_malformed_identity_in_keys_is_named_by_position() {
    let alice = age::x25519::Identity::generate();
    let ct = seal(
        b"tar",
        &Protection::Recipients(vec![alice.to_public().to_string()]),
    );
    let keys = Keys {
        passphrase: None,
        identities: vec![pass("AGE-SECRET-KEY-1HUNTER2")],
    };
    let err = unseal(&ct, &keys).unwrap_err();
    assert!(
        matches!(err, CryptError::BadIdentity { index: 1, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("HUNTER2"), "{err}");
}

#[test]
fn armored_and_newer_formats_are_named() {
    let err = unseal(
        b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n",
        &Keys::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CryptError::Armored), "{err:?}");

    let err = unseal(b"age-encryption.org/v2\nwhatever\n", &passphrase_keys("pw")).unwrap_err();
    assert!(matches!(err, CryptError::UnknownFormat), "{err:?}");
}

#[test]
fn debug_output_hides_secrets() {
    let p = Protection::Passphrase(pass("hunter2"));
    let k = passphrase_keys("hunter2");
    assert!(!format!("{p:?} {k:?}").contains("hunter2"));
}
