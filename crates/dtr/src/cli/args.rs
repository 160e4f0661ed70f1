//! The command line of the original bootstrapper, flag for flag and env var for env var
//! (reference: docs/cli.md). Only parsing lives here; values are validated in `cli::convert`.

use clap::{Args, Parser, Subcommand};

// Boolean flags behave like the original's (urfave/cli): `--flag`, `--flag=true`, `--flag=false`,
// or the env var with true/false/1/0/yes/no.

#[derive(Parser, Debug)]
#[command(
    name = "dtr",
    version = dtr_core::version::VERSION,
    about = "Install and operate a Docker Trusted Registry cluster (open drop-in replacement of docker/dtr)",
    long_about = "Run it the way the original is run:\n  docker run -it --rm -v /var/run/docker.sock:/var/run/docker.sock registry/dtr <command> [options]\nEvery flag can also be given as an environment variable (shown in each command's --help).",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Install the first replica of a new DTR cluster
    Install(InstallArgs),
    /// Add a replica to an existing DTR cluster
    Join(JoinArgs),
    /// Change the configuration of an existing cluster
    Reconfigure(ReconfigureArgs),
    /// Upgrade every replica to this bootstrapper's version
    Upgrade(UpgradeArgs),
    /// Stream a backup of the cluster's metadata to stdout as a tar archive
    Backup(BackupArgs),
    /// Install a new replica and load a backup read from stdin (its replica id defaults to the backup's)
    Restore(RestoreArgs),
    /// Force-remove one replica's containers and volumes, without telling the cluster
    Destroy(DestroyArgs),
    /// Gracefully remove replicas from the cluster
    Remove(RemoveArgs),
    /// Turn one replica into a single-replica cluster after a majority was lost
    EmergencyRepair(EmergencyRepairArgs),
    /// Print the images this version installs, one per line; `save` and `load` move them to nodes without network
    ///
    /// Without an action: print the images this version installs, one per line.
    ///
    /// For nodes without network (air-gapped), the images travel as one checked archive.
    /// On a connected machine, with the binary or the image:
    ///   dtr images save > dtr-offline-<version>.tar
    ///   docker run -i --rm --log-driver none -v /var/run/docker.sock:/var/run/docker.sock \
    ///     registry/dtr:<version> images save > dtr-offline-<version>.tar
    /// On the node:
    ///   dtr images load --input dtr-offline-<version>.tar
    ///
    /// The archive is a `docker save` archive of the nine images (`docker load -i` reads it too)
    /// with `dtr-bundle.json` first: the version, each image's ID, every entry's size and SHA-256.
    /// `load` checks all of it, and that every config and layer matches its digest, before the
    /// engine loads anything; a refused archive is exit 7.
    #[command(verbatim_doc_comment)]
    Images(ImagesArgs),
    /// Show every replica's health and roles (etcd member, database primary/standby); not in the original
    Status(StatusArgs),

    /// Print a shell completion script: bash, zsh, fish, elvish or powershell; not in the original
    #[command(
        long_about = "Print a completion script for the shell on stdout; not in the original.\n  bash: dtr completion bash > /etc/bash_completion.d/dtr\n  zsh:  dtr completion zsh > \"${fpath[1]}/_dtr\"\n  fish: dtr completion fish > ~/.config/fish/completions/dtr.fish"
    )]
    Completion {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of dtr and its commands; not in the original
    #[command(
        long_about = "Print the man page of dtr and every command (roff) on stdout; not in the original.\n  dtr man > /usr/local/share/man/man1/dtr.1 && man dtr"
    )]
    Man,

    /// Run the API server (inside the dtr-api container)
    #[command(hide = true)]
    Api,
    /// Run the job runner (inside the dtr-jobrunner container)
    #[command(hide = true)]
    Jobrunner,
    /// Supervise the registry (inside the dtr-registry container)
    #[command(hide = true)]
    Registry,
    /// In-cluster work of phase 2 (inside the dtr-phase2 container)
    #[command(hide = true)]
    Phase2 {
        #[command(subcommand)]
        step: Phase2Step,
    },
    /// A joining replica's way into the cluster (a one-task swarm service on its node)
    #[command(hide = true)]
    JoinAgent {
        #[command(subcommand)]
        step: JoinAgentStep,
    },
    /// Health probe of our own components (the images' dtr-health)
    #[command(hide = true)]
    Health { component: String },
    /// Run a program behind a local forwarder to the database primary (notary containers)
    #[command(hide = true)]
    DbProxy {
        /// Local address the program connects to
        #[arg(long, default_value = "127.0.0.1:5432")]
        listen: String,
        /// This replica's database member
        #[arg(long)]
        db_host: String,
        /// The cluster CA (to ask Patroni where the primary is)
        #[arg(long, default_value = "/ca/ca.pem")]
        ca_file: String,
        /// The program and its arguments
        #[arg(last = true, required = true)]
        program: Vec<String>,
    },
    /// Run etcd behind a listener that lets each client certificate use only its keys (etcd containers)
    #[command(hide = true)]
    EtcdGuard {
        /// The client port the cluster reaches
        #[arg(long, default_value = "0.0.0.0:2379")]
        listen: String,
        /// etcd's own client listener, on the container's loopback
        #[arg(long, default_value = "127.0.0.1:2378")]
        upstream: String,
        #[arg(long, default_value = "/ca/ca.pem")]
        ca_file: String,
        /// The member's certificate and key (its server identity, and its identity towards etcd)
        #[arg(long, default_value = "/ca/etcd/cert.pem")]
        cert_file: String,
        #[arg(long, default_value = "/ca/etcd/key.pem")]
        key_file: String,
        /// debug, info, warn, error or fatal
        #[arg(long, env = "LOG_LEVEL", default_value = "info")]
        log_level: String,
        /// The program and its arguments
        #[arg(last = true, required = true)]
        program: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum JoinAgentStep {
    /// Read the cluster through a replica and print what was found (one JSON line)
    Check {
        /// The replica to ask (default: the one the seed was read from)
        #[arg(long)]
        via: Option<String>,
    },
    /// Copy the seed's files into the new replica's dtr-ca volume for phase 2
    Seed,
}

#[derive(Subcommand, Debug)]
pub enum Phase2Step {
    /// Create the CA and every certificate in the replica's dtr-ca volume
    Certs,
}

/// Flags every subcommand has.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Verbose logs of the bootstrapper itself (service containers use --log-level)
    #[arg(long, env = "DEBUG", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub debug: bool,
    /// Print the long help of the command
    #[arg(long, env = "DTR_EXTENDED_HELP", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub help_extended: bool,
    /// No colours in the output (NO_COLOR is honoured too)
    #[arg(long, env = "NOCOLOR", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub nocolor: bool,
}

