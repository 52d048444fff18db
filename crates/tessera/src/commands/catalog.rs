//! `tessera domains|products|datasets|contracts`: the catalog, as tables for people.

use anyhow::{Result, bail};
use comfy_table::{Table, presets};
use tessera_core::DatasetRef;
use tessera_server::views::*;

use crate::cli::{ContractsAction, DatasetsAction, DomainsAction, ProductsAction};
use crate::client::Client;

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING).set_header(header.to_vec());
    t
}

pub(crate) fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// Splits `DOMAIN.PRODUCT`.
fn product_ref(s: &str) -> Result<(String, String)> {
    match s.split('.').collect::<Vec<_>>().as_slice() {
        [d, p] if !d.is_empty() && !p.is_empty() => Ok((d.to_string(), p.to_string())),
        _ => bail!("invalid product {s:?}: expected DOMAIN.PRODUCT"),
    }
}

/// A product's sample queries numbered from 1 across its output ports, in the descriptor's
/// order: the numbers `products show` prints and `query --sample N` takes.
pub fn numbered_samples(p: &ProductView) -> Vec<(usize, &str, &SampleQueryView)> {
    p.output_ports
        .iter()
        .flat_map(|port| {
            port.sample_queries
                .iter()
                .map(move |q| (port.name.as_str(), q))
        })
        .enumerate()
        .map(|(i, (port, q))| (i + 1, port, q))
        .collect()
}

/// The product `DOMAIN.PRODUCT` as the API shows it.
pub async fn product(client: &Client, reference: &str) -> Result<ProductView> {
    let (domain, name) = product_ref(reference)?;
    client
        .get(&["api", "v1", "products", &domain, &name], &[])
        .await
}

