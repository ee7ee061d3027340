//! The command line's grammar: every command, flag and environment variable (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use tresor::{Checkpoint, KdfParams, Timestamp, VersionId};

use crate::error::quote;
use crate::output::{escape, is_hostile};
use crate::parse;

/// Shown in a usage error instead of an argument that starts with `-` and is not a flag.
const HIDDEN: &str = "<hidden>";

/// Prints a usage error (exit status 2) or the help or version asked for (exit status 0).
///
/// An argument that starts with `-` but is no flag of tresor's may be a secret value typed in
/// the wrong place (`tresor set NAME -s3cret --tag …`): it is never repeated, not even the
/// first letters clap names when it reads it as a cluster of short flags. Whatever else the
/// message quotes is escaped for the terminal.
pub fn usage_error(e: &clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let flags = flags();
    // clap's message keeps the line breaks of what it quotes (and drops what looks like an
    // ANSI sequence): for an argument holding a control character, say it from the error's
    // context instead, every quoted part escaped.
    let text = if argv.iter().any(|a| a.chars().any(is_hostile)) {
        from_context(e, &flags)
    } else {
        e.render().to_string()
    };
    let text = redact(&text, &argv, &flags);
    let text: Vec<String> = text.lines().map(|l| escape(l).into_owned()).collect();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", text.join("\n"));
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

/// A usage error told from its context: the kind, the argument, the value (escaped, or
/// [`HIDDEN`] when it starts with `-` and is no flag).
fn from_context(e: &clap::Error, flags: &BTreeSet<String>) -> String {
    use clap::error::{ContextKind, ContextValue};
    let mut msg = format!("error: {}", e.kind());
    if let Some(arg) = e.get(ContextKind::InvalidArg) {
        let arg = arg.to_string();
        if arg.starts_with('-') && !flags.contains(arg.split(' ').next().unwrap_or("")) {
            msg.push_str(&format!(" ({HIDDEN})"));
        } else {
            msg.push_str(&format!(" ({})", escape(&arg)));
        }
    }
    if let Some(ContextValue::String(v)) = e.get(ContextKind::InvalidValue) {
        if v.starts_with('-') && !flags.contains(v.as_str()) {
            msg.push_str(&format!(": '{HIDDEN}'"));
        } else {
            msg.push_str(&format!(": {}", quote(v)));
        }
    }
    msg.push_str("\n\nFor more information, try '--help'.");
    msg
}

/// Every flag of every command, as typed: `--vault`, `-h`, …
fn flags() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeSet<String>) {
        for a in cmd.get_arguments() {
            if let Some(longs) = a.get_long_and_visible_aliases() {
                out.extend(longs.into_iter().map(|l| format!("--{l}")));
            }
            if let Some(shorts) = a.get_short_and_visible_aliases() {
                out.extend(shorts.into_iter().map(|s| format!("-{s}")));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = BTreeSet::new();
    walk(&cmd, &mut out);
    out
}

/// `text` with every argument of `argv` that starts with `-` and is not a flag (nor
/// `--flag=…` for a flag) replaced by [`HIDDEN`], and the short flag clap would read first
/// in it (`-s` of `-s3cret`) too.
fn redact(text: &str, argv: &[String], flags: &BTreeSet<String>) -> String {
    let mut hidden: Vec<(String, String)> = Vec::new();
    for a in argv {
        if a == "--" {
            break;
        }
        if !a.starts_with('-') || a == "-" || flags.contains(a.as_str()) {
            continue;
        }
        if let Some((flag, _)) = a.split_once('=')
            && flags.contains(flag)
        {
            continue;
        }
        hidden.push((a.clone(), HIDDEN.to_string()));
        if !a.starts_with("--")
            && let Some(first) = a.chars().nth(1)
        {
            // As clap quotes it: '-s' and '-- -s'.
            hidden.push((format!("-{first}'"), format!("{HIDDEN}'")));
        }
    }
    // The longest first, so that a prefix does not leave the rest of a longer one behind.
    hidden.sort_by_key(|(h, _)| std::cmp::Reverse(h.len()));
    let mut text = text.to_string();
    for (h, with) in &hidden {
        text = text.replace(h.as_str(), with);
    }
    text
}

/// An embedded, single-file, encrypted and audited secrets vault.
///
/// The vault is the file given by --vault (or TRESOR_VAULT), else ./.tresor/<profile>.tresor.
/// It is unlocked by --key-file, --passphrase-file, TRESOR_PASSPHRASE, or a prompt on a terminal.
#[derive(Debug, Parser)]
#[command(
    name = "tresor",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the vault is, how to unlock it, and how it is opened.
#[derive(Clone, Debug, Args)]
pub struct Global {
    /// The vault file [default: ./.tresor/<profile>.tresor]
    #[arg(
        long,
        global = true,
        env = "TRESOR_VAULT",
        value_name = "PATH",
        help_heading = "Vault"
    )]
    pub vault: Option<PathBuf>,

    /// Profile: the default vault is ./.tresor/<NAME>.tresor
    #[arg(
        long,
        global = true,
        env = "TRESOR_PROFILE",
        default_value = "dev",
        value_name = "NAME",
        value_parser = parse::profile,
        help_heading = "Vault"
    )]
    pub profile: String,

    /// Unlock with this key file
    ///
    /// A 256-bit key made by `tresor keygen`: 64 hex characters and a newline, or 32 raw bytes.
    #[arg(
        long,
        global = true,
        env = "TRESOR_KEY_FILE",
        value_name = "PATH",
        help_heading = "Vault"
    )]
    pub key_file: Option<PathBuf>,

    /// Unlock with the passphrase in this file
    ///
    /// One trailing newline is ignored. Without a key or passphrase file, the environment
    /// variable TRESOR_PASSPHRASE holds the passphrase itself; without that, a prompt asks for it
    /// on the terminal.
    #[arg(
        long,
        global = true,
        env = "TRESOR_PASSPHRASE_FILE",
        value_name = "PATH",
        help_heading = "Vault"
    )]
    pub passphrase_file: Option<PathBuf>,

    /// Unlock with the age identities in this file (repeatable)
    ///
    /// An age identity file (`age-keygen`'s, or a plugin's such as `age-plugin-yubikey
    /// --identity`; any number of identities) or an SSH private key, for key slots made with
    /// `--age`. Plugin identities need their plugin on PATH.
    #[arg(
        long,
        global = true,
        env = "TRESOR_AGE_IDENTITY",
        value_name = "PATH",
        help_heading = "Vault"
    )]
    pub age_identity: Vec<PathBuf>,

    /// Accept a key file that its group or other users can read
    ///
    /// Without it such a key file is refused: anyone who reads it opens the vault.
    #[arg(long, global = true, help_heading = "Vault")]
    pub allow_insecure_key_file: bool,

    /// Where rollback witnesses are kept [default: $XDG_STATE_HOME/tresor/witness, else
    /// ~/.local/state/tresor/witness]
    ///
    /// After every change, where the vault's audit log stands is written to a small file here
    /// (one per vault file path); an older copy of the vault put back in its place is then
    /// refused. `tresor witness reset` accepts a copy restored on purpose.
    #[arg(
        long,
        global = true,
        env = "TRESOR_WITNESS_DIR",
        value_name = "DIR",
        help_heading = "Vault"
    )]
    pub witness_dir: Option<PathBuf>,

    /// Keep no rollback witness for this command (neither check nor update it)
    #[arg(long, global = true, env = "TRESOR_NO_WITNESS", help_heading = "Vault")]
    pub no_witness: bool,

    /// Actor named in audit records [default: the unlocking slot's label]
    #[arg(
        long,
        global = true,
        env = "TRESOR_ACTOR",
        value_name = "NAME",
        help_heading = "Vault"
    )]
    pub actor: Option<String>,

    /// How reads are audited
    ///
    /// Recorded before the value is shown (durable), when the command ends (buffered), or not
    /// at all (off). Writes and refusals are always recorded.
    #[arg(
        long,
        global = true,
        env = "TRESOR_AUDIT_READS",
        value_enum,
        default_value = "durable",
        value_name = "LEVEL",
        help_heading = "Vault"
    )]
    pub audit_reads: AuditReads,

    /// Refuse a vault rolled back behind this checkpoint
    ///
    /// A checkpoint printed by `tresor checkpoint`. A vault file that does not contain it (an
    /// older copy put back in its place) is refused.
    #[arg(
        long,
        global = true,
        env = "TRESOR_CHECKPOINT",
        value_name = "CHECKPOINT",
        value_parser = parse::checkpoint,
        help_heading = "Vault"
    )]
    pub expect_checkpoint: Option<Checkpoint>,

    /// Argon2id cost of new passphrase slots: default, min, or M,T,P
    ///
    /// For `init`, `slot add` and `passwd`: `default` (64 MiB, t=3, p=4), `min` (19 MiB, t=2,
    /// p=1, the floor; fast, for tests and scripts), or MEMORY_KIB,ITERATIONS,PARALLELISM.
    #[arg(
        long,
        global = true,
        env = "TRESOR_KDF",
        default_value = "default",
        value_name = "COST",
        value_parser = parse::kdf,
        help_heading = "Vault"
    )]
    pub kdf: KdfParams,

    /// How long to wait for a vault file another command has open [seconds]
    ///
    /// When no agent or `tresor serve` holds the vault and another short command has the file
    /// open, retry for up to this long before failing with `locked`.
    #[arg(
        long,
        global = true,
        env = "TRESOR_WAIT",
        default_value_t = 5.0,
        value_name = "SECONDS",
        help_heading = "Vault"
    )]
    pub wait: f64,
}

