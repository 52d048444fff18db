//! `tessera new`: golden paths. `tessera new domain NAME --owner TEAM` writes a domain folder
//! whose owner team and support channel the products made in it start with; `tessera new
//! product DOMAIN/NAME --template T` writes a product folder from a template — ODPS descriptor,
//! ODCS contract, a source or a transform, a domain policy stub, a README for consumers, sample
//! data — that lints clean, passes the standard policies and applies as it is.
//!
//! A template is a folder: `template.yaml` (its name, description, starting schema, whether it
//! needs `--input`s, and optionally a `base` template whose files it starts from) and files
//! rendered with minijinja, names included (`{{ dataset }}.odcs.yaml`); a file that renders
//! empty is not written. The built-in templates are the repository's `templates/` folders,
//! compiled in; a platform team adds its own with `--templates DIR` (`TESSERA_TEMPLATES`), a
//! folder of template folders (docs/templates.md).
//!
//! What a team knows fills the template in: `--from-file` infers the schema from a sample file
//! (CSV, NDJSON or Parquet, read as `tessera test` reads local files: `read_local_file`), `--source postgres://…` from the table's columns,
//! `--input` resolves each input port's contract (and, for the consumer template, its columns)
//! through the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cli::{NewDomainArgs, NewProductArgs};
use crate::client::Client;

/// The templates compiled into the binary: the repository's `templates/` folders.
const BUILT_IN: &[(&str, &[(&str, &str)])] = &[
    (
        "source-aligned",
        &[
            (
                "template.yaml",
                include_str!("../../../../templates/source-aligned/template.yaml"),
            ),
            (
                "product.odps.yaml",
                include_str!("../../../../templates/source-aligned/product.odps.yaml"),
            ),
            (
                "{{ dataset }}.odcs.yaml",
                include_str!("../../../../templates/source-aligned/{{ dataset }}.odcs.yaml"),
            ),
            (
                "sources/{{ dataset }}.yaml",
                include_str!("../../../../templates/source-aligned/sources/{{ dataset }}.yaml"),
            ),
            (
                "policies/{{ product }}-rules.yaml",
                include_str!(
                    "../../../../templates/source-aligned/policies/{{ product }}-rules.yaml"
                ),
            ),
            (
                "README.md",
                include_str!("../../../../templates/source-aligned/README.md"),
            ),
        ],
    ),
    (
        "aggregate",
        &[
            (
                "template.yaml",
                include_str!("../../../../templates/aggregate/template.yaml"),
            ),
            (
                "transforms/{{ dataset }}.sql",
                include_str!("../../../../templates/aggregate/transforms/{{ dataset }}.sql"),
            ),
        ],
    ),
    (
        "consumer",
        &[
            (
                "template.yaml",
                include_str!("../../../../templates/consumer/template.yaml"),
            ),
            (
                "transforms/{{ dataset }}.sql",
                include_str!("../../../../templates/consumer/transforms/{{ dataset }}.sql"),
            ),
        ],
    ),
];

/// The file in a domain folder that `tessera new domain` writes (hidden: lint and apply skip it).
const DOMAIN_FILE: &str = ".tessera-domain.yaml";

/// How many rows of a sample file are read to infer its schema.
const SAMPLED_ROWS: usize = 10_000;

/// `template.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateSpec {
    name: String,
    description: String,
    /// `required`: the product is computed from `--input`s.
    #[serde(default)]
    inputs: Option<String>,
    /// A template whose files this one starts from (its own files replace theirs by path).
    #[serde(default)]
    base: Option<String>,
    #[serde(default)]
    columns: Option<StartingColumns>,
    /// Sample rows (CSV) written to `sample/DATASET.csv` when the data comes from files.
    #[serde(default)]
    sample: Option<String>,
}

/// The schema a template starts with.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum StartingColumns {
    Listed(Vec<ColumnDef>),
    /// `first-input`: the first input's columns.
    From(String),
}

