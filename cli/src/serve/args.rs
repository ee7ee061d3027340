//! The grammar of `tresor serve` and `tresor token` (clap derive), flattened into the command
//! line's `Command` enum.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

/// `tresor serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; anything else is reachable from the network
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "IP:PORT")]
    pub addr: SocketAddr,
    /// Serve this certificate chain (PEM) instead of the generated one (needs --key)
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM, PKCS#8, SEC1 or PKCS#1) of --cert
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Also name NAME (a DNS name or an IP address) in the generated certificate, and permit it
    /// in the generated CA's name constraints (repeatable). A change makes a new CA
    #[arg(long, value_name = "NAME", conflicts_with = "cert")]
    pub tls_name: Vec<String>,
    /// Keep the generated CA's private key in <vault>.tls/ca-key.pem (mode 0600). Without it the
    /// key is dropped once the server certificate is signed, and a new certificate needs a new CA
    #[arg(long, conflicts_with = "cert")]
    pub keep_ca_key: bool,
    /// Development only: accept any bearer token, as an owner. Logged loudly
    #[arg(long)]
    pub allow_any_token: bool,
    /// Log one line per request to stderr (method, path, status, caller, time taken)
    #[arg(long)]
    pub access_log: bool,
    /// Largest request body accepted, in bytes (larger ones get 413)
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub max_body: u64,
    /// Most connections served at once, counting those that completed a TLS handshake; more
    /// wait. Sockets still in their handshake are bounded apart (256, 5 s each)
    #[arg(long, default_value_t = 512, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
    /// Serve the managed-identity token endpoint (plain HTTP, loopback addresses only) here.
    /// Without it, it listens on 127.0.0.1:8444 when the vault has identities (`tresor identity
    /// add`)
    #[arg(long, value_name = "IP:PORT")]
    pub identity_addr: Option<SocketAddr>,
    /// How long the access tokens of the identity endpoint are valid (1s to 24h)
    #[arg(long, default_value = "1h", value_name = "DURATION",
          value_parser = super::identity::parse_lifetime)]
    pub identity_token_lifetime: Duration,
    #[command(flatten)]
    pub events: crate::events::EventArgs,
    #[command(flatten)]
    pub backups: crate::events::AutoBackupArgs,
}

/// `tresor token …`: bearer tokens for `tresor serve`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once: it cannot be shown again)
    Create(TokenCreateArgs),
    /// List tokens: id, label, role, created (never the tokens themselves)
    List(TokenListArgs),
    /// Revoke a token by id or label
    Revoke(TokenRevokeArgs),
}

/// The roles a token may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    /// Read secrets and their listings
    Reader,
    /// Read and write secrets: set, update, delete, recover, backup, restore
    Writer,
    /// Everything a writer may, and purge
    Owner,
}

impl From<TokenRole> for tresor::Role {
    fn from(r: TokenRole) -> Self {
        match r {
            TokenRole::Reader => tresor::Role::Reader,
            TokenRole::Writer => tresor::Role::Writer,
            TokenRole::Owner => tresor::Role::Owner,
        }
    }
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token's holder may do
    #[arg(long, value_enum)]
    pub role: TokenRole,
    /// A unique label, named in audit records as `token:<label>` [default: <role>-<n>]
    #[arg(long, value_name = "L")]
    pub label: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (from `tresor token list`) or its label
    pub token: String,
}

/// `tresor identity …`: managed identities that sign in through `tresor serve`'s identity
/// endpoint, as Azure's `ManagedIdentityCredential` does.
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Register a managed identity and print its environment (the header is shown once)
    Add(IdentityAddArgs),
    /// Print an identity's environment with a NEW identity header (the previous one stops
    /// working): IDENTITY_ENDPOINT, IDENTITY_HEADER, AZURE_KEYVAULT_URL and the CA variables
    Env(IdentityEnvArgs),
    /// List identities: name, role, created (never their headers)
    List(TokenListArgs),
    /// Remove an identity: its header and access tokens stop working (restart the server)
    Remove(IdentityRemoveArgs),
}

/// Where an identity's app finds the server.
#[derive(Debug, Args)]
pub struct IdentityTarget {
    /// The identity endpoint's URL, as `tresor serve` prints it
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8444/msi/token"
    )]
    pub endpoint: String,
    /// The vault's URL, as `tresor serve` prints it (AZURE_KEYVAULT_URL)
    #[arg(long, value_name = "URL", default_value = "https://127.0.0.1:8443")]
    pub vault_url: String,
}

#[derive(Debug, Args)]
pub struct IdentityAddArgs {
    /// The identity's name: 1 to 55 of 0-9, a-z, A-Z, '-', '_' and '.'
    pub name: String,
    /// What the identity may do
    #[arg(long, value_enum)]
    pub role: TokenRole,
    #[command(flatten)]
    pub target: IdentityTarget,
}

#[derive(Debug, Args)]
pub struct IdentityEnvArgs {
    /// The identity's name
    pub name: String,
    #[command(flatten)]
    pub target: IdentityTarget,
}

#[derive(Debug, Args)]
pub struct IdentityRemoveArgs {
    /// The identity's name
    pub name: String,
}