/// The `--audit-reads` levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditReads {
    /// Each read's record is committed before its value is shown.
    Durable,
    /// Read records are committed when the command ends.
    Buffered,
    /// Reads are not recorded.
    Off,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new random 256-bit key file (mode 0600)
    Keygen(KeygenArgs),
    /// Create a vault unlocked by the key or passphrase given
    Init(InitArgs),
    /// Write a new version of a secret and print its version id
    Set(SetArgs),
    /// Write a secret's value to stdout, byte for byte
    Get(GetArgs),
    /// Show a secret's properties (never its value)
    Show(ShowArgs),
    /// List secrets (or deleted or expiring ones)
    List(ListArgs),
    /// List a secret's versions, newest first
    Versions(VersionsArgs),
    /// Change a version's properties without writing a new value
    Update(UpdateArgs),
    /// Soft-delete a secret (recoverable until its scheduled purge)
    Delete(NameArg),
    /// Bring a deleted secret back with all its versions
    Recover(NameArg),
    /// Remove a deleted secret for good
    Purge(NameArg),
    /// Write an encrypted backup of a secret with all its versions
    Backup(BackupArgs),
    /// Restore a secret from a backup file
    Restore(RestoreArgs),
    /// Write a consistent copy of the whole vault file
    Copy(CopyArgs),
    /// Show the audit log, or verify its chain
    Audit(AuditArgs),
    /// Print the head of the audit chain (for --expect-checkpoint)
    Checkpoint,
    /// Show the rollback witness, or accept a restored older copy of the vault
    #[command(subcommand)]
    Witness(WitnessCommand),
    /// List, add or remove key slots
    #[command(subcommand)]
    Slot(SlotCommand),
    /// Change the passphrase of a passphrase slot
    Passwd(PasswdArgs),
    /// Re-encrypt everything under a new master key
    RotateKey(RotateArgs),
    /// Compact the file, releasing the space of purged records
    Compact,
    /// Check the whole file: page checksums, every record, the audit chain
    Check,
    /// Show the vault's settings, or turn purge protection on
    Settings(SettingsArgs),
    /// Import secrets from a .env or JSON file, all in one transaction
    Import(ImportArgs),
    /// Export every secret's current value as .env or JSON
    Export(ExportArgs),
    /// Run a command with secrets in its environment
    Run(RunArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Raise Azure Event Grid events (new version, near expiry, expired) and write automatic
    /// backups for a vault no server holds, from its audit log
    Watch(crate::events::args::WatchArgs),
    /// List or restore the copies automatic backups wrote
    #[command(subcommand)]
    Backups(crate::events::args::BackupsCommand),
    /// Serve the vault over HTTPS as an Azure Key Vault secrets endpoint (for the Azure SDKs)
    #[cfg(feature = "server")]
    Serve(crate::serve::args::ServeArgs),
    /// Create, list or revoke the bearer tokens `tresor serve` accepts
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Token(crate::serve::args::TokenCommand),
    /// Add, list or remove managed identities, and print the environment that signs an app in
    /// as one through `tresor serve`
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Identity(crate::serve::args::IdentityCommand),
    /// Hold the vault open and unlocked, serving every tresor command and app of this user
    #[cfg(unix)]
    Agent(AgentArgs),
    /// Unlock the vault once for this session: start an agent in the background
    #[cfg(unix)]
    Unlock(AgentArgs),
    /// Stop the vault's agent: it wipes the key, closes the file and exits
    #[cfg(unix)]
    Lock,
    /// Show whether an agent or `tresor serve` holds the vault
    #[cfg(unix)]
    Status,
}