/// One column as templates see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ColumnDef {
    name: String,
    logical_type: String,
    #[serde(default)]
    physical_type: Option<String>,
    description: String,
    #[serde(default)]
    primary_key: bool,
    #[serde(default)]
    required: bool,
    /// Personal data: classified `pii` (masked for readers without the right to see it).
    #[serde(default)]
    personal: bool,
    #[serde(default)]
    minimum: Option<serde_json::Number>,
    #[serde(default)]
    valid_values: Vec<String>,
}

/// A template, its files gathered (a base's included).
#[derive(Debug, Clone)]
struct Template {
    spec: TemplateSpec,
    /// `built in`, or the folder it was read from.
    origin: String,
    /// (path as written, with placeholders; content).
    files: BTreeMap<String, String>,
}

fn parse_spec(origin: &str, text: &str) -> Result<TemplateSpec> {
    serde_yaml_ng::from_str(text).with_context(|| format!("{origin}: template.yaml"))
}

/// The built-in templates, and the platform's in `dir` (which replace built-in ones of the same
/// name), with their bases' files.
fn templates(dir: Option<&Path>) -> Result<Vec<Template>> {
    let mut all: Vec<Template> = Vec::new();
    for (name, files) in BUILT_IN {
        let spec_text = files
            .iter()
            .find(|(path, _)| *path == "template.yaml")
            .map(|(_, text)| *text)
            .expect("every built-in template has a template.yaml");
        let spec = parse_spec(&format!("built-in template {name}"), spec_text)?;
        all.push(Template {
            spec,
            origin: "built in".into(),
            files: files
                .iter()
                .filter(|(path, _)| *path != "template.yaml")
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
        });
    }
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("the templates folder {}", dir.display()))?;
        let mut folders: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("template.yaml").is_file())
            .collect();
        folders.sort();
        for folder in folders {
            let origin = folder.display().to_string();
            let spec = parse_spec(
                &origin,
                &std::fs::read_to_string(folder.join("template.yaml"))?,
            )?;
            let mut files = BTreeMap::new();
            for file in walk(&folder)? {
                let relative = file
                    .strip_prefix(&folder)
                    .expect("walked under the folder")
                    .to_string_lossy()
                    .replace('\\', "/");
                if relative == "template.yaml" {
                    continue;
                }
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("{}: not a text file", file.display()))?;
                files.insert(relative, text);
            }
            all.retain(|t| t.spec.name != spec.name);
            all.push(Template {
                spec,
                origin,
                files,
            });
        }
    }
    // A base's files first, the template's own over them.
    let snapshot = all.clone();
    for template in &mut all {
        let mut seen = vec![template.spec.name.clone()];
        let mut base = template.spec.base.clone();
        while let Some(name) = base {
            if seen.contains(&name) {
                bail!(
                    "template {}: its bases go round in a circle ({} → {name})",
                    template.spec.name,
                    seen.join(" → ")
                );
            }
            let Some(found) = snapshot.iter().find(|t| t.spec.name == name) else {
                bail!(
                    "template {} ({}): its base {name:?} is no template",
                    template.spec.name,
                    template.origin
                );
            };
            for (path, text) in &found.files {
                template
                    .files
                    .entry(path.clone())
                    .or_insert_with(|| text.clone());
            }
            seen.push(name);
            base = found.spec.base.clone();
        }
    }
    Ok(all)
}

/// Every file under `dir`, hidden ones left out.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let path = entry?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `tessera new --list`.
pub fn list(dir: Option<&Path>) -> Result<()> {
    for t in templates(dir)? {
        println!("{} ({})", t.spec.name, t.origin);
        println!("    {}", t.spec.description.trim());
        if t.spec.inputs.as_deref() == Some("required") {
            println!("    needs: --input DOMAIN.PRODUCT.DATASET (one or more)");
        }
    }
    Ok(())
}

/// What `tessera new domain` writes into `.tessera-domain.yaml`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DomainDefaults {
    domain: String,
    owner: String,
    support_channel: String,
    support_url: String,
}

/// A name as the mesh takes it: lower-case snake_case.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!(
            "{what} {name:?} is not a lower-case snake_case name (letters, digits and _, starting with a letter)"
        );
    }
    Ok(())
}

fn default_channel(domain: &str) -> String {
    format!("#{}", domain.replace('_', "-"))
}

fn default_url(domain: &str) -> String {
    format!(
        "https://chat.example.com/channels/{}",
        domain.replace('_', "-")
    )
}