pub async fn domains(client: &Client, action: Option<DomainsAction>) -> Result<()> {
    match action.unwrap_or(DomainsAction::List) {
        DomainsAction::List => {
            let domains: Vec<DomainView> = client.get(&["api", "v1", "domains"], &[]).await?;
            let mut t = table(&["DOMAIN", "PRODUCTS", "CREATED"]);
            for d in domains {
                t.add_row(vec![d.name, d.product_count.to_string(), d.created_at]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

pub async fn products(client: &Client, action: Option<ProductsAction>) -> Result<()> {
    match action.unwrap_or(ProductsAction::List { domain: None }) {
        ProductsAction::List { domain } => {
            let query: Vec<(&str, &str)> = domain.iter().map(|d| ("domain", d.as_str())).collect();
            let products: Vec<ProductSummary> =
                client.get(&["api", "v1", "products"], &query).await?;
            let mut t = table(&["PRODUCT", "OWNER", "STATUS", "VERSION", "DESCRIPTION"]);
            for p in products {
                t.add_row(vec![
                    format!("{}.{}", p.domain, p.name),
                    or_dash(&p.owner),
                    p.status,
                    or_dash(&p.version),
                    or_dash(&p.description),
                ]);
            }
            println!("{t}");
        }
        ProductsAction::Show { product } => {
            let p = self::product(client, &product).await?;
            let s = &p.summary;
            println!(
                "{}.{}  (id {}, version {}, {})",
                s.domain,
                s.name,
                s.id,
                or_dash(&s.version),
                s.status
            );
            println!("owner:       {}", or_dash(&s.owner));
            println!("description: {}", or_dash(&s.description));
            println!("descriptor:  {}", p.descriptor_file);
            match (&p.quality.result, p.quality.score) {
                (Some(result), score) => println!(
                    "quality:     score {} ({result} in the latest checks)",
                    score.map_or("-".into(), |s| format!("{s:.1}"))
                ),
                (None, _) => println!(
                    "quality:     not checked yet (run `tessera check {}.{}`)",
                    s.domain, s.name
                ),
            }
            for q in &p.quality.datasets {
                let issues = if q.not_passed.is_empty() {
                    String::new()
                } else {
                    format!("; not passed: {}", q.not_passed.join(", "))
                };
                println!(
                    "  {}: score {}, {} at {}{issues}",
                    q.dataset,
                    q.score.map_or("-".into(), |s| format!("{s:.1}")),
                    q.result,
                    q.checked_at
                );
            }
            let history: Vec<ProductQualityPoint> = client
                .get(
                    &["api", "v1", "products", &s.domain, &s.name, "checks"],
                    &[("limit", "10")],
                )
                .await?;
            if history.len() > 1 {
                let scores: Vec<String> = history
                    .iter()
                    .map(|h| h.score.map_or("-".into(), |s| format!("{s:.1}")))
                    .collect();
                println!("  score history, newest first: {}", scores.join(", "));
            }
            if let Some(c) = p.compliance.as_ref().filter(|c| c.policies > 0) {
                let failing: Vec<&str> = c
                    .standings
                    .iter()
                    .filter(|s| !s.passing)
                    .map(|s| s.policy_id.as_str())
                    .collect();
                println!(
                    "compliance:  {}, {} of {} policies passing{} (`tessera policy report {}.{}`)",
                    if c.compliant {
                        "compliant"
                    } else {
                        "NOT compliant"
                    },
                    c.passing,
                    c.policies,
                    if failing.is_empty() {
                        String::new()
                    } else {
                        format!("; failing: {}", failing.join(", "))
                    },
                    s.domain,
                    s.name
                );
            }
            let ports = |ports: &[PortView]| {
                ports
                    .iter()
                    .map(|x| {
                        format!(
                            "{} {} (contract {})",
                            x.name,
                            x.version,
                            or_dash(&x.contract_id)
                        )
                    })
                    .collect::<Vec<_>>()
            };
            for (title, list) in [
                ("input ports", ports(&p.input_ports)),
                ("output ports", ports(&p.output_ports)),
            ] {
                println!("{title}:");
                if list.is_empty() {
                    println!("  -");
                }
                for line in list {
                    println!("  {line}");
                }
            }
            let samples = numbered_samples(&p);
            if !samples.is_empty() {
                println!(
                    "sample queries (run one with `tessera query --sample N {}.{}`):",
                    s.domain, s.name
                );
                for (n, port, q) in samples {
                    let about = q
                        .description
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    println!("  {n}. {} (port {port}){about}", q.name);
                    println!(
                        "     {}",
                        q.sql.split_whitespace().collect::<Vec<_>>().join(" ")
                    );
                }
            }
            println!("datasets:");
            let mut t = table(&["DATASET", "CONTRACT", "DESCRIPTION"]);
            for d in &p.datasets {
                t.add_row(vec![
                    d.reference.clone(),
                    format!("{}@{}", d.contract_id, d.contract_version),
                    or_dash(&d.description),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

pub async fn datasets(client: &Client, action: Option<DatasetsAction>) -> Result<()> {
    match action.unwrap_or(DatasetsAction::List { product: None }) {
        DatasetsAction::List { product } => {
            let parts = product.as_deref().map(product_ref).transpose()?;
            let query: Vec<(&str, &str)> = match &parts {
                Some((d, p)) => vec![("domain", d.as_str()), ("product", p.as_str())],
                None => vec![],
            };
            let datasets: Vec<DatasetSummary> =
                client.get(&["api", "v1", "datasets"], &query).await?;
            let mut t = table(&["DATASET", "CONTRACT", "DESCRIPTION"]);
            for d in datasets {
                t.add_row(vec![
                    d.reference,
                    format!("{}@{}", d.contract_id, d.contract_version),
                    or_dash(&d.description),
                ]);
            }
            println!("{t}");
        }
        DatasetsAction::Show { dataset } => {
            let r: DatasetRef = dataset.parse()?;
            let d: DatasetView = client
                .get(
                    &[
                        "api",
                        "v1",
                        "datasets",
                        r.domain.as_str(),
                        r.product.as_str(),
                        r.dataset.as_str(),
                    ],
                    &[],
                )
                .await?;
            let s = &d.summary;
            println!(
                "{}  (contract {}@{})",
                s.reference, s.contract_id, s.contract_version
            );
            println!("description: {}", or_dash(&s.description));
            let size = match (d.table_files, d.table_bytes) {
                (Some(files), Some(bytes)) => format!(", {files} file(s), {bytes} bytes"),
                _ => String::new(),
            };
            println!(
                "table:       {} (version {}{size})",
                d.table_url,
                d.table_version.map_or("-".into(), |v| v.to_string())
            );
            println!("quarantine:  {} ({})", d.quarantine, d.quarantine_table_url);
            let mut t = table(&[
                "COLUMN",
                "TYPE",
                "STORED AS",
                "REQUIRED",
                "KEY",
                "CLASSIFICATION",
                "DESCRIPTION",
            ]);
            for c in d.columns {
                let key = if c.primary_key {
                    "primary"
                } else if c.unique {
                    "unique"
                } else {
                    ""
                };
                t.add_row(vec![
                    c.name,
                    c.logical_type.or(c.physical_type).unwrap_or_default(),
                    c.arrow_type,
                    if c.required { "yes".into() } else { "".into() },
                    key.into(),
                    c.classification.unwrap_or_default(),
                    c.description.unwrap_or_default(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

pub async fn contracts(client: &Client, action: Option<ContractsAction>) -> Result<()> {
    match action.unwrap_or(ContractsAction::List) {
        ContractsAction::List => {
            let contracts: Vec<ContractSummary> =
                client.get(&["api", "v1", "contracts"], &[]).await?;
            let mut t = table(&["DOMAIN", "CONTRACT", "LATEST", "STATUS", "VERSIONS"]);
            for c in contracts {
                t.add_row(vec![
                    c.domain,
                    c.id,
                    c.latest_version,
                    c.status,
                    c.versions.join(", "),
                ]);
            }
            println!("{t}");
        }
        ContractsAction::Show {
            id,
            version,
            domain,
        } => {
            // Contracts are scoped to their domain; without --domain, the one domain that has
            // a contract of this id.
            let domain = match domain {
                Some(d) => d,
                None => {
                    let contracts: Vec<ContractSummary> =
                        client.get(&["api", "v1", "contracts"], &[]).await?;
                    let domains: Vec<String> = contracts
                        .into_iter()
                        .filter(|c| c.id == id)
                        .map(|c| c.domain)
                        .collect();
                    match domains.as_slice() {
                        [one] => one.clone(),
                        [] => bail!("no contract {id:?} (see `tessera contracts`)"),
                        many => bail!(
                            "contract id {id:?} is used in several domains ({}): say which with --domain",
                            many.join(", ")
                        ),
                    }
                }
            };
            let contract: ContractView = match version {
                Some(v) => {
                    client
                        .get(
                            &["api", "v1", "contracts", &domain, &id, "versions", &v],
                            &[],
                        )
                        .await?
                }
                None => {
                    let mut versions: Vec<ContractView> = client
                        .get(&["api", "v1", "contracts", &domain, &id], &[])
                        .await?;
                    match versions.pop() {
                        Some(latest) => latest,
                        None => bail!("contract {id:?} has no versions"),
                    }
                }
            };
            println!(
                "# {} version {} of domain {} ({}), applied {} from {}",
                contract.id,
                contract.version,
                contract.domain,
                contract.status,
                contract.created_at,
                contract.file_name
            );
            print!("{}", contract.source);
        }
    }
    Ok(())
}