/// `agent` and `unlock`.
#[cfg(unix)]
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Lock (stop) after this long without a request: 15m, 1h, 90s, … (0 for never)
    #[arg(long, default_value = "15m", value_name = "DURATION", value_parser = parse::idle)]
    pub idle: std::time::Duration,
    /// Start in the background and return once it serves (`unlock` always does)
    #[arg(long)]
    pub daemon: bool,
    /// The background process itself (started by --daemon)
    #[arg(long, hide = true)]
    pub detached: bool,
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (must not exist)
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Days a deleted secret stays recoverable (7-90)
    #[arg(long, default_value_t = 90, value_name = "N", value_parser = clap::value_parser!(u16).range(7..=90))]
    pub retention_days: u16,
    /// Turn purge protection on: deleted secrets cannot be purged before their retention ends.
    /// It can never be turned off.
    #[arg(long)]
    pub purge_protection: bool,
    /// Label of the first key slot (named in audit records)
    #[arg(long, default_value = "owner", value_name = "L")]
    pub label: String,
    /// Keep at most N versions of each secret
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_versions: Option<u32>,
    #[command(flatten)]
    pub provider: NewProviderArgs,
}

/// A new key slot kept outside the vault: wrapped to age recipients, in the OS keychain, sealed
/// to a TPM, or by a key on a PKCS#11 token.
#[derive(Debug, Args)]
pub struct NewProviderArgs {
    /// The slot opens with an age identity: its key is wrapped to this recipient (repeatable;
    /// any one of them opens it)
    ///
    /// An X25519 recipient (`age1…`), an SSH public key (`ssh-ed25519 AAAA…`, `ssh-rsa AAAA…`)
    /// or an age plugin's recipient (`age1yubikey1…`: the plugin must be on PATH).
    #[arg(long = "age", value_name = "RECIPIENT", conflicts_with_all = ["keychain", "tpm"])]
    pub age: Vec<String>,
    /// The slot opens with a key kept in the OS keychain (Secret Service or kernel keyring on
    /// Linux, the macOS keychain, the Windows credential manager)
    #[arg(long)]
    pub keychain: bool,
    /// The credential store of --keychain: keyutils, secret-service, apple-keychain or windows
    /// [default: the platform's; on Linux the Secret Service when it answers, else keyutils]
    #[arg(long, value_name = "STORE", requires = "keychain")]
    pub keychain_store: Option<String>,
    /// The slot opens with this device's TPM 2.0: its key is sealed to the TPM (named by
    /// TRESOR_TPM_TCTI, TPM2TOOLS_TCTI or TCTI, else device:/dev/tpmrm0). Needs a tresor built
    /// with the `tpm` feature
    #[arg(long, conflicts_with_all = ["keychain", "pkcs11"])]
    pub tpm: bool,
    /// The SHA-256 PCRs the --tpm slot is bound to (their current values), e.g. 0,7: a device
    /// that booted something else cannot unseal it
    #[arg(long, value_name = "PCRS", requires = "tpm", value_delimiter = ',',
          value_parser = clap::value_parser!(u8).range(0..=23))]
    pub pcrs: Vec<u8>,
    /// The slot opens with a key on a PKCS#11 token (an HSM, a smart card, a YubiKey's PIV
    /// applet): its key is wrapped by the key this PKCS#11 URI names
    ///
    /// `pkcs11:token=LABEL;object=KEY` (RFC 7512; also serial=, id=, type=secret-key or
    /// type=private). The module comes from `?module-path=` or TRESOR_PKCS11_MODULE, the PIN
    /// from `pin-value=`/`pin-source=`, TRESOR_PKCS11_PIN, or a prompt.
    #[arg(long, value_name = "URI", conflicts_with_all = ["age", "keychain"])]
    pub pkcs11: Option<String>,
}