/// `tessera new domain NAME --owner TEAM`.
pub fn new_domain(args: &NewDomainArgs) -> Result<()> {
    check_name("the domain", &args.name)?;
    if args.owner.trim().is_empty() {
        bail!("--owner: the owner team's name is empty");
    }
    let folder = args.dir.join(&args.name);
    if folder.join(DOMAIN_FILE).exists() {
        bail!(
            "{} exists already: domain {} was made before",
            folder.join(DOMAIN_FILE).display(),
            args.name
        );
    }
    std::fs::create_dir_all(&folder).with_context(|| folder.display().to_string())?;
    let defaults = DomainDefaults {
        domain: args.name.clone(),
        owner: args.owner.clone(),
        support_channel: args
            .support_channel
            .clone()
            .unwrap_or_else(|| default_channel(&args.name)),
        support_url: args
            .support_url
            .clone()
            .unwrap_or_else(|| default_url(&args.name)),
    };
    let text = format!(
        "# Written by `tessera new domain`: what products made in this domain start with.\n{}",
        serde_yaml_ng::to_string(&defaults)?
    );
    std::fs::write(folder.join(DOMAIN_FILE), text)?;
    let readme = folder.join("README.md");
    if !readme.exists() {
        std::fs::write(
            &readme,
            format!(
                "# Domain {name}\n\nOwned by **{owner}**; ask in {channel} ({url}).\n\nEach folder here is one data product. Make one with\n\n```console\n$ tessera new product {name}/PRODUCT --template source-aligned   # or aggregate, consumer: tessera new --list\n```\n\nrun from the folder above this one; products made here start with the owner team and the\nsupport channel above (kept in `{file}`). Publish one with `tessera apply {name}/PRODUCT`.\n",
                name = args.name,
                owner = defaults.owner,
                channel = defaults.support_channel,
                url = defaults.support_url,
                file = DOMAIN_FILE,
            ),
        )?;
    }
    println!("Created domain {} in {}", args.name, folder.display());
    println!(
        "  owner team {}, support {}",
        defaults.owner, defaults.support_channel
    );
    println!(
        "Next: tessera new product {}/PRODUCT --template source-aligned (tessera new --list shows the templates)",
        args.name
    );
    Ok(())
}

/// An input port, resolved through the server.
#[derive(Debug, Clone, Serialize)]
struct InputPort {
    #[serde(rename = "ref")]
    reference: String,
    domain: String,
    product: String,
    dataset: String,
    port: String,
    contract_id: String,
    contract_version: String,
}

/// The source a source-aligned product reads.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "connector", rename_all = "lowercase")]
enum SourceContext {
    Files {
        path: String,
        format: String,
    },
    Postgres {
        table: String,
        secret: String,
        cursor_timestamp: String,
        cursor_key: String,
    },
}