/// How to reach MKE/UCP (accepted everywhere the original has them).
#[derive(Args, Debug, Clone)]
pub struct UcpArgs {
    /// The UCP URL including domain and port
    #[arg(long, env = "UCP_URL")]
    pub ucp_url: Option<String>,
    /// The UCP administrator username
    #[arg(long, env = "UCP_USERNAME")]
    pub ucp_username: Option<String>,
    /// The UCP administrator password
    #[arg(long, env = "UCP_PASSWORD", hide_env_values = true)]
    pub ucp_password: Option<String>,
    /// PEM-encoded CA of UCP (`"$(cat ca.pem)"`)
    #[arg(long, allow_hyphen_values = true, env = "UCP_CA")]
    pub ucp_ca: Option<String>,
    /// Do not verify UCP's certificate (not for production)
    #[arg(long, env = "UCP_INSECURE_TLS", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub ucp_insecure_tls: bool,
}

/// The help of the flags install, join, restore and reconfigure share: written once.
mod help {
    pub const REPLICA_HTTP_PORT: &str = "The public HTTP port of the replica (redirects to HTTPS)";
    pub const REPLICA_HTTPS_PORT: &str = "The public HTTPS port of the replica";
    pub const REPLICA_ID: &str =
        "The id of the new replica: 12 lowercase hex characters (random if not given)";
    pub const REPLICA_RETHINKDB_CACHE_MB: &str =
        "Memory of the replica's metadata database, in MB (default: (node memory - 1024) / 2)";
    pub const UCP_NODE: &str =
        "The node to place the replica on (`docker node ls`); default: this engine's node";
    pub const IGNORE_PREFLIGHT_ERRORS: &str = "Preflight checks whose failure only warns, comma-separated: engine-version, ports (not in the original)";
    pub const DTR_CA: &str =
        "PEM CA certificate matching --dtr-cert (content, or a path to a file)";
    pub const DTR_CERT: &str =
        "PEM server certificate for the HTTPS port, intermediates appended (content or path)";
    pub const DTR_KEY: &str = "PEM private key of --dtr-cert (content or path)";
    pub const DTR_EXTERNAL_URL: &str =
        "https://host[:port] users and clients reach DTR (or its load balancer) by";
    pub const DTR_STORAGE_VOLUME: &str = "Volume name or absolute host path for image data (default: volume dtr-registry-<replica id>)";
    pub const NFS_STORAGE_URL: &str = "NFS URL for image data: nfs://<host>/<export>";
    pub const NFS_OPTIONS: &str = "Options for the NFS volume, e.g. rw,nfsvers=4";
    pub const ASYNC_NFS: &str = "Mount the NFS volume with async options";
    pub const HTTP_PROXY: &str = "HTTP proxy for outgoing requests of the services";
    pub const HTTPS_PROXY: &str = "HTTPS proxy for outgoing requests of the services";
    pub const NO_PROXY: &str = "Domains that bypass the proxies, comma-separated";
    pub const LOG_LEVEL: &str =
        "Log level of the service containers: debug, info, warn, error, fatal";
    pub const LOG_PROTOCOL: &str =
        "Where the services send logs: internal (the node's log driver), tcp or udp";
    pub const LOG_HOST: &str = "Syslog endpoint for --log-protocol tcp/udp";
    pub const ENABLE_PPROF: &str = "Serve profiling endpoints";
    pub const ENABLE_CLIENT_CERT_AUTH: &str = "Also authenticate users by TLS client certificates";
    pub const CLIENT_CERT_AUTH_CA: &str = "PEM root CAs for client-certificate authentication";
    pub const CUSTOM_CA_CERT_BUNDLE: &str =
        "Extra PEM CAs the services trust when they call remote TLS servers";
}