/// Properties shared by `set` and `update`.
#[derive(Debug, Args)]
pub struct TimeArgs {
    /// Expiry: an RFC 3339 time, a date (midnight UTC), or a duration from now (90d, 12h, 30m)
    #[arg(long, value_name = "WHEN", value_parser = parse::when)]
    pub expires: Option<Timestamp>,
    /// Not valid before: same forms as --expires
    #[arg(long, value_name = "WHEN", value_parser = parse::when)]
    pub not_before: Option<Timestamp>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("cas").args(["if_version", "if_absent"])))]
pub struct SetArgs {
    /// Secret name: 1-127 characters of 0-9, a-z, A-Z and '-'
    pub name: String,
    /// The value: avoid it, other users can read it in the process list (a warning says so).
    /// Without VALUE or --file the value is read from stdin byte for byte, or asked for
    /// (hidden) on a terminal.
    #[arg(conflicts_with = "file", allow_hyphen_values = true)]
    pub value: Option<String>,
    /// Read the value from this file, byte for byte
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Content type (free text, at most 255 characters)
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// A tag (repeatable; at most 15)
    #[arg(long = "tag", value_name = "K=V", value_parser = parse::tag)]
    pub tags: Vec<(String, String)>,
    #[command(flatten)]
    pub times: TimeArgs,
    /// Create the version disabled (its value cannot be read until enabled)
    #[arg(long)]
    pub disabled: bool,
    /// Check-and-set: fail unless the current version is V
    #[arg(long, value_name = "V", value_parser = parse::version)]
    pub if_version: Option<VersionId>,
    /// Check-and-set: fail if the secret exists (live or deleted)
    #[arg(long)]
    pub if_absent: bool,
    /// Keep at most N versions of this secret from now on
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_versions: Option<u32>,
    /// Store an empty value (refused otherwise: an empty stdin is more often a mistake)
    #[arg(long)]
    pub allow_empty: bool,
}