/// `tessera new product DOMAIN/NAME --template T`.
pub async fn new_product(args: &NewProductArgs, templates_dir: Option<&Path>) -> Result<()> {
    let Some((domain, product)) = args.name.split_once('/') else {
        bail!(
            "{:?}: name the product DOMAIN/NAME (e.g. shop/orders)",
            args.name
        );
    };
    check_name("the domain", domain)?;
    check_name("the product", product)?;
    let dataset = args.dataset.clone().unwrap_or_else(|| product.to_string());
    check_name("the dataset", &dataset)?;
    let all = templates(templates_dir)?;
    let Some(template) = all.iter().find(|t| t.spec.name == args.template) else {
        bail!(
            "there is no template {:?}; there are: {}",
            args.template,
            all.iter()
                .map(|t| t.spec.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let needs_inputs = template.spec.inputs.as_deref() == Some("required");
    if needs_inputs && args.inputs.is_empty() {
        bail!(
            "the {} template computes the product from other datasets: name them with --input DOMAIN.PRODUCT.DATASET",
            template.spec.name
        );
    }
    if !needs_inputs && !args.inputs.is_empty() {
        bail!(
            "the {} template reads no input ports (--input); use aggregate or consumer",
            template.spec.name
        );
    }
    if needs_inputs && (args.from_file.is_some() || args.source.is_some()) {
        bail!(
            "the {} template computes its data from its inputs: --from-file and --source are for source-aligned products",
            template.spec.name
        );
    }
    if args.from_file.is_some() && args.source.is_some() {
        bail!("give --from-file or --source, not both");
    }

    let domain_folder = args.dir.join(domain);
    let defaults: Option<DomainDefaults> =
        match std::fs::read_to_string(domain_folder.join(DOMAIN_FILE)) {
            Ok(text) => Some(
                serde_yaml_ng::from_str(&text)
                    .with_context(|| format!("{}", domain_folder.join(DOMAIN_FILE).display()))?,
            ),
            Err(_) => None,
        };
    let owner = match (&args.owner, &defaults) {
        (Some(owner), _) => owner.clone(),
        (None, Some(d)) => d.owner.clone(),
        (None, None) => bail!(
            "who owns {domain}/{product}? Pass --owner TEAM, or make the domain first: tessera new domain {domain} --owner TEAM"
        ),
    };
    let support_channel = args
        .support_channel
        .clone()
        .or_else(|| defaults.as_ref().map(|d| d.support_channel.clone()))
        .unwrap_or_else(|| default_channel(domain));
    let support_url = args
        .support_url
        .clone()
        .or_else(|| defaults.as_ref().map(|d| d.support_url.clone()))
        .unwrap_or_else(|| default_url(domain));

    let folder = domain_folder.join(product);
    if folder.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{} exists and is not empty: a new product goes into a new folder",
            folder.display()
        );
    }

    // What fills the template in.
    let mut sample: Option<(String, Vec<u8>)> = None;
    let mut source = None;
    let inputs = if needs_inputs {
        resolve_inputs(&Client::connect(&args.client)?, &args.inputs).await?
    } else {
        Vec::new()
    };
    let columns: Vec<ColumnDef> = if let Some(file) = &args.from_file {
        let (columns, format) = infer_from_file(file).await?;
        let name = format!("{dataset}.{format}");
        sample = Some((
            name,
            std::fs::read(file).with_context(|| file.display().to_string())?,
        ));
        source = Some(SourceContext::Files {
            path: format!("incoming/{domain}/{product}/{dataset}"),
            format,
        });
        columns
    } else if let Some(url) = &args.source {
        let table = args.table.clone().ok_or_else(|| {
            anyhow::anyhow!("--source needs --table SCHEMA.TABLE: the table the product reads")
        })?;
        let (columns, cursor_timestamp, cursor_key) = infer_from_postgres(
            url,
            &table,
            args.cursor_timestamp.as_deref(),
            args.cursor_key.as_deref(),
        )
        .await?;
        source = Some(SourceContext::Postgres {
            table,
            secret: format!("{domain}_{product}_db"),
            cursor_timestamp,
            cursor_key,
        });
        columns
    } else {
        match &template.spec.columns {
            Some(StartingColumns::Listed(columns)) => columns.clone(),
            Some(StartingColumns::From(from)) if from == "first-input" => {
                input_columns(&Client::connect(&args.client)?, &inputs[0]).await?
            }
            Some(StartingColumns::From(other)) => bail!(
                "template {}: columns: {other:?} is neither a list of columns nor first-input",
                template.spec.name
            ),
            None => bail!(
                "template {} has no starting columns: give --from-file or --source",
                template.spec.name
            ),
        }
    };
    if columns.is_empty() {
        bail!("no columns were found to start the contract with");
    }
    if !needs_inputs && source.is_none() {
        source = Some(SourceContext::Files {
            path: format!("incoming/{domain}/{product}/{dataset}"),
            format: "csv".into(),
        });
        if let Some(rows) = &template.spec.sample {
            sample = Some((format!("{dataset}.csv"), rows.clone().into_bytes()));
        }
    }

    let key = columns
        .iter()
        .find(|c| c.primary_key)
        .map(|c| c.name.clone());
    let time_column = columns
        .iter()
        .find(|c| c.logical_type == "timestamp" && c.required)
        .or_else(|| columns.iter().find(|c| c.logical_type == "timestamp"))
        .map(|c| c.name.clone());
    let reference = format!("{domain}.{product}.{dataset}");
    let sample_query = match &time_column {
        Some(t) => format!("SELECT * FROM {reference} ORDER BY {t} DESC LIMIT 10"),
        None => format!("SELECT * FROM {reference} LIMIT 10"),
    };
    let words = |name: &str| name.replace('_', " ");
    let description = args.description.clone().unwrap_or_else(|| {
        if inputs.is_empty() {
            format!(
                "{} of the {} domain, as the source system holds them.",
                capitalised(&words(product)),
                words(domain)
            )
        } else {
            format!(
                "{} of the {} domain, computed from {}.",
                capitalised(&words(product)),
                words(domain),
                inputs
                    .iter()
                    .map(|i| i.reference.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    });
    let dataset_description = if inputs.is_empty() {
        format!(
            "{}, one row per record of the source.",
            capitalised(&words(&dataset))
        )
    } else {
        format!(
            "{}, computed from {}.",
            capitalised(&words(&dataset)),
            inputs
                .iter()
                .map(|i| i.reference.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let context = json!({
        "template": template.spec.name,
        "domain": domain,
        "product": product,
        "dataset": dataset,
        "owner": owner,
        "support_channel": support_channel,
        "support_url": support_url,
        "description": description,
        "dataset_description": dataset_description,
        "columns": columns,
        "key": key,
        "time_column": time_column,
        "personal": columns.iter().any(|c| c.personal),
        "inputs": inputs,
        "source": source,
        "sample_query": sample_query,
    });

    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    // A value written for YAML: JSON's flow style, which YAML reads, without minijinja's
    // `tojson` HTML escapes (an apostrophe stays one).
    env.add_filter("yaml", |value: minijinja::Value| {
        serde_json::to_string(&value).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })
    });
    let mut written = Vec::new();
    let mut rendered = Vec::new();
    for (path, text) in &template.files {
        let path_out = env
            .render_str(path, &context)
            .with_context(|| format!("template {}: the file name {path}", template.spec.name))?;
        let text_out = env
            .render_str(text, &context)
            .with_context(|| format!("template {}: {path}", template.spec.name))?;
        if text_out.trim().is_empty() {
            continue;
        }
        rendered.push((path_out, text_out));
    }
    if let Some((name, bytes)) = &sample {
        let path = folder.join("sample").join(name);
        std::fs::create_dir_all(path.parent().expect("a sample folder"))?;
        std::fs::write(&path, bytes)?;
        written.push(path);
    }
    for (path, text) in rendered {
        let out = folder.join(&path);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&out, text).with_context(|| out.display().to_string())?;
        written.push(out);
    }
    written.sort();
    println!(
        "Created product {domain}.{product} from the {} template in {}:",
        template.spec.name,
        folder.display()
    );
    for file in &written {
        println!("  {}", file.strip_prefix(&folder).unwrap_or(file).display());
    }
    // The folder lints clean, or the template is wrong: say so now, not at apply.
    crate::commands::lint::run(std::slice::from_ref(&folder))
        .context("the new product folder does not lint clean: the template needs fixing")?;
    let shown = folder.display();
    println!("\nNext:");
    if let Some(SourceContext::Postgres { secret, .. }) = &source {
        // The source names its secret: it must exist before the product applies.
        println!(
            "  printf %s \"$DATABASE_URL\" | tessera secret set {secret} --team \"{owner}\"   # the source's connection URL"
        );
    }
    println!("  tessera apply {shown} --dry-run      # the plan, and the governance verdict");
    println!("  tessera apply {shown}");
    if let Some((name, _)) = &sample {
        println!(
            "  tessera ingest {reference} {}",
            folder.join("sample").join(name).display()
        );
    }
    if !inputs.is_empty() {
        println!("  tessera run {reference}");
    }
    println!("  tessera query \"{sample_query}\"");
    Ok(())
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Rows of a JSON query answer.
async fn query_rows(client: &Client, sql: &str) -> Result<Vec<serde_json::Map<String, Value>>> {
    let body = client.query(sql, "application/json").await?;
    let result: tessera_server::views::QueryResult =
        serde_json::from_slice(&body).context("the server's JSON answer is not readable")?;
    if let Some(error) = result.error {
        bail!("{}", error.message);
    }
    Ok(result.rows)
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Each `--input`'s contract, as the server has it; the port names made unique.
async fn resolve_inputs(client: &Client, inputs: &[String]) -> Result<Vec<InputPort>> {
    let mut ports: Vec<InputPort> = Vec::new();
    for input in inputs {
        let parts: Vec<&str> = input.split('.').collect();
        let [domain, product, dataset] = parts[..] else {
            bail!("--input {input:?}: name a dataset DOMAIN.PRODUCT.DATASET");
        };
        let rows = query_rows(
            client,
            &format!(
                "SELECT contract_id, contract_version FROM tessera_meta.datasets WHERE domain = {} AND product = {} AND dataset = {}",
                quoted(domain),
                quoted(product),
                quoted(dataset)
            ),
        )
        .await
        .with_context(|| format!("looking up --input {input} on {}", client.server()))?;
        let Some(row) = rows.first() else {
            bail!(
                "--input {input}: {} has no such dataset (or you may not discover it)",
                client.server()
            );
        };
        let text = |k: &str| {
            row.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut port = dataset.to_string();
        if ports.iter().any(|p| p.port == port) {
            port = format!("{product}_{dataset}");
        }
        if ports.iter().any(|p| p.contract_id == text("contract_id")) {
            // One port per contract: a second dataset of the same contract is already readable.
            continue;
        }
        ports.push(InputPort {
            reference: input.clone(),
            domain: domain.into(),
            product: product.into(),
            dataset: dataset.into(),
            port,
            contract_id: text("contract_id"),
            contract_version: text("contract_version"),
        });
    }
    Ok(ports)
}

/// An input's columns as its contract declares them (personal data stays personal).
async fn input_columns(client: &Client, input: &InputPort) -> Result<Vec<ColumnDef>> {
    let rows = query_rows(
        client,
        &format!(
            "SELECT column_name, logical_type, physical_type, description, required, primary_key, personal_data FROM tessera_meta.columns WHERE domain = {} AND product = {} AND dataset = {} ORDER BY ordinal",
            quoted(&input.domain),
            quoted(&input.product),
            quoted(&input.dataset)
        ),
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_string);
            let flag = |k: &str| row.get(k).and_then(Value::as_bool).unwrap_or(false);
            let name = text("column_name").unwrap_or_default();
            ColumnDef {
                description: text("description").unwrap_or_else(|| {
                    format!(
                        "{} of {}.",
                        capitalised(&name.replace('_', " ")),
                        input.reference
                    )
                }),
                logical_type: text("logical_type").unwrap_or_else(|| "string".into()),
                physical_type: text("physical_type"),
                primary_key: flag("primary_key"),
                required: flag("required"),
                personal: flag("personal_data"),
                minimum: None,
                valid_values: Vec::new(),
                name,
            }
        })
        .collect())
}

/// The regex the standard policy `personal-data-classified` finds personal data by name with,
/// read from the policy itself so that the two never differ.
fn personal_name_pattern() -> Option<regex::Regex> {
    let (_, policy) = tessera_governance::STANDARD_POLICIES
        .iter()
        .find(|(file, _)| *file == "personal-data-classified.yaml")?;
    let after = policy.split("regexp_like(lower(column_name),").nth(1)?;
    let pattern = after.split('\'').nth(1)?;
    regex::Regex::new(pattern).ok()
}

/// A column's ODCS logical type (and physical type, where the logical one says too little).
fn logical_type(data_type: &DataType) -> Result<(&'static str, Option<String>)> {
    Ok(match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => ("integer", None),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ("number", None),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            ("number", Some(format!("decimal({p},{s})")))
        }
        DataType::Boolean => ("boolean", None),
        DataType::Date32 | DataType::Date64 => ("date", None),
        DataType::Timestamp(_, _) => ("timestamp", None),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("string", None),
        DataType::Null => ("string", None),
        other => bail!("a column of type {other} (write its schema in the contract by hand)"),
    })
}

/// Whether every value of a text column reads as a timestamp (RFC 3339, or `YYYY-MM-DD HH:MM:SS`).
fn all_timestamps(values: &[&str]) -> bool {
    !values.is_empty()
        && values.iter().all(|v| {
            chrono::DateTime::parse_from_rfc3339(v).is_ok()
                || chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S").is_ok()
        })
}

/// The schema of a sample file (CSV, NDJSON or Parquet) and its format: types from what
/// DataFusion reads, required where no value is missing, the first `id`/`*_id` column whose
/// values are unique as the key, personal data by name (as the standard policy finds it) or by
/// value (as ingest's detectors do).
async fn infer_from_file(file: &Path) -> Result<(Vec<ColumnDef>, String)> {
    let extension = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let format = match extension.as_str() {
        "csv" => "csv",
        "ndjson" | "jsonl" | "json" => "ndjson",
        "parquet" => "parquet",
        _ => bail!(
            "--from-file {}: a .csv, .ndjson (.jsonl) or .parquet file is needed",
            file.display()
        ),
    };
    let path = file
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{}: the path is not UTF-8", file.display()))?;
    if !file.is_file() {
        bail!("--from-file {}: no such file", file.display());
    }
    // Read in this process, as the local user, through a session like any other.
    let cx = crate::commands::local_context("tessera-new");
    let batches = tessera_server::read_local_file(&cx, path, format, SAMPLED_ROWS)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    let schema = batches
        .first()
        .map(RecordBatch::schema)
        .ok_or_else(|| anyhow::anyhow!("{}: no rows to learn the schema from", file.display()))?;
    let batch = arrow::compute::concat_batches(&schema, &batches)?;
    if batch.num_rows() == 0 {
        bail!("{}: no rows to learn the schema from", file.display());
    }
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let by_value: Vec<String> = tessera_ingest::personal_data_hits(&batch, &names)
        .into_iter()
        .filter(|h| tessera_core::detection_holds(h.matched, h.sampled))
        .map(|h| h.column)
        .collect();
    let by_name = personal_name_pattern();
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut columns = Vec::new();
    let mut key_taken = false;
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        check_name("the column", name).with_context(|| {
            format!("{file_name}: rename the column to lower-case snake_case first")
        })?;
        let array = batch.column(i);
        let (mut logical, physical) =
            logical_type(field.data_type()).with_context(|| format!("{file_name}: {name}"))?;
        let text = arrow::compute::cast(array, &DataType::Utf8)?;
        let values: Vec<&str> = text.as_string::<i32>().iter().flatten().collect();
        if logical == "string" && all_timestamps(&values) {
            logical = "timestamp";
        }
        let complete = array.null_count() == 0 && values.iter().all(|v| !v.is_empty());
        let unique = complete && {
            let mut seen = std::collections::HashSet::with_capacity(values.len());
            values.iter().all(|v| seen.insert(*v))
        };
        let primary_key = !key_taken && unique && (name == "id" || name.ends_with("_id"));
        key_taken |= primary_key;
        let personal = by_value.contains(name)
            || by_name
                .as_ref()
                .is_some_and(|p| p.is_match(&name.to_ascii_lowercase()));
        columns.push(ColumnDef {
            name: name.clone(),
            logical_type: logical.to_string(),
            physical_type: physical,
            description: format!(
                "{}, as {file_name} holds it.",
                capitalised(&name.replace('_', " "))
            ),
            primary_key,
            required: complete,
            personal,
            minimum: None,
            valid_values: Vec::new(),
        });
    }
    Ok((columns, format.to_string()))
}

/// The columns of a PostgreSQL table (types, NOT NULL, comments, the primary key) and the
/// cursor the postgres connector reads it by: a timestamp column that says when a row changed
/// and the key rows are merged by.
async fn infer_from_postgres(
    url: &str,
    table: &str,
    cursor_timestamp: Option<&str>,
    cursor_key: Option<&str>,
) -> Result<(Vec<ColumnDef>, String, String)> {
    use sqlx::{Connection, Row};
    let (schema, name) = table.split_once('.').unwrap_or(("public", table));
    let mut conn = sqlx::postgres::PgConnection::connect(url)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "--source: cannot connect: {}",
                without_password(&e.to_string(), url)
            )
        })?;
    let rows = sqlx::query(
        "SELECT c.column_name::text AS name, c.data_type::text AS data_type, c.is_nullable::text AS nullable,
                c.numeric_precision::int4 AS precision, c.numeric_scale::int4 AS scale,
                col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position::int) AS comment
         FROM information_schema.columns c
         WHERE c.table_schema = $1 AND c.table_name = $2
         ORDER BY c.ordinal_position",
    )
    .bind(schema)
    .bind(name)
    .fetch_all(&mut conn)
    .await
    .with_context(|| format!("--source: reading the columns of {table}"))?;
    if rows.is_empty() {
        bail!("--source: there is no table {schema}.{name} (or you may not see it)");
    }
    let keys: Vec<String> = sqlx::query(
        "SELECT k.column_name::text AS name
         FROM information_schema.table_constraints t
         JOIN information_schema.key_column_usage k
           ON k.constraint_name = t.constraint_name AND k.table_schema = t.table_schema
         WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = $1 AND t.table_name = $2
         ORDER BY k.ordinal_position",
    )
    .bind(schema)
    .bind(name)
    .fetch_all(&mut conn)
    .await?
    .iter()
    .map(|r| r.get::<String, _>("name"))
    .collect();
    let by_name = personal_name_pattern();
    let mut columns = Vec::new();
    for row in &rows {
        let column: String = row.get("name");
        let data_type: String = row.get("data_type");
        let (logical, physical) = match data_type.as_str() {
            "smallint" | "integer" | "bigint" => ("integer", None),
            "real" | "double precision" => ("number", None),
            "numeric" => {
                let precision: Option<i32> = row.get("precision");
                let scale: Option<i32> = row.get("scale");
                (
                    "number",
                    precision.map(|p| format!("decimal({p},{})", scale.unwrap_or(0))),
                )
            }
            "boolean" => ("boolean", None),
            "date" => ("date", None),
            t if t.starts_with("timestamp") => ("timestamp", None),
            _ => ("string", None),
        };
        let comment: Option<String> = row.get("comment");
        columns.push(ColumnDef {
            description: comment.unwrap_or_else(|| {
                format!(
                    "{}, as {schema}.{name} holds it.",
                    capitalised(&column.replace('_', " "))
                )
            }),
            logical_type: logical.to_string(),
            physical_type: physical,
            primary_key: keys.len() == 1 && keys[0] == column,
            required: row.get::<String, _>("nullable") == "NO",
            personal: by_name
                .as_ref()
                .is_some_and(|p| p.is_match(&column.to_ascii_lowercase())),
            minimum: None,
            valid_values: Vec::new(),
            name: column,
        });
    }
    let timestamp = match cursor_timestamp {
        Some(t) => t.to_string(),
        None => {
            let stamps: Vec<&ColumnDef> = columns
                .iter()
                .filter(|c| c.logical_type == "timestamp")
                .collect();
            let named = stamps.iter().find(|c| {
                [
                    "updated_at",
                    "modified_at",
                    "last_modified",
                    "changed_at",
                    "updated",
                ]
                .contains(&c.name.as_str())
            });
            match (named, stamps.as_slice()) {
                (Some(c), _) => c.name.clone(),
                (None, [only]) => only.name.clone(),
                _ => bail!(
                    "--source: which column says when a row of {table} last changed? Pass --cursor-timestamp COLUMN (timestamp columns: {})",
                    stamps
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    let key = match (cursor_key, keys.as_slice()) {
        (Some(k), _) => k.to_string(),
        (None, [only]) => only.clone(),
        _ => bail!(
            "--source: {table} has no one-column primary key: pass --cursor-key COLUMN (the column rows are merged by)"
        ),
    };
    for wanted in [&timestamp, &key] {
        if !columns.iter().any(|c| &c.name == wanted) {
            bail!("--source: {table} has no column {wanted}");
        }
    }
    for c in &mut columns {
        if c.name == key {
            c.primary_key = true;
            c.required = true;
        }
    }
    Ok((columns, timestamp, key))
}

/// An error message without the URL's password.
fn without_password(message: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(password) if !password.is_empty() => message.replace(&password, "***"),
        _ => message.to_string(),
    }
}
