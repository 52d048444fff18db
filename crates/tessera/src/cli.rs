//! The command line, declared once with clap. Every option has a flag and, where it configures a
//! server, an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "A self-serve data mesh platform in one binary",
    long_about = "Tessera: data products with contracts (ODPS, ODCS), stored as Delta tables, queried with SQL across domains.\n\nServer commands: serve, demo. Offline: lint, test, diff, import. Everything else is a client of a running server (--server / TESSERA_URL)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where a client command finds its server and its API token.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The Tessera server to talk to. Default: the credentials file's server, else http://127.0.0.1:7070.
    #[arg(long = "server", global = true, env = "TESSERA_URL")]
    pub url: Option<String>,
    /// The API token to send. Default: the credentials file's token.
    #[arg(long, global = true, env = "TESSERA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The credentials file (written by `tessera login`). Default: ~/.config/tessera/credentials.
    #[arg(long, global = true, env = "TESSERA_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the platform: HTTP API on --http, metadata and tables under --data-dir.
    Serve(ServeArgs),
    /// Build the artgo reference mesh with synthetic data, load it, and serve it.
    Demo(DemoArgs),
    /// Validate ODCS contracts and ODPS product descriptors offline (files or folders).
    Lint {
        /// Files or folders (folders are searched for .yaml, .yml and .json files).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run a contract's checks against the local files one of its servers points at (offline, like datacontract-cli test).
    Test {
        contract: PathBuf,
        /// The `servers` entry to read (default: the first).
        #[arg(long)]
        server: Option<String>,
        #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
        format: CheckFormat,
    },
    /// Convert a Data Contract Specification file (deprecated) to ODCS v3.1.0, printed as YAML.
    Import { file: PathBuf },
    /// What changed between two versions of a contract, each change marked breaking or not (offline).
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_enum, default_value_t = DiffFormat::Table)]
        format: DiffFormat,
        /// Exit with code 1 when there are breaking changes without a major version bump.
        #[arg(long)]
        fail_on_breaking: bool,
    },
    /// Publish a product folder (one *.odps.yaml and its *.odcs.yaml contracts): show the plan and apply it.
    Apply {
        dir: PathBuf,
        /// Only show the plan.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Load a batch (CSV, NDJSON or Parquet) into DOMAIN.PRODUCT.DATASET.
    Ingest {
        /// The dataset, as DOMAIN.PRODUCT.DATASET.
        dataset: String,
        file: PathBuf,
        /// The file's format; detected from its name or content when not given.
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
        /// The batch id: the same id is written once. Default: the SHA-256 of the file.
        #[arg(long)]
        batch_id: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stream events (NDJSON, one JSON object a line) from FILE, or stdin with `-`, to DOMAIN.PRODUCT.DATASET's event API, with progress.
    Send {
        /// The dataset, as DOMAIN.PRODUCT.DATASET.
        dataset: String,
        /// An NDJSON file (gzipped or not), or `-` for stdin.
        #[arg(value_name = "FILE|-")]
        file: String,
        /// Events per request (at most the server's --event-max-rows, 100,000 by default).
        #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_events: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run one read-only SQL statement over every dataset (`domain.product.dataset`), or a
    /// product's sample query (`--sample N DOMAIN.PRODUCT`).
    Query {
        /// The statement; with `--sample`, the product (DOMAIN.PRODUCT) whose sample query runs.
        #[arg(value_name = "SQL")]
        sql: String,
        /// Run the product's sample query with this number (as `tessera products show`
        /// lists them, from 1) or name.
        #[arg(long, value_name = "N|NAME")]
        sample: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run the contract checks of a product or one dataset (exit code 1 when a blocking check fails).
    Check {
        /// DOMAIN.PRODUCT or DOMAIN.PRODUCT.DATASET
        target: String,
        #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
        format: CheckFormat,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List or show domains.
    Domains {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: Option<DomainsAction>,
    },
    /// List or show data products.
    Products {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: Option<ProductsAction>,
    },
    /// List or show datasets.
    Datasets {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: Option<DatasetsAction>,
    },
    /// List or show contracts and their versions.
    Contracts {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: Option<ContractsAction>,
    },
    /// Make, list and revoke API tokens (making them needs the admins group).
    Token {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Check a token against the server and keep it (and the server) in the credentials file.
    Login {
        /// The token; read from standard input when not given here, --token or TESSERA_TOKEN.
        #[arg(value_name = "TOKEN")]
        given: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Who the server takes this CLI's token for: user, groups, teams.
    Whoami {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The query log, newest first: admins see every query; others their own and those on the
    /// products they manage.
    Queries {
        #[command(flatten)]
        client: ClientArgs,
        /// How many queries (at most 1000).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Who may do what: grants of read access, admins' Cedar policies, explanations.
    Access {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: AccessAction,
    },
    /// The hash-chained audit log of every change, denied decision and query (admins).
    Audit {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Governance policies: SQL over tessera_meta that every publish is checked against (the
    /// standard library, the governance council's global policies, domains' own).
    Policy {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: GovernanceAction,
    },
    /// Glossary terms: the governance council's shared definitions (`customer_id` is U and
    /// eight digits), versioned, referenced by columns and enforced on their data.
    Glossary {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: GlossaryAction,
    },
    /// Sources datasets pull their rows from (PostgreSQL, Kafka, files), declared in product folders
    /// (`sources/*.yaml`): where each stands, and pulling now.
    Sources {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: SourcesAction,
    },
    /// Transforms: the SQL files (`transforms/<dataset>.sql`) that compute datasets, with their
    /// materialization, inputs, triggers and last run.
    Transforms {
        /// Only this product's (DOMAIN.PRODUCT).
        target: Option<String>,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a product's transforms now, in the order they feed each other, or the one computing
    /// DOMAIN.PRODUCT.DATASET; with no target, every transform of the mesh whose dataset is
    /// behind its inputs (an input committed rows since it was last computed, or it never was).
    /// Needs ingest rights on what they compute; exit status 1 when a run fails (it commits
    /// nothing and the dataset keeps its last good version).
    Run {
        /// DOMAIN.PRODUCT or DOMAIN.PRODUCT.DATASET; none: the mesh's datasets that are behind
        target: Option<String>,
        /// Recompute the whole dataset, whatever the transform's materialization (no target:
        /// every transform of the mesh).
        #[arg(long)]
        full_refresh: bool,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Transform run history, newest first: status, trigger, rows in and out, duration, error.
    Runs {
        /// Only DOMAIN, DOMAIN.PRODUCT or DOMAIN.PRODUCT.DATASET.
        target: Option<String>,
        /// How many runs (at most 1000).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Lineage of a dataset or one of its columns: what feeds it (--upstream, the default) or
    /// what it feeds (--downstream), through which transforms and sources, and how each column
    /// depends on another (identity, transformation, aggregation; filter, join, group_by, sort,
    /// window, conditional).
    Lineage {
        /// DOMAIN.PRODUCT.DATASET, or a node another tool reported: dataset:NAMESPACE:NAME,
        /// job:NAMESPACE:NAME (its neighbourhood, both ways).
        dataset: String,
        /// Follow this column of the dataset.
        #[arg(long)]
        column: Option<String>,
        /// What feeds it (the default).
        #[arg(long, conflicts_with = "downstream")]
        upstream: bool,
        /// What it feeds.
        #[arg(long)]
        downstream: bool,
        /// How many edges away at most.
        #[arg(long, default_value_t = 20)]
        depth: i64,
        #[arg(long, value_enum, default_value_t = LineageFormat::Text)]
        format: LineageFormat,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Scaffold from a golden-path template: a domain folder, or a product folder (descriptor,
    /// contract, source or transform, policy stub, README, sample data) that lints clean,
    /// passes the standard policies and applies as it is. `tessera new --list` shows the
    /// templates.
    #[command(args_conflicts_with_subcommands = true)]
    New {
        /// List the templates: built in, and the platform team's (--templates).
        #[arg(long)]
        list: bool,
        /// A folder of the platform team's own templates, each a folder with a template.yaml
        /// (they replace built-in ones of the same name; docs/templates.md).
        #[arg(long, global = true, env = "TESSERA_TEMPLATES", value_name = "DIR")]
        templates: Option<PathBuf>,
        #[command(subcommand)]
        what: Option<NewWhat>,
    },
    /// Secrets sources name (a connection URL, a password), kept sealed in the metadata store:
    /// set, list, delete. Values are never shown.
    Secret {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: SecretAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum NewWhat {
    /// A domain folder: the owner team and support channel its products start with.
    Domain(NewDomainArgs),
    /// A product folder DOMAIN/NAME from a template.
    Product(Box<NewProductArgs>),
}

#[derive(Debug, Args)]
pub struct NewDomainArgs {
    /// The domain's name (lower-case snake_case).
    pub name: String,
    /// The team that owns the domain's products.
    #[arg(long)]
    pub owner: String,
    /// Where consumers ask questions (default: #DOMAIN).
    #[arg(long)]
    pub support_channel: Option<String>,
    /// The support channel's URL.
    #[arg(long)]
    pub support_url: Option<String>,
    /// The folder the domain folder is made in.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct NewProductArgs {
    /// DOMAIN/NAME: the product folder is made at DIR/DOMAIN/NAME.
    pub name: String,
    /// The golden path: source-aligned, aggregate, consumer, or a platform template.
    #[arg(long, default_value = "source-aligned")]
    pub template: String,
    /// The owner team (default: the domain folder's, from `tessera new domain`).
    #[arg(long)]
    pub owner: Option<String>,
    /// The output dataset's name (default: the product's).
    #[arg(long)]
    pub dataset: Option<String>,
    /// What the product is for, in a sentence.
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub support_channel: Option<String>,
    #[arg(long)]
    pub support_url: Option<String>,
    /// Infer the schema from a sample file (CSV, NDJSON or Parquet), kept as the sample data.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Read a PostgreSQL table (postgres://USER:PASSWORD@HOST:PORT/DB): its columns become the
    /// schema, and a source reads it; the URL is not written anywhere (it becomes a secret).
    #[arg(long, value_name = "URL", requires = "table")]
    pub source: Option<String>,
    /// The table --source reads (SCHEMA.TABLE).
    #[arg(long, value_name = "SCHEMA.TABLE")]
    pub table: Option<String>,
    /// The column that says when a row last changed (default: updated_at and the like).
    #[arg(long, value_name = "COLUMN")]
    pub cursor_timestamp: Option<String>,
    /// The column rows are merged by (default: the one-column primary key).
    #[arg(long, value_name = "COLUMN")]
    pub cursor_key: Option<String>,
    /// An input port: a dataset the product is computed from (aggregate, consumer); repeat it.
    #[arg(long = "input", value_name = "DOMAIN.PRODUCT.DATASET")]
    pub inputs: Vec<String>,
    /// The folder the domain folder is in.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How `tessera lineage` prints the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LineageFormat {
    /// One edge a line, nearest first.
    Text,
    Json,
    /// Graphviz: `tessera lineage … --format dot | dot -Tsvg > lineage.svg`.
    Dot,
    /// A Mermaid flowchart (renders in Markdown on GitHub and GitLab).
    Mermaid,
}

#[derive(Debug, Subcommand)]
pub enum SecretAction {
    /// Set secret NAME for TEAM (its members' products' sources may name it); the value is read
    /// from standard input (`printf %s "$URL" | tessera secret set shop_db --team shop`), or
    /// from an environment variable with --from-env. It is never shown again.
    Set {
        name: String,
        #[arg(long)]
        team: String,
        /// Read the value from this environment variable of the CLI, not standard input.
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
    },
    /// The secrets of your teams (admins: all), by name.
    List,
    /// Delete a secret no source names any more.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SourcesAction {
    /// Every source (or those of DOMAIN.PRODUCT) and where it stands.
    List {
        target: Option<String>,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// One source: its connector, options and trigger; state, last position, lag, rows, errors.
    Status {
        /// DOMAIN.PRODUCT.SOURCE
        source: String,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Pull now, until nothing new waits (needs ingest rights on its dataset); exit status 1
    /// when the pull fails.
    Run {
        /// DOMAIN.PRODUCT.SOURCE
        source: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GlossaryAction {
    /// Publish glossary term files (members of the "governance council" group, or admins); a
    /// new version says which products' data would fail under it.
    Apply {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Every published version of every term, and the columns that reference it.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// The versions of one term, with their rules and the columns on each.
    Show { name: String },
}

#[derive(Debug, Subcommand)]
pub enum GovernanceAction {
    /// Store global policy files (members of the "governance council" group, or admins), each
    /// replacing the policy of its id; refused unless every file loads and its query plans.
    Apply {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Every policy: standard, global and the domains' you may discover.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// One policy, with its query and rationale.
    Show { id: String },
    /// Evaluate FILE against the product folder DIR as it would be applied (nothing is
    /// applied); exit status 1 when it finds a blocking violation.
    Test { file: PathBuf, dir: PathBuf },
    /// Evaluate every policy on the mesh as it is (or DOMAIN, or DOMAIN.PRODUCT) and store
    /// where each product stands; exit status 1 when a blocking policy is violated.
    Check {
        target: Option<String>,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// The compliance scorecard (of DOMAIN or DOMAIN.PRODUCT, or all): which policies each
    /// product passes and fails, since when, the share passing, and the history.
    Report {
        target: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Points of history per product (newest first).
        #[arg(long, default_value_t = 10)]
        history: usize,
    },
    /// Turn a standard policy off for the whole mesh (the council; recorded in the audit log).
    Disable { id: String },
    /// Turn a standard policy on again.
    Enable { id: String },
    /// Remove a global policy (the council).
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Walk the whole chain: OK with the count, or the first edited, forged, removed or cut-off
    /// entry (and exit status 1).
    Verify,
    /// Page through the log, oldest first: the newest entries, or those after --after.
    Show {
        /// Entries after this sequence number (the next page's is printed at the end).
        #[arg(long)]
        after: Option<i64>,
        /// How many entries (at most 1000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessAction {
    /// Let a user, group or team read a product (needs `manage` on it: its owner team, admins).
    Grant {
        /// DOMAIN.PRODUCT
        product: String,
        #[arg(long, conflicts_with_all = ["group", "team"], required_unless_present_any = ["group", "team"])]
        user: Option<String>,
        #[arg(long, conflicts_with = "team")]
        group: Option<String>,
        #[arg(long)]
        team: Option<String>,
        /// Days until the grant ends by itself; for good when not given.
        #[arg(long)]
        days: Option<i64>,
        /// Only the rows this SQL predicate keeps, e.g. "country = 'DE'".
        #[arg(long)]
        row_filter: Option<String>,
    },
    /// Active grants — each product's declared consumers — of one product or of all.
    Grants {
        /// DOMAIN.PRODUCT
        product: Option<String>,
    },
    /// End a grant now.
    Revoke { grant_id: String },
    /// Ask the owner team of a product for read access; prints the request's id.
    Request {
        /// DOMAIN.PRODUCT
        product: String,
        /// What the access is for, shown to whoever decides.
        #[arg(long)]
        purpose: String,
        /// How long the grant lasts once approved.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// Your own requests and those you may decide (pending first in mind: the STATE column).
    Requests,
    /// Approve a pending request (owner team or admin): the requester reads the product until
    /// the grant ends by itself.
    Approve {
        request_id: String,
        /// Only the rows this SQL predicate over the product's datasets keeps.
        #[arg(long)]
        row_filter: Option<String>,
    },
    /// Deny a pending request, saying why.
    Deny {
        request_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Admins' Cedar policies, which apply on top of the defaults that ship with Tessera.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Whether USER may do ACTION to RESOURCE, and which policy decided (admins: anybody;
    /// others: themselves).
    Explain {
        user: String,
        /// discover, read, read_pii, ingest, publish, manage or approve.
        action: String,
        /// platform, DOMAIN, DOMAIN.PRODUCT or DOMAIN.PRODUCT.DATASET.
        resource: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Store the Cedar policies of FILE (under --id, by default the file's name without its
    /// extension), replacing those of the same id; refused unless they load with all others.
    Apply {
        file: std::path::PathBuf,
        #[arg(long)]
        id: Option<String>,
    },
    /// Every admin policy, with its text.
    List,
    /// Remove a policy by id.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// A new token for a user (created if new), shown once.
    Create {
        #[arg(long)]
        user: String,
        /// A group the user belongs to (repeatable), e.g. admins.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A team the user belongs to (repeatable): an ODPS product's owner team is a team.
        #[arg(long = "team")]
        teams: Vec<String>,
        /// What the token is for, shown in listings.
        #[arg(long)]
        description: Option<String>,
    },
    /// Every token (admins) or your own; never the tokens themselves.
    List,
    /// Revoke a token by its id: requests with it are refused from now on.
    Revoke { token_id: String },
}

#[derive(Debug, Subcommand)]
pub enum DomainsAction {
    /// Every domain (the default).
    List,
}

#[derive(Debug, Subcommand)]
pub enum ProductsAction {
    /// Every product, or those of one domain (the default).
    List {
        #[arg(long)]
        domain: Option<String>,
    },
    /// One product: owner, ports, datasets.
    Show {
        /// DOMAIN.PRODUCT
        product: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatasetsAction {
    /// Every dataset, or those of one product (the default).
    List {
        /// DOMAIN.PRODUCT
        #[arg(long)]
        product: Option<String>,
    },
    /// One dataset: columns, types, tables.
    Show {
        /// DOMAIN.PRODUCT.DATASET
        dataset: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContractsAction {
    /// Every contract with its versions (the default).
    List,
    /// A contract's ODCS file (the latest version unless --version).
    Show {
        id: String,
        #[arg(long)]
        version: Option<String>,
        /// The contract's domain; needed only when the id is used in several domains.
        #[arg(long)]
        domain: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FileFormat {
    Csv,
    Ndjson,
    Parquet,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Ndjson => "ndjson",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// How a diff is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Table,
    Json,
}

/// How check results are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// For people.
    Table,
    /// datacontract-cli's result shape.
    Json,
    /// JUnit XML, for CI.
    Junit,
}

/// How a listing is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    /// One row per product and policy.
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Ndjson,
}

/// Where a server keeps its state and how it listens.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where the first start of a new mesh writes its admin token (with the server's address),
    /// readable by the owner only; the CLI reads the same file. Default: ~/.config/tessera/credentials.
    #[arg(long, env = "TESSERA_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
    /// Address of the HTTP API (port 0 picks a free port).
    #[arg(long, env = "TESSERA_HTTP", default_value = "127.0.0.1:7070")]
    pub http: SocketAddr,
    /// Address of the PostgreSQL wire front end (`psql -h HOST -p PORT -U USER -d DOMAIN`, the
    /// API token as password; port 0 picks a free port), or `off`.
    #[arg(long = "pg", env = "TESSERA_PG", default_value = "127.0.0.1:5433", value_parser = parse_listen_address)]
    pub pg: ListenAddress,
    /// Address of the Arrow Flight SQL front end (ADBC, JDBC: grpc://HOST:PORT, the API token as
    /// a bearer token or as the password; port 0 picks a free port), or `off`.
    #[arg(long = "flight", env = "TESSERA_FLIGHT", default_value = "127.0.0.1:50051", value_parser = parse_listen_address)]
    pub flight: ListenAddress,
    /// A PEM certificate chain: with --tls-key, the HTTP API is served over HTTPS, PostgreSQL
    /// clients may connect with TLS (sslmode=require) and Flight SQL is served as grpc+tls only.
    #[arg(long, env = "TESSERA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "TESSERA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PostgreSQL connections open at once; more are refused (SQLSTATE 53300).
    #[arg(long, env = "TESSERA_PG_MAX_CONNECTIONS", default_value_t = 100)]
    pub pg_max_connections: usize,
    /// Directory of the embedded defaults (metadata.db, tables/).
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "./tessera-data")]
    pub data_dir: PathBuf,
    /// Metadata store: sqlite://PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DB. Default: SQLite in --data-dir.
    #[arg(long, env = "TESSERA_METADATA")]
    pub metadata: Option<String>,
    /// The audit log's key, kept outside the metadata store (made on a new mesh's first start). Instances sharing one store need the same key. Default: --data-dir/audit.key.
    #[arg(long, env = "TESSERA_AUDIT_KEY_FILE")]
    pub audit_key_file: Option<PathBuf>,
    /// Root of the Delta tables: a directory or an object store URL (s3://bucket/prefix). Default: --data-dir/tables.
    #[arg(long, env = "TESSERA_STORAGE")]
    pub storage: Option<String>,
    /// An object store option such as AWS_ENDPOINT_URL=http://127.0.0.1:9000 (repeatable; AWS_* variables are read from the environment too).
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = key_value)]
    pub storage_options: Vec<(String, String)>,
    /// Largest request body the API accepts, in bytes.
    #[arg(long, env = "TESSERA_MAX_BODY_BYTES", default_value_t = 1 << 30)]
    pub max_body_bytes: usize,
    /// Largest body of an event request (POST .../events), in bytes; a gzip body's decompressed size too.
    #[arg(long, env = "TESSERA_EVENT_MAX_BODY_BYTES", default_value_t = 16 << 20)]
    pub event_max_body_bytes: usize,
    /// Most events one event request may hold (NDJSON lines, or array elements); more is 413.
    #[arg(long, env = "TESSERA_EVENT_MAX_ROWS", default_value_t = 100_000)]
    pub event_max_rows: usize,
    /// How often each dataset's acknowledged events are committed to its table, in milliseconds.
    #[arg(long, env = "TESSERA_EVENT_COMMIT_INTERVAL_MS", default_value_t = 500)]
    pub event_commit_interval_ms: u64,
    /// Events waiting for one dataset that are committed at once, before the interval is up (and about the most one commit holds).
    #[arg(long, env = "TESSERA_EVENT_COMMIT_ROWS", default_value_t = 300_000)]
    pub event_commit_rows: usize,
    /// Acknowledged but uncommitted event bytes the event log holds before requests get 429 with Retry-After.
    #[arg(long, env = "TESSERA_EVENT_MAX_BACKLOG_BYTES", default_value_t = 256 << 20)]
    pub event_max_backlog_bytes: u64,
    /// How long an Idempotency-Key makes a retried event request harmless, in seconds.
    #[arg(
        long,
        env = "TESSERA_EVENT_IDEMPOTENCY_SECONDS",
        default_value_t = 86_400
    )]
    pub event_idempotency_seconds: u64,
    /// How often every table is maintained (small files compacted, old log entries and unused files deleted, a checkpoint written where commits left none), in seconds; 0 turns maintenance off.
    #[arg(
        long,
        env = "TESSERA_MAINTENANCE_INTERVAL_SECONDS",
        default_value_t = 60
    )]
    pub maintenance_interval_seconds: u64,
    /// Files under half the target size a table must have before they are compacted.
    #[arg(long, env = "TESSERA_COMPACT_MIN_FILES", default_value_t = 16)]
    pub compact_min_files: usize,
    /// The size compaction aims at for each file, in bytes.
    #[arg(long, env = "TESSERA_COMPACT_TARGET_BYTES", default_value_t = 128 << 20)]
    pub compact_target_bytes: u64,
    /// Commits between two checkpoints of a table (written behind the commits, maintenance on or off) unless the table sets `delta.checkpointInterval`.
    #[arg(long, env = "TESSERA_CHECKPOINT_EVERY", default_value_t = 10)]
    pub checkpoint_every: i64,
    /// How long a table's log keeps its commits before a checkpoint replaces them, in hours.
    #[arg(long, env = "TESSERA_LOG_RETENTION_HOURS", default_value_t = 24)]
    pub log_retention_hours: u64,
    /// How long data files that a compaction replaced are kept for readers of older snapshots before they are deleted, in hours.
    #[arg(long, env = "TESSERA_VACUUM_RETENTION_HOURS", default_value_t = 168)]
    pub vacuum_retention_hours: u64,
    /// How often the server looks for contract checks whose schedule is due, in seconds (0: never).
    #[arg(long, env = "TESSERA_CHECK_TICK_SECONDS", default_value_t = 30)]
    pub check_tick_seconds: u64,
    /// How often the server looks for transforms that are due (an `every:` interval passed, an
    /// upstream commit settled), in seconds (0: transforms run by hand only, `tessera run`).
    #[arg(long, env = "TESSERA_TRANSFORM_TICK_SECONDS", default_value_t = 1)]
    pub transform_tick_seconds: u64,
    /// How many transforms of one run (`tessera run`, across the mesh or a product, or those due
    /// at one look of the scheduler) compute at once — those that do not feed each other; 1:
    /// one after another. Each one's query keeps its own memory limit.
    #[arg(long, env = "TESSERA_TRANSFORM_CONCURRENCY", default_value_t = 2)]
    pub transform_concurrency: usize,
    /// A transform's merge into a table whose files hold at most this many bytes marks the
    /// replaced rows deleted (deletion vectors) and adds the run's in a file of their own,
    /// instead of a Delta merge, which would rewrite every file holding a key (0: always a
    /// Delta merge).
    #[arg(long, env = "TESSERA_TRANSFORM_REWRITE_MAX_BYTES", default_value_t = 8 << 20)]
    pub transform_rewrite_max_bytes: u64,
    /// A transform runs after an upstream commit once its inputs have not moved for this long,
    /// in seconds…
    #[arg(long, env = "TESSERA_TRANSFORM_QUIET_SECONDS", default_value_t = 2)]
    pub transform_quiet_seconds: u64,
    /// …or this long after the first commit, in seconds, when they never stop moving (an event
    /// stream).
    #[arg(long, env = "TESSERA_TRANSFORM_MAX_WAIT_SECONDS", default_value_t = 60)]
    pub transform_max_wait_seconds: u64,
    /// Send OpenLineage run events (transform runs, source pulls, ingest and event commits) to
    /// this endpoint, e.g. Marquez's `http://marquez:5000/api/v1/lineage`; they are kept in
    /// the metadata store either way.
    #[arg(long, env = "TESSERA_OPENLINEAGE_URL")]
    pub openlineage_url: Option<String>,
    /// The OpenLineage namespace of this mesh's datasets and jobs.
    #[arg(
        long,
        env = "TESSERA_OPENLINEAGE_NAMESPACE",
        default_value = "tessera://local"
    )]
    pub openlineage_namespace: String,
    /// Days the kept OpenLineage events stay in the metadata store once delivered (without
    /// `--openlineage-url`: once emitted).
    #[arg(long, env = "TESSERA_OPENLINEAGE_RETENTION_DAYS", default_value_t = 7)]
    pub openlineage_retention_days: u64,
    /// Memory one query may hold (joins, sorts, aggregations, values functions build), in bytes.
    #[arg(long, env = "TESSERA_QUERY_MEMORY_LIMIT_BYTES", default_value_t = 1 << 30)]
    pub query_memory_limit_bytes: usize,
    /// Memory all running queries may hold together, in bytes (server-wide).
    #[arg(long, env = "TESSERA_QUERY_MEMORY_POOL_BYTES", default_value_t = 4 << 30)]
    pub query_memory_pool_bytes: usize,
    /// Longest a query may run, in seconds, from admission to its last row; it is cancelled then.
    #[arg(long, env = "TESSERA_QUERY_TIMEOUT_SECONDS", default_value_t = 300)]
    pub query_timeout_seconds: u64,
    /// Most rows one query may return.
    #[arg(
        long,
        env = "TESSERA_QUERY_MAX_RESULT_ROWS",
        default_value_t = 10_000_000
    )]
    pub query_max_result_rows: u64,
    /// Most bytes one query may return (Arrow's in-memory size of the result).
    #[arg(long, env = "TESSERA_QUERY_MAX_RESULT_BYTES", default_value_t = 1 << 30)]
    pub query_max_result_bytes: u64,
    /// Longest SQL text accepted, in bytes.
    #[arg(long, env = "TESSERA_QUERY_MAX_SQL_BYTES", default_value_t = 1 << 20)]
    pub query_max_sql_bytes: usize,
    /// Queries that run at once (server-wide). Default: twice the number of cores, at least 4.
    #[arg(long, env = "TESSERA_QUERY_CONCURRENCY")]
    pub query_concurrency: Option<usize>,
    /// Queries that may wait for a turn (server-wide); more are answered 503 with Retry-After.
    #[arg(long, env = "TESSERA_QUERY_QUEUE_LENGTH", default_value_t = 64)]
    pub query_queue_length: usize,
    /// Longest a graceful shutdown waits for requests in flight after cancelling queries, in seconds.
    #[arg(long, env = "TESSERA_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 10)]
    pub shutdown_timeout_seconds: u64,
    /// Largest contract or product file `apply` accepts, in bytes.
    #[arg(long, env = "TESSERA_CONTRACT_MAX_BYTES", default_value_t = 1 << 20)]
    pub contract_max_bytes: usize,
    /// Most schema objects (datasets) one contract may have.
    #[arg(long, env = "TESSERA_CONTRACT_MAX_DATASETS", default_value_t = 100)]
    pub contract_max_datasets: usize,
    /// Most properties (columns, nested ones included) one schema object may have.
    #[arg(long, env = "TESSERA_CONTRACT_MAX_COLUMNS", default_value_t = 1000)]
    pub contract_max_columns: usize,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Size of the synthetic data: 1 is about 150k rows in all; rows grow linearly.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seed of the synthetic data (the same seed and scale give the same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop after loading instead of serving.
    #[arg(long)]
    pub no_serve: bool,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// An address to listen on, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddress(pub Option<SocketAddr>);

fn parse_listen_address(value: &str) -> Result<ListenAddress, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(ListenAddress(None));
    }
    value
        .parse()
        .map(|a| ListenAddress(Some(a)))
        .map_err(|e| format!("{e}: expected HOST:PORT (e.g. 127.0.0.1:5433) or off"))
}