#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct GetArgs {
    /// Secret name
    pub name: String,
    /// A version id instead of the current version
    #[arg(long, value_name = "V", value_parser = parse::version)]
    pub version: Option<VersionId>,
    /// Refuse a value outside its not-before..expires window
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct ShowArgs {
    /// Secret name
    pub name: String,
    /// A version id instead of the current version
    #[arg(long, value_name = "V", value_parser = parse::version)]
    pub version: Option<VersionId>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// List deleted secrets, with their purge dates
    #[arg(long, conflicts_with = "expiring")]
    pub deleted: bool,
    /// List secrets expiring within this duration (30d, 12h, …) or already expired,
    /// soonest first
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub expiring: Option<Duration>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// Secret name
    pub name: String,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
#[command(group(
    ArgGroup::new("change")
        .args([
            "enable", "disable", "content_type", "no_content_type", "tags", "untag",
            "clear_tags", "expires", "no_expires", "not_before", "no_not_before",
        ])
        .required(true)
        .multiple(true)
))]
pub struct UpdateArgs {
    /// Secret name
    pub name: String,
    /// A version id instead of the current version
    #[arg(long, value_name = "V", value_parser = parse::version)]
    pub version: Option<VersionId>,
    /// Enable the version
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Disable the version (its value cannot be read)
    #[arg(long)]
    pub disable: bool,
    /// Set the content type
    #[arg(long, value_name = "TYPE", conflicts_with = "no_content_type")]
    pub content_type: Option<String>,
    /// Remove the content type
    #[arg(long)]
    pub no_content_type: bool,
    /// Add or change a tag (repeatable); other tags are kept
    #[arg(long = "tag", value_name = "K=V", value_parser = parse::tag)]
    pub tags: Vec<(String, String)>,
    /// Remove a tag (repeatable)
    #[arg(long, value_name = "K")]
    pub untag: Vec<String>,
    /// Remove every tag (before --tag applies)
    #[arg(long)]
    pub clear_tags: bool,
    /// Set the expiry (RFC 3339, a date, or a duration from now)
    #[arg(long, value_name = "WHEN", value_parser = parse::when, conflicts_with = "no_expires")]
    pub expires: Option<Timestamp>,
    /// Remove the expiry
    #[arg(long)]
    pub no_expires: bool,
    /// Set not-before (RFC 3339, a date, or a duration from now)
    #[arg(long, value_name = "WHEN", value_parser = parse::when, conflicts_with = "no_not_before")]
    pub not_before: Option<Timestamp>,
    /// Remove not-before
    #[arg(long)]
    pub no_not_before: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// Secret name
    pub name: String,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Secret name
    pub name: String,
    /// The backup file to write (must not exist)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `tresor backup`
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The copy to write (must not exist)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Verify the whole chain first (without --tail, print only the result)
    #[arg(long)]
    pub verify: bool,
    /// Show only the last N records
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Keep printing records as they commit (with --json: one Azure `AuditEvent` log entry per
    /// line); the vault is opened for a moment at each look
    #[arg(long)]
    pub follow: bool,
    /// How often --follow looks
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse::duration,
          requires = "follow")]
    pub interval: std::time::Duration,
    /// The vault's URL in --follow's entries (`tresor serve`'s URL)
    #[arg(
        long,
        default_value = "https://127.0.0.1:8443",
        value_name = "URL",
        requires = "follow"
    )]
    pub vault_url: String,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `tresor slot …`.