/// Per-replica flags of install, join and restore.
#[derive(Args, Debug, Clone)]
pub struct ReplicaArgs {
    #[arg(help = help::REPLICA_HTTP_PORT, long, env = "REPLICA_HTTP_PORT", default_value_t = 80)]
    pub replica_http_port: u16,
    #[arg(help = help::REPLICA_HTTPS_PORT, long, env = "REPLICA_HTTPS_PORT", default_value_t = 443)]
    pub replica_https_port: u16,
    #[arg(help = help::REPLICA_ID, long, env = "DTR_INSTALL_REPLICA_ID")]
    pub replica_id: Option<String>,
    #[arg(help = help::REPLICA_RETHINKDB_CACHE_MB, long, env = "RETHINKDB_CACHE_MB")]
    pub replica_rethinkdb_cache_mb: Option<u32>,
    #[arg(help = help::UCP_NODE, long, env = "UCP_NODE")]
    pub ucp_node: Option<String>,
    #[arg(help = help::IGNORE_PREFLIGHT_ERRORS, long, env = "DTR_IGNORE_PREFLIGHT_ERRORS", value_name = "CHECKS")]
    pub ignore_preflight_errors: Option<String>,
}

/// Service configuration of install and restore.
#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    #[arg(help = help::DTR_CA, long, allow_hyphen_values = true, env = "DTR_CA")]
    pub dtr_ca: Option<String>,
    #[arg(help = help::DTR_CERT, long, allow_hyphen_values = true, env = "DTR_CERT")]
    pub dtr_cert: Option<String>,
    #[arg(
        help = help::DTR_KEY,
        long,
        allow_hyphen_values = true,
        env = "DTR_KEY",
        hide_env_values = true
    )]
    pub dtr_key: Option<String>,
    // `--dtr-load-balancer`: the 2.0-era name, still in the original's disaster-recovery
    // documents; accepted, not shown
    #[arg(
        help = help::DTR_EXTERNAL_URL,
        long,
        env = "DTR_EXTERNAL_URL",
        alias = "dtr-load-balancer"
    )]
    pub dtr_external_url: Option<String>,
    #[arg(help = help::DTR_STORAGE_VOLUME, long, env = "DTR_STORAGE_VOLUME")]
    pub dtr_storage_volume: Option<String>,
    #[arg(help = help::NFS_STORAGE_URL, long, env = "NFS_STORAGE_URL")]
    pub nfs_storage_url: Option<String>,
    #[arg(help = help::NFS_OPTIONS, long, env = "NFS_OPTIONS")]
    pub nfs_options: Option<String>,
    #[arg(help = help::ASYNC_NFS, long, env = "ASYNC_NFS", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub async_nfs: bool,
    #[arg(help = help::HTTP_PROXY, long, env = "DTR_HTTP_PROXY")]
    pub http_proxy: Option<String>,
    #[arg(help = help::HTTPS_PROXY, long, env = "DTR_HTTPS_PROXY")]
    pub https_proxy: Option<String>,
    #[arg(help = help::NO_PROXY, long, env = "DTR_NO_PROXY")]
    pub no_proxy: Option<String>,
    #[arg(help = help::LOG_LEVEL, long, env = "LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,
    #[arg(help = help::LOG_PROTOCOL, long, env = "LOG_PROTOCOL", default_value = "internal")]
    pub log_protocol: String,
    #[arg(help = help::LOG_HOST, long, env = "LOG_HOST")]
    pub log_host: Option<String>,
    #[arg(help = help::ENABLE_PPROF, long, env = "DTR_PPROF", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub enable_pprof: bool,
    #[arg(help = help::ENABLE_CLIENT_CERT_AUTH, long, env = "ENABLE_CLIENT_CERT_AUTH", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub enable_client_cert_auth: bool,
    #[arg(help = help::CLIENT_CERT_AUTH_CA, long, allow_hyphen_values = true, env = "CLIENT_CA")]
    pub client_cert_auth_ca: Option<String>,
    #[arg(help = help::CUSTOM_CA_CERT_BUNDLE, long, allow_hyphen_values = true, env = "CUSTOM_CA_CERTS_BUNDLE")]
    pub custom_ca_cert_bundle: Option<String>,
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    #[command(flatten)]
    pub replica: ReplicaArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Subnet of the dtr-ol overlay network
    #[arg(long, env = "DTR_OVERLAY_SUBNET", default_value = "10.1.0.0/24")]
    pub overlay_subnet: String,
    /// Name of the first administrator account (plain engine, no MKE)
    #[arg(long, env = "DTR_ADMIN_USERNAME", default_value = "admin")]
    pub admin_username: String,
    /// Password of the first administrator, at least 8 characters (asked on a terminal; required without one)
    #[arg(long, env = "DTR_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    #[command(flatten)]
    pub ucp: UcpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// A healthy replica of the cluster to join
    #[arg(long, env = "DTR_REPLICA_ID")]
    pub existing_replica_id: Option<String>,
    #[command(flatten)]
    pub replica: ReplicaArgs,
    /// Skip the overlay network test between the nodes (not for production)
    #[arg(long, env = "DTR_SKIP_NETWORK_TEST", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub skip_network_test: bool,
    /// The cluster's NFS storage, restated (a join inherits the cluster's storage; refused when it differs)
    #[arg(long, env = "NFS_STORAGE_URL")]
    pub nfs_storage_url: Option<String>,
    /// The cluster's NFS options, restated (refused when they differ)
    #[arg(long, env = "NFS_OPTIONS")]
    pub nfs_options: Option<String>,
    /// The cluster's async NFS mount, restated (refused when it differs)
    #[arg(long, env = "ASYNC_NFS", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub async_nfs: bool,
    /// Join even if the cluster is unhealthy (risks split brain and data loss)
    #[arg(long, env = "DTR_UNSAFE_JOIN", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub unsafe_join: bool,
    #[command(flatten)]
    pub ucp: UcpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct ReconfigureArgs {
    /// A healthy replica to operate through
    #[arg(long, env = "DTR_REPLICA_ID")]
    pub existing_replica_id: Option<String>,
    #[arg(help = help::REPLICA_HTTP_PORT, long, env = "REPLICA_HTTP_PORT")]
    pub replica_http_port: Option<u16>,
    #[arg(help = help::REPLICA_HTTPS_PORT, long, env = "REPLICA_HTTPS_PORT")]
    pub replica_https_port: Option<u16>,
    #[arg(help = help::REPLICA_RETHINKDB_CACHE_MB, long, env = "RETHINKDB_CACHE_MB")]
    pub replica_rethinkdb_cache_mb: Option<u32>,
    #[arg(help = help::DTR_CA, long, allow_hyphen_values = true, env = "DTR_CA")]
    pub dtr_ca: Option<String>,
    #[arg(help = help::DTR_CERT, long, allow_hyphen_values = true, env = "DTR_CERT")]
    pub dtr_cert: Option<String>,
    #[arg(
        help = help::DTR_KEY,
        long,
        allow_hyphen_values = true,
        env = "DTR_KEY",
        hide_env_values = true
    )]
    pub dtr_key: Option<String>,
    #[arg(help = help::DTR_EXTERNAL_URL, long, env = "DTR_EXTERNAL_URL")]
    pub dtr_external_url: Option<String>,
    #[arg(help = help::DTR_STORAGE_VOLUME, long, env = "DTR_STORAGE_VOLUME")]
    pub dtr_storage_volume: Option<String>,
    #[arg(help = help::NFS_STORAGE_URL, long, env = "NFS_STORAGE_URL")]
    pub nfs_storage_url: Option<String>,
    #[arg(help = help::NFS_OPTIONS, long, env = "NFS_OPTIONS")]
    pub nfs_options: Option<String>,
    #[arg(help = help::ASYNC_NFS, long, env = "ASYNC_NFS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub async_nfs: Option<bool>,
    #[arg(help = help::HTTP_PROXY, long, env = "DTR_HTTP_PROXY")]
    pub http_proxy: Option<String>,
    #[arg(help = help::HTTPS_PROXY, long, env = "DTR_HTTPS_PROXY")]
    pub https_proxy: Option<String>,
    #[arg(help = help::NO_PROXY, long, env = "DTR_NO_PROXY")]
    pub no_proxy: Option<String>,
    #[arg(help = help::LOG_LEVEL, long, env = "LOG_LEVEL")]
    pub log_level: Option<String>,
    #[arg(help = help::LOG_PROTOCOL, long, env = "LOG_PROTOCOL")]
    pub log_protocol: Option<String>,
    #[arg(help = help::LOG_HOST, long, env = "LOG_HOST")]
    pub log_host: Option<String>,
    #[arg(help = help::ENABLE_PPROF, long, env = "DTR_PPROF", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub enable_pprof: Option<bool>,
    #[arg(help = help::ENABLE_CLIENT_CERT_AUTH, long, env = "ENABLE_CLIENT_CERT_AUTH", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub enable_client_cert_auth: Option<bool>,
    #[arg(help = help::CLIENT_CERT_AUTH_CA, long, allow_hyphen_values = true, env = "CLIENT_CA")]
    pub client_cert_auth_ca: Option<String>,
    #[arg(help = help::CUSTOM_CA_CERT_BUNDLE, long, allow_hyphen_values = true, env = "CUSTOM_CA_CERTS_BUNDLE")]
    pub custom_ca_cert_bundle: Option<String>,
    /// The new storage backend already holds the old data (keeps tags and manifests)
    #[arg(long, env = "STORAGE_MIGRATED", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub storage_migrated: bool,
    #[command(flatten)]
    pub ucp: UcpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct UpgradeArgs {
    /// A healthy replica to drive the upgrade from
    #[arg(long, env = "DTR_REPLICA_ID")]
    pub existing_replica_id: Option<String>,
    /// Skip the pre-upgrade scan for schema-v1 manifests
    #[arg(long, env = "NO_IMAGE_CHECK", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_image_check: bool,
    /// Upper bound for each operation, e.g. 10m
    #[arg(long, env = "MAX_WAIT")]
    pub max_wait: Option<String>,
    #[command(flatten)]
    pub ucp: UcpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<BackupAction>,
    /// The replica whose metadata is backed up
    #[arg(long, env = "DTR_REPLICA_ID")]
    pub existing_replica_id: Option<String>,
    /// Accepted for the original's scripts: every database dump is one consistent snapshot taken while the cluster serves, so nothing is stopped
    #[arg(long, env = "DTR_OFFLINE_BACKUP", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub offline_backup: bool,
    /// Encrypt the backup with age to this public key (age1...); repeat or comma-separate for several
    #[arg(long, env = "DTR_BACKUP_RECIPIENTS", value_delimiter = ',')]
    pub encrypt_to: Vec<String>,
    /// Encrypt the backup with a passphrase, taken from DTR_BACKUP_PASSPHRASE (asked for on a terminal)
    #[arg(long, env = "DTR_BACKUP_ENCRYPT_WITH_PASSPHRASE", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub encrypt_with_passphrase: bool,
    #[command(flatten)]
    pub ucp: UcpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub replica: ReplicaArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Use the storage configured at backup time (one of the three storage flags is required)
    #[arg(long, env = "DTR_DEFAULT_STORAGE", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub dtr_use_default_storage: bool,
    /// Subnet of the dtr-ol overlay network
    #[arg(long, env = "DTR_OVERLAY_SUBNET", default_value = "10.1.0.0/24")]
    pub overlay_subnet: String,
    /// Restore a backup of another patch release of this minor version (with a warning)
    #[arg(long, env = "DTR_RESTORE_ALLOW_OTHER_PATCH", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_other_patch: bool,
    #[command(flatten)]
    pub keys: BackupKeyArgs,
    #[command(flatten)]
    pub ucp: UcpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct DestroyArgs {
    /// The replica to destroy
    #[arg(long, env = "DTR_DESTROY_REPLICA_ID")]
    pub replica_id: Option<String>,
    #[command(flatten)]
    pub ucp: UcpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// A healthy replica that stays
    #[arg(long, env = "DTR_REPLICA_ID")]
    pub existing_replica_id: Option<String>,
    /// Comma-separated ids of the replicas to remove
    #[arg(long, env = "DTR_REMOVE_REPLICA_IDS")]
    pub replica_ids: Option<String>,
    /// Deprecated alias of --replica-ids
    #[arg(long, env = "DTR_REMOVE_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Skip the pre-checks
    #[arg(long, env = "DTR_FORCE_REMOVE_REPLICA", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub force: bool,
    #[command(flatten)]
    pub ucp: UcpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct EmergencyRepairArgs {
    /// The replica to keep
    #[arg(long, env = "DTR_REPLICA_ID")]
    pub existing_replica_id: Option<String>,
    /// Subnet for a recreated dtr-ol overlay network
    #[arg(long, env = "DTR_OVERLAY_SUBNET", default_value = "10.1.0.0/24")]
    pub overlay_subnet: String,
    /// Also delete the data volumes of every other replica
    #[arg(long, env = "PRUNE", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub prune: bool,
    /// Answer yes to the confirmation prompt (also -y and --y, the original's spelling)
    #[arg(short = 'y', long = "yes", visible_alias = "y", env = "YES", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub yes: bool,
    #[command(flatten)]
    pub ucp: UcpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Subcommand, Debug)]
pub enum BackupAction {
    /// Check a backup read from stdin (manifest, layout, every checksum) without touching any cluster
    Verify {
        #[command(flatten)]
        keys: BackupKeyArgs,
    },
}

/// How to open an encrypted backup (a passphrase comes from DTR_BACKUP_PASSPHRASE only, never
/// from the command line).
#[derive(Args, Debug, Clone)]
pub struct BackupKeyArgs {
    /// age identity file (AGE-SECRET-KEY-1... lines) that opens a backup encrypted with --encrypt-to
    #[arg(long, env = "DTR_BACKUP_IDENTITY_FILE")]
    pub backup_identity_file: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the status as JSON
    #[arg(long, env = "DTR_STATUS_JSON", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    #[command(flatten)]
    pub ucp: UcpArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    #[command(subcommand)]
    pub action: Option<ImagesAction>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Subcommand, Debug)]
pub enum ImagesAction {
    /// Write every image of this version as one checked archive (a `docker save` archive plus dtr-bundle.json), to stdout or --output
    Save {
        /// Write the archive to this file (made complete or not at all) instead of stdout
        #[arg(long, env = "DTR_IMAGES_OUTPUT")]
        output: Option<std::path::PathBuf>,
    },
    /// Check an archive made by `images save` (version, every checksum, every image ID), then load it into the engine
    Load {
        /// Read the archive from this file instead of stdin
        #[arg(long, env = "DTR_IMAGES_INPUT")]
        input: Option<std::path::PathBuf>,
    },
}
