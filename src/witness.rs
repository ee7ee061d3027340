//! The rollback witness: where the vault's audit chain stood after its last commit, kept
//! outside the vault file, so that an open of an older copy of the file is caught without the
//! user managing checkpoints.
//!
//! The witness holds the vault id and a [`Checkpoint`] (the audit log's length and the first 16
//! bytes of its head MAC). It is written **after** every commit, so a crash can only leave it
//! behind the file (never ahead): an open accepts a file whose chain contains the witness's
//! position, and refuses one that is shorter ([`Error::BehindWitness`], naming both lengths)
//! or whose chain differs at that position ([`Error::RolledBack`]: another copy, or an older
//! copy written to since). A master-key rotation re-keys every MAC of the chain, so it writes
//! the witness twice: before its commit with both the old and the new position (either is
//! accepted), after it with the new one alone.
//!
//! Copies: a witness belongs to one file. [`FileWitness::for_vault`] names the witness after the
//! vault's id and its canonical path, so a copy (`backup_to`, a file copied by hand) opened at
//! another path has a witness of its own and both can be used side by side; a copy put back at
//! the original's path is refused until an owner accepts it with
//! [`Options::reset_witness`](crate::Options::reset_witness) (recorded as `WitnessReset`).

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::audit::Checkpoint;
use crate::crypto;
use crate::error::{Error, Result};

/// Where a vault's audit chain stood: its id, the position after the last commit, and during a
/// master-key rotation the position before it (either is accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WitnessState {
    /// The vault's id.
    pub vault_id: [u8; 16],
    /// The audit chain after the last commit.
    pub at: Checkpoint,
    /// A second accepted position (the chain before a rotation that may not have committed).
    pub also: Option<Checkpoint>,
}

impl WitnessState {
    /// The state of a vault whose chain stands at `at`.
    pub fn new(vault_id: [u8; 16], at: Checkpoint) -> Self {
        WitnessState {
            vault_id,
            at,
            also: None,
        }
    }

    fn encode(&self) -> String {
        let mut s = format!(
            "tresor-witness-1\n{}\n{}\n",
            crypto::hex(&self.vault_id),
            self.at
        );
        if let Some(also) = self.also {
            s.push_str(&format!("{also}\n"));
        }
        s
    }

    fn decode(text: &str) -> Option<WitnessState> {
        let mut lines = text.lines();
        if lines.next()? != "tresor-witness-1" {
            return None;
        }
        let vault_id = crypto::unhex::<16>(lines.next()?)?;
        let at = lines.next()?.parse().ok()?;
        let also = match lines.next() {
            Some(l) => Some(l.parse().ok()?),
            None => None,
        };
        if lines.next().is_some() {
            return None;
        }
        Some(WitnessState { vault_id, at, also })
    }
}

/// A place outside the vault file that remembers where its audit chain stood: a file
/// ([`FileWitness`]), or anything an app implements (an OS keychain entry, a row in the app's
/// own database, a server).
///
/// `store` is called after every commit; it should be durable and atomic (the old state or the
/// new one, never a torn one). A failed `store` leaves the witness behind, which is safe.
pub trait Witness: Send + Sync + fmt::Debug {
    /// The state last stored for the vault `vault_id`, if any. A state stored for another vault
    /// counts as none.
    fn load(&self, vault_id: &[u8; 16]) -> io::Result<Option<WitnessState>>;
    /// Replaces the stored state.
    fn store(&self, state: &WitnessState) -> io::Result<()>;
}

/// A witness kept in one small file (created with mode 0600; replaced atomically by a rename).
///
/// ```
/// use tresor::{Credential, FileWitness, Options, Vault};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("app.tresor");
/// let key = Credential::generate_key()?;
/// drop(Vault::create(&path, &key, Options::new())?);
/// let witness = FileWitness::for_vault(dir.path().join("state"), &path)?;
/// let vault = Vault::open(&path, &key, Options::new().witness(witness))?;
/// vault.set("db-password", "hunter2")?;
/// # Ok::<(), tresor::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct FileWitness {
    path: PathBuf,
}

/// The largest witness file read (a valid one is under 200 bytes).
const MAX_WITNESS_LEN: u64 = 4096;

impl FileWitness {
    /// A witness in the file `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileWitness { path: path.into() }
    }

    /// The witness of the vault file `vault_path` in the directory `dir` (created, mode 0700,
    /// when first written): one file per canonical vault path, so copies at other paths have
    /// witnesses of their own. The vault file's directory must exist (the file need not yet).
    pub fn for_vault(dir: impl AsRef<Path>, vault_path: impl AsRef<Path>) -> Result<Self> {
        let path = vault_path.as_ref();
        let canonical = match std::fs::canonicalize(path) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let name = path.file_name().ok_or(e)?;
                std::fs::canonicalize(parent)?.join(name)
            }
            Err(e) => return Err(e.into()),
        };
        let digest = blake3::hash(canonical.as_os_str().as_encoded_bytes());
        let name = format!("{}.witness", crypto::hex(&digest.as_bytes()[..16]));
        Ok(FileWitness::new(dir.as_ref().join(name)))
    }

    /// The file this witness lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Witness for FileWitness {
    fn load(&self, vault_id: &[u8; 16]) -> io::Result<Option<WitnessState>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut text = String::new();
        file.take(MAX_WITNESS_LEN).read_to_string(&mut text)?;
        let state = WitnessState::decode(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the witness file {} is damaged", self.path.display()),
            )
        })?;
        Ok((state.vault_id == *vault_id).then_some(state))
    }

    fn store(&self, state: &WitnessState) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::files::create_private_dir(dir)?;
        let tmp = self.path.with_extension("witness.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = crate::files::create_private(&tmp)?;
        f.write_all(state.encode().as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        // The rename is durable once the directory is (best effort where it cannot be opened).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// How an open checks the witness: the file's chain must contain one of its positions.
pub(crate) enum Verdict {
    /// The file is at or ahead of the witness.
    Current,
    /// The file's chain is shorter than the witness's.
    Behind { file: u64, witness: u64 },
    /// The file's chain differs from the witness's at the witness's position.
    Diverged,
}

impl Verdict {
    pub(crate) fn into_result(self) -> Result<()> {
        match self {
            Verdict::Current => Ok(()),
            Verdict::Behind { file, witness } => Err(Error::BehindWitness { file, witness }),
            Verdict::Diverged => Err(Error::RolledBack(
                "the vault file is not the copy its witness last saw (another copy, or an older \
                 copy that was written to since)",
            )),
        }
    }
}

/// Judges a file whose chain has `len` records against `state`; `mac_at(seq)` gives the first
/// 16 bytes of the chain MAC after record `seq`, if a row ends there.
pub(crate) fn judge(
    state: &WitnessState,
    len: u64,
    mut mac_at: impl FnMut(u64) -> Result<Option<[u8; 16]>>,
) -> Result<Verdict> {
    let mut behind = None;
    for cp in std::iter::once(state.at).chain(state.also) {
        if cp.seq > len {
            behind = Some(behind.map_or(cp.seq, |b: u64| b.min(cp.seq)));
            continue;
        }
        if let Some(mac) = mac_at(cp.seq)?
            && crypto::mac_eq(&mac, &cp.mac)
        {
            return Ok(Verdict::Current);
        }
    }
    Ok(match behind {
        Some(witness) => Verdict::Behind { file: len, witness },
        None => Verdict::Diverged,
    })
}