#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Where the witness is, and where it and the vault file stand
    Show,
    /// Accept the vault file as it is (an older copy restored on purpose; owner only, audited)
    Reset,
}

#[derive(Debug, Subcommand)]
pub enum SlotCommand {
    /// List the key slots
    List(JsonFlag),
    /// Add a key slot opened by a key file or a new passphrase
    Add(SlotAddArgs),
    /// Remove a key slot (never the last one)
    Remove(SlotRemoveArgs),
}

#[derive(Debug, Args)]
pub struct SlotAddArgs {
    /// The new slot opens with the key in this file (see `tresor keygen`)
    ///
    /// Here --key-file names the new key: the vault is unlocked as usual, by TRESOR_KEY_FILE, a
    /// passphrase, `--unlock-key-file`, or `tresor --key-file KEY slot add …`.
    #[arg(
        long = "key-file",
        id = "new_key_file",
        value_name = "NEWKEY",
        conflicts_with_all = ["new_passphrase_file", "age", "keychain", "tpm", "pkcs11"]
    )]
    pub new_key_file: Option<PathBuf>,
    /// Unlock the vault with this key file (after `add`, --key-file names the new key)
    // Sharing the global flag's id keeps clap from adding the global --key-file here.
    #[arg(long = "unlock-key-file", id = "key_file", value_name = "PATH")]
    pub unlock_key_file: Option<PathBuf>,
    /// The new slot opens with the passphrase in this file (else a prompt asks for one)
    #[arg(long, value_name = "F", conflicts_with_all = ["age", "keychain", "tpm", "pkcs11"])]
    pub new_passphrase_file: Option<PathBuf>,
    /// Label of the slot (named in audit records as the actor)
    #[arg(long)]
    pub label: String,
    /// What the slot's holder may do
    #[arg(long, value_enum)]
    pub role: RoleArg,
    #[command(flatten)]
    pub provider: NewProviderArgs,
}

/// The roles, as typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything: secrets, purge, key slots, settings, rotation, audit
    Owner,
    /// Read and write secrets
    Writer,
    /// Read secrets
    Reader,
    /// Read and verify the audit log
    Auditor,
}

impl From<RoleArg> for tresor::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Owner => tresor::Role::Owner,
            RoleArg::Writer => tresor::Role::Writer,
            RoleArg::Reader => tresor::Role::Reader,
            RoleArg::Auditor => tresor::Role::Auditor,
        }
    }
}

#[derive(Debug, Args)]
pub struct SlotRemoveArgs {
    /// The slot id (see `tresor slot list`)
    pub id: u32,
    /// Then rotate the master key (and compact), so that the removed slot's credential no
    /// longer opens older copies' secrets in this file. The other slots' credentials are
    /// needed: --also-key-file / --also-passphrase-file as for `rotate-key`
    #[arg(long)]
    pub rotate: bool,
    #[command(flatten)]
    pub others: OtherCredentials,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The passphrase slot to change [default: the one used to unlock, or the only one]
    #[arg(long, value_name = "ID")]
    pub slot: Option<u32>,
    /// Read the new passphrase from this file (else a prompt asks for it twice)
    #[arg(long, value_name = "F")]
    pub new_passphrase_file: Option<PathBuf>,
    /// Then rotate the master key (and compact): whoever knew the old passphrase could have
    /// kept the master key it unwrapped. The other slots' credentials are needed, as for
    /// `rotate-key`
    #[arg(long)]
    pub rotate: bool,
    #[command(flatten)]
    pub others: OtherCredentials,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub others: OtherCredentials,
}

/// The credentials of the key slots other than the one that unlocked: a master-key rotation
/// re-wraps every slot.
#[derive(Debug, Args)]
pub struct OtherCredentials {
    /// The key file of another key slot (repeatable): every slot must be re-wrapped
    #[arg(long, value_name = "PATH")]
    pub also_key_file: Vec<PathBuf>,
    /// The passphrase file of another key slot (repeatable)
    #[arg(long, value_name = "PATH")]
    pub also_passphrase_file: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Turn purge protection on (`on` is the only value: it can never be turned off)
    #[arg(long, value_name = "on", value_parser = parse::purge_protection)]
    pub purge_protection: Option<parse::On>,
    /// Keep at most N versions of each secret (`none` for no limit)
    #[arg(long, value_name = "N|none", value_parser = parse::max_versions)]
    pub max_versions: Option<parse::MaxVersions>,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// The file formats of import and export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// KEY=value lines; DB_PASSWORD is the secret db-password
    Env,
    /// One object {"name": "value", …}
    Json,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A .env or JSON file
    pub file: PathBuf,
    /// The file's format [default: json for *.json or a file starting with '{', else env]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "env")]
    pub format: Format,
    /// Write to this file (mode 0600, must not exist) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub allow: AllowEnv,
}

/// `--allow-env` of `run` and `export`.
#[derive(Debug, Args)]
pub struct AllowEnv {
    /// Allow a secret to set VAR although it changes how programs start (PATH, LD_PRELOAD,
    /// BASH_ENV, NODE_OPTIONS, PYTHON*, …; repeatable). TRESOR_* is never allowed
    #[arg(long = "allow-env", value_name = "VAR")]
    pub vars: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("secrets").args(["env", "all"]).required(true).multiple(true)))]
pub struct RunArgs {
    /// Put the secret NAME in the variable VAR (repeatable)
    #[arg(long, value_name = "VAR=NAME", value_parser = parse::env_mapping)]
    pub env: Vec<(String, String)>,
    /// Put every secret in the environment: db-password becomes DB_PASSWORD
    ///
    /// A variable the environment already has is left as it is (with a note) unless --override.
    #[arg(long)]
    pub all: bool,
    /// With --all, replace variables the environment already has
    #[arg(long = "override", id = "override_env", requires = "all")]
    pub override_env: bool,
    #[command(flatten)]
    pub allow: AllowEnv,
    /// The command and its arguments (after --)
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn values_that_look_like_flags_are_not_repeated() {
        let flags = super::flags();
        assert!(flags.contains("--vault") && flags.contains("--tag") && flags.contains("-h"));
        let argv: Vec<String> = ["set", "db", "--tag", "a=b", "-s3cret", "--x=-y", "--file=f"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let text = "error: unexpected argument '-s' found\n  tip: to pass '-s3cret' as a value, \
                    use '-- -s3cret'\n '--x=-y' --tag --file=f '-- -s'";
        let red = super::redact(text, &argv, &flags);
        assert!(
            !red.contains("s3cret") && !red.contains("-s'") && !red.contains("-y"),
            "{red}"
        );
        assert!(red.contains("--tag") && red.contains("--file=f"), "{red}");
    }
}
