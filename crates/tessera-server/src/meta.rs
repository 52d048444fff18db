//! `tessera_meta`: the mesh's metadata as read-only tables every session holds — domains,
//! products and their ports, datasets, columns, contracts and SLA properties — what governance
//! policies are written against, and what anyone may query like a dataset.
//!
//! The whole mesh's rows are built once per mesh snapshot and access generation
//! ([`MetaSource`]); each row names the resources that make it discoverable, and a principal's
//! view keeps the rows of which it may discover one (`governance.rs`). Nothing here reads the
//! tables' data.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBuilder, Int64Builder, ListBuilder, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use tessera_catalog::{
    ContractRecord, DatasetRecord, DomainRecord, PolicyStatusRecord, ProductRecord,
};
use tessera_core::{Column, Contract, Product};
use tessera_governance::Resource;
use tessera_query::MetaTable;

use crate::error::{Result, ServiceError};
use crate::governance::product_resource;
use crate::mesh::Mesh;
use crate::policies::{LoadedPolicy, Origin};

/// The rows of every `tessera_meta` table for the whole mesh, each with the resources that make
/// it discoverable (any one of them; none: everyone's, like a global policy).
pub(crate) struct MetaSource {
    tables: Vec<(&'static str, RecordBatch, Vec<Vec<Resource>>)>,
}

impl MetaSource {
    /// The tables as a principal sees them: the rows of which `discovers` allows a resource.
    pub(crate) fn visible(&self, discovers: &dyn Fn(&Resource) -> bool) -> Result<Vec<MetaTable>> {
        let mut out = Vec::with_capacity(self.tables.len());
        for (name, batch, resources) in &self.tables {
            let keep: BooleanArray = resources
                .iter()
                .map(|rs| Some(rs.is_empty() || rs.iter().any(discovers)))
                .collect();
            let rows = arrow::compute::filter_record_batch(batch, &keep).map_err(internal)?;
            out.push(MetaTable::new(name, rows)?);
        }
        Ok(out)
    }
}

/// A value of one cell, as [`Rows::push`] takes it.
enum Cell<'a> {
    Text(Option<&'a str>),
    /// Text made for the cell.
    Owned(Option<String>),
    Bool(bool),
    Int(i64),
    List(&'a [String]),
}

/// Builds one table column by column.
struct Rows {
    name: &'static str,
    fields: Vec<Field>,
    builders: Vec<Builder>,
    resources: Vec<Vec<Resource>>,
}

enum Builder {
    Text(StringBuilder),
    Bool(BooleanBuilder),
    Int(Int64Builder),
    List(ListBuilder<StringBuilder>),
}

impl Rows {
    /// A table of `columns` (name, type: `text`, `bool`, `int` or `list`).
    fn new(name: &'static str, columns: &[(&str, &str)]) -> Self {
        let (fields, builders) = columns
            .iter()
            .map(|(column, kind)| match *kind {
                "bool" => (
                    Field::new(*column, DataType::Boolean, false),
                    Builder::Bool(BooleanBuilder::new()),
                ),
                "int" => (
                    Field::new(*column, DataType::Int64, false),
                    Builder::Int(Int64Builder::new()),
                ),
                "list" => (
                    Field::new(
                        *column,
                        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                        false,
                    ),
                    Builder::List(ListBuilder::new(StringBuilder::new())),
                ),
                _ => (
                    Field::new(*column, DataType::Utf8, true),
                    Builder::Text(StringBuilder::new()),
                ),
            })
            .unzip();
        Self {
            name,
            fields,
            builders,
            resources: Vec::new(),
        }
    }

    /// One row, its cells in column order, discoverable through any of `resources`.
    fn push(&mut self, resources: Vec<Resource>, cells: &[Cell]) {
        debug_assert_eq!(cells.len(), self.builders.len(), "{}", self.name);
        for (builder, cell) in self.builders.iter_mut().zip(cells) {
            match (builder, cell) {
                (Builder::Text(b), Cell::Text(v)) => b.append_option(*v),
                (Builder::Text(b), Cell::Owned(v)) => b.append_option(v.as_deref()),
                (Builder::Bool(b), Cell::Bool(v)) => b.append_value(*v),
                (Builder::Int(b), Cell::Int(v)) => b.append_value(*v),
                (Builder::List(b), Cell::List(items)) => {
                    for item in *items {
                        b.values().append_value(item);
                    }
                    b.append(true);
                }
                _ => unreachable!("cell types follow the table's columns"),
            }
        }
        self.resources.push(resources);
    }

    fn finish(self) -> Result<(&'static str, RecordBatch, Vec<Vec<Resource>>)> {
        let columns: Vec<ArrayRef> = self
            .builders
            .into_iter()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Text(mut b) => Arc::new(b.finish()),
                    Builder::Bool(mut b) => Arc::new(b.finish()),
                    Builder::Int(mut b) => Arc::new(b.finish()),
                    Builder::List(mut b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let batch =
            RecordBatch::try_new(Arc::new(Schema::new(self.fields)), columns).map_err(internal)?;
        Ok((self.name, batch, self.resources))
    }
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(format!("tessera_meta: {e}"))
}

fn text(s: &str) -> Cell<'_> {
    Cell::Text(Some(s))
}

fn maybe(s: &Option<String>) -> Cell<'_> {
    Cell::Text(s.as_deref())
}

fn dataset_resource(domain: &str, product: &str, dataset: &str) -> Resource {
    Resource::Dataset {
        domain: domain.to_string(),
        product: product.to_string(),
        dataset: dataset.to_string(),
    }
}

/// What `tessera_meta` is made of: the mesh's records as stored (or as an apply would leave
/// them, see [`MetaInput::with_product`]), with their models.
pub(crate) struct MetaInput {
    /// The one product whose per-product rows this holds (see [`Mesh::meta_input_scoped`]);
    /// `None`: every product's.
    pub(crate) scope: Option<(String, String)>,
    pub(crate) domains: Vec<DomainRecord>,
    pub(crate) products: Vec<(ProductRecord, Arc<Product>)>,
    pub(crate) datasets: Vec<(DatasetRecord, Arc<Contract>)>,
    pub(crate) contracts: Vec<ContractRecord>,
    pub(crate) policies: Vec<LoadedPolicy>,
    pub(crate) status: Vec<PolicyStatusRecord>,
    pub(crate) glossary: Vec<tessera_core::GlossaryTerm>,
    pub(crate) detections: Vec<tessera_catalog::DetectionRecord>,
}

impl Mesh {
    /// The records `tessera_meta` is built from, as of now.
    pub(crate) async fn meta_input(&self) -> Result<MetaInput> {
        self.meta_input_scoped(None).await
    }

    /// The records of `tessera_meta` for evaluating one product (`scope`, as an apply's gate
    /// does): the directory tables whole (domains, products, ports, contracts, policies,
    /// glossary terms), what belongs to one product — its datasets, columns, SLA properties,
    /// sample queries, support channels, detections and policy results — of that product
    /// only. A mesh of a thousand products is then evaluated on one product's rows. `None`:
    /// the whole mesh.
    pub(crate) async fn meta_input_scoped(&self, scope: Option<(&str, &str)>) -> Result<MetaInput> {
        let mut products = Vec::new();
        for record in self.catalog.products(None).await? {
            let product = self.product_model(&record)?;
            products.push((record, product));
        }
        let mut datasets = Vec::new();
        for record in self.catalog.datasets(scope).await? {
            let contract = self
                .contract_model(
                    &record.domain,
                    &record.contract_id,
                    &record.contract_version,
                )
                .await?;
            datasets.push((record, contract));
        }
        let mut detections = self.catalog.detections().await?;
        if let Some((domain, product)) = scope {
            detections.retain(|d| d.domain == domain && d.product == product);
        }
        Ok(MetaInput {
            scope: scope.map(|(d, p)| (d.to_string(), p.to_string())),
            domains: self.catalog.domains().await?,
            products,
            datasets,
            contracts: self.catalog.contracts().await?,
            policies: self.stored_policies().await?,
            status: self.catalog.policy_status(scope).await?,
            glossary: self
                .glossary_terms()
                .await?
                .into_iter()
                .map(|(_, t)| t)
                .collect(),
            detections,
        })
    }

    /// Every `tessera_meta` row of the mesh as of now.
    pub(crate) async fn build_meta(&self) -> Result<MetaSource> {
        self.meta_input().await?.build()
    }
}

impl MetaInput {
    /// The mesh as it would be once a product folder is applied: the product's descriptor,
    /// datasets and domain policies replaced, its new contract versions added (and its domain,
    /// if new).
    pub(crate) fn with_product(
        mut self,
        record: ProductRecord,
        product: Product,
        datasets: Vec<(DatasetRecord, Arc<Contract>)>,
        contracts: Vec<ContractRecord>,
        policies: Vec<LoadedPolicy>,
    ) -> Self {
        let (domain, name) = (record.domain.clone(), record.name.clone());
        if !self.domains.iter().any(|d| d.name == domain) {
            self.domains.push(DomainRecord {
                name: domain.clone(),
                created_at: record.updated_at.clone(),
                product_count: 1,
            });
        }
        self.products
            .retain(|(r, _)| !(r.domain == domain && r.name == name));
        self.products.push((record, Arc::new(product)));
        self.datasets
            .retain(|(r, _)| !(r.domain == domain && r.product == name));
        self.datasets.extend(datasets);
        for c in contracts {
            if !self.contracts.iter().any(|s| {
                s.domain == c.domain && s.contract_id == c.contract_id && s.version == c.version
            }) {
                self.contracts.push(c);
            }
        }
        self.policies.retain(|p| {
            !matches!(&p.origin, Origin::Domain { domain: d, product: p } if *d == domain && *p == name)
        });
        self.policies.extend(policies);
        self
    }

    /// Every `tessera_meta` row of this input.
    pub(crate) fn build(&self) -> Result<MetaSource> {
        let mut domains = Rows::new("domains", &[("domain", "text"), ("created_at", "text")]);
        for d in &self.domains {
            domains.push(
                vec![Resource::Domain(d.name.clone())],
                &[text(&d.name), text(&d.created_at)],
            );
        }

        let mut products = Rows::new(
            "products",
            &[
                ("domain", "text"),
                ("product", "text"),
                ("product_id", "text"),
                ("version", "text"),
                ("status", "text"),
                ("description", "text"),
                ("owner_team", "text"),
                ("file_name", "text"),
                ("updated_at", "text"),
            ],
        );
        let port_columns = [
            ("domain", "text"),
            ("product", "text"),
            ("port", "text"),
            ("version", "text"),
            ("contract_id", "text"),
        ];
        let mut output_ports = Rows::new(
            "output_ports",
            &[port_columns.as_slice(), &[("description", "text")]].concat(),
        );
        let mut input_ports = Rows::new("input_ports", &port_columns);
        let mut samples = Rows::new(
            "sample_queries",
            &[
                ("domain", "text"),
                ("product", "text"),
                ("port", "text"),
                ("name", "text"),
                ("description", "text"),
                ("sql", "text"),
            ],
        );
        let mut support = Rows::new(
            "support_channels",
            &[
                ("domain", "text"),
                ("product", "text"),
                ("channel", "text"),
                ("url", "text"),
                ("tool", "text"),
            ],
        );
        for (record, product) in &self.products {
            let seen = vec![product_resource(&record.domain, &record.name)];
            let in_scope = self
                .scope
                .as_ref()
                .is_none_or(|(d, p)| *d == record.domain && *p == record.name);
            for s in product.support.iter().filter(|_| in_scope) {
                support.push(
                    seen.clone(),
                    &[
                        text(&record.domain),
                        text(&record.name),
                        text(&s.channel),
                        text(&s.url),
                        maybe(&s.tool),
                    ],
                );
            }
            products.push(
                seen.clone(),
                &[
                    text(&record.domain),
                    text(&record.name),
                    text(&record.product_id),
                    maybe(&record.version),
                    text(&record.status),
                    maybe(&record.description),
                    maybe(&record.owner),
                    text(&record.file_name),
                    text(&record.updated_at),
                ],
            );
            for port in &product.output_ports {
                output_ports.push(
                    seen.clone(),
                    &[
                        text(&record.domain),
                        text(&record.name),
                        text(&port.name),
                        text(&port.version),
                        maybe(&port.contract_id),
                        maybe(&port.description),
                    ],
                );
                for q in port.sample_queries.iter().filter(|_| in_scope) {
                    samples.push(
                        seen.clone(),
                        &[
                            text(&record.domain),
                            text(&record.name),
                            text(&port.name),
                            text(&q.name),
                            maybe(&q.description),
                            text(&q.sql),
                        ],
                    );
                }
            }
            for port in &product.input_ports {
                input_ports.push(
                    seen.clone(),
                    &[
                        text(&record.domain),
                        text(&record.name),
                        text(&port.name),
                        text(&port.version),
                        text(&port.contract_id),
                    ],
                );
            }
        }

        let mut datasets = Rows::new(
            "datasets",
            &[
                ("domain", "text"),
                ("product", "text"),
                ("dataset", "text"),
                ("contract_id", "text"),
                ("contract_version", "text"),
                ("description", "text"),
                ("updated_at", "text"),
            ],
        );
        let mut columns = Rows::new(
            "columns",
            &[
                ("domain", "text"),
                ("product", "text"),
                ("dataset", "text"),
                ("column_name", "text"),
                ("ordinal", "int"),
                ("logical_type", "text"),
                ("physical_type", "text"),
                ("required", "bool"),
                ("is_unique", "bool"),
                ("primary_key", "bool"),
                ("description", "text"),
                ("classification", "text"),
                ("tags", "list"),
                ("personal_data", "bool"),
                ("mask", "text"),
                ("glossary_term", "text"),
            ],
        );
        let mut sla = Rows::new(
            "sla_properties",
            &[
                ("domain", "text"),
                ("product", "text"),
                ("dataset", "text"),
                ("contract_id", "text"),
                ("contract_version", "text"),
                ("property", "text"),
                ("value", "text"),
                ("unit", "text"),
                ("element", "text"),
            ],
        );
        // Each contract version a dataset is governed by, with the datasets that make it
        // discoverable.
        let mut governing: BTreeMap<(String, String, String), Vec<Resource>> = BTreeMap::new();
        for (record, contract) in &self.datasets {
            let seen = dataset_resource(&record.domain, &record.product, &record.name);
            governing
                .entry((
                    record.domain.clone(),
                    record.contract_id.clone(),
                    record.contract_version.clone(),
                ))
                .or_default()
                .push(seen.clone());
            let schema = contract.dataset(&record.name);
            datasets.push(
                vec![seen.clone()],
                &[
                    text(&record.domain),
                    text(&record.product),
                    text(&record.name),
                    text(&record.contract_id),
                    text(&record.contract_version),
                    Cell::Text(schema.and_then(|s| s.description.as_deref())),
                    text(&record.updated_at),
                ],
            );
            for (i, c) in schema.iter().flat_map(|s| s.columns.iter()).enumerate() {
                let c: &Column = c;
                let personal = c.is_personal_data();
                columns.push(
                    vec![seen.clone()],
                    &[
                        text(&record.domain),
                        text(&record.product),
                        text(&record.name),
                        text(&c.name),
                        Cell::Int(i as i64 + 1),
                        Cell::Text(c.logical_type.map(|t| t.as_str())),
                        maybe(&c.physical_type),
                        Cell::Bool(c.required),
                        Cell::Bool(c.unique),
                        Cell::Bool(c.primary_key),
                        maybe(&c.description),
                        maybe(&c.classification),
                        Cell::List(&c.tags),
                        Cell::Bool(personal),
                        Cell::Text(personal.then(|| c.mask().as_str())),
                        Cell::Owned(c.glossary.as_ref().map(ToString::to_string)),
                    ],
                );
            }
            // The SLA properties that apply to this dataset: one row each.
            for p in contract
                .sla
                .iter()
                .filter(|p| schema.is_some_and(|s| sla_applies_to(p, s)))
            {
                let value = match &p.value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                sla.push(
                    vec![seen.clone()],
                    &[
                        text(&record.domain),
                        text(&record.product),
                        text(&record.name),
                        text(&record.contract_id),
                        text(&record.contract_version),
                        text(&p.property),
                        text(&value),
                        maybe(&p.unit),
                        maybe(&p.element),
                    ],
                );
            }
        }
        // Every stored version of a contract: discoverable through the datasets any version
        // governs, or (governing none) through its domain.
        let mut contracts = Rows::new(
            "contracts",
            &[
                ("domain", "text"),
                ("contract_id", "text"),
                ("version", "text"),
                ("status", "text"),
                ("file_name", "text"),
                ("created_at", "text"),
            ],
        );
        let mut by_contract: BTreeMap<(&str, &str), Vec<Resource>> = BTreeMap::new();
        for ((domain, contract_id, _), seen) in &governing {
            by_contract
                .entry((domain, contract_id))
                .or_default()
                .extend(seen.iter().cloned());
        }
        for c in &self.contracts {
            let seen = by_contract
                .get(&(c.domain.as_str(), c.contract_id.as_str()))
                .cloned()
                .unwrap_or_else(|| vec![Resource::Domain(c.domain.clone())]);
            contracts.push(
                seen,
                &[
                    text(&c.domain),
                    text(&c.contract_id),
                    text(&c.version),
                    text(&c.status),
                    text(&c.file_name),
                    text(&c.created_at),
                ],
            );
        }

        Ok(MetaSource {
            tables: vec![
                domains.finish()?,
                products.finish()?,
                output_ports.finish()?,
                input_ports.finish()?,
                samples.finish()?,
                datasets.finish()?,
                columns.finish()?,
                contracts.finish()?,
                sla.finish()?,
                support.finish()?,
                policy_rows(&self.policies)?,
                status_rows(&self.status)?,
                glossary_rows(&self.glossary)?,
                detection_rows(&self.detections)?,
            ],
        })
    }
}

/// Whether an SLA property applies to a dataset of its contract: it names no element, or one
/// of its elements is the dataset, one of its columns, or `dataset.column`.
fn sla_applies_to(p: &tessera_core::SlaProperty, schema: &tessera_core::DatasetSchema) -> bool {
    let parts = p.element_parts();
    let name = schema.name.as_str();
    parts.is_empty()
        || parts.iter().any(|(_, table, rest)| match table {
            Some(t) => *t == name,
            None => *rest == name || schema.column(rest).is_some(),
        })
}

/// `policies`: every policy in force or stored, global ones everyone's to see, a domain's
/// through its domain.
fn policy_rows(
    policies: &[LoadedPolicy],
) -> Result<(&'static str, RecordBatch, Vec<Vec<Resource>>)> {
    let mut rows = Rows::new(
        "policies",
        &[
            ("policy_id", "text"),
            ("origin", "text"),
            ("domain", "text"),
            ("severity", "text"),
            ("enabled", "bool"),
            ("description", "text"),
            ("message", "text"),
            ("extends", "text"),
            ("file_name", "text"),
        ],
    );
    for p in policies {
        let (origin, domain) = match &p.origin {
            Origin::Standard => ("standard", None),
            Origin::Global => ("global", None),
            Origin::Domain { domain, .. } => ("domain", Some(domain.as_str())),
        };
        rows.push(
            domain
                .map(|d| vec![Resource::Domain(d.to_string())])
                .unwrap_or_default(),
            &[
                text(&p.policy.id),
                text(origin),
                Cell::Text(domain),
                text(p.policy.severity.as_str()),
                Cell::Bool(p.enabled),
                text(&p.policy.description),
                maybe(&p.policy.message),
                maybe(&p.policy.extends),
                text(&p.file_name),
            ],
        );
    }
    rows.finish()
}

/// `personal_data_detections`: what ingest found in the values, seen with the dataset.
fn detection_rows(
    detections: &[tessera_catalog::DetectionRecord],
) -> Result<(&'static str, RecordBatch, Vec<Vec<Resource>>)> {
    let mut rows = Rows::new(
        "personal_data_detections",
        &[
            ("domain", "text"),
            ("product", "text"),
            ("dataset", "text"),
            ("column_name", "text"),
            ("detector", "text"),
            ("looks_like", "text"),
            ("matched", "int"),
            ("sampled", "int"),
            ("holds", "bool"),
            ("detected_at", "text"),
        ],
    );
    for d in detections {
        let looks_like = match d.detector.as_str() {
            "email" => "e-mail addresses",
            "phone" => "phone numbers",
            "ip_address" => "IP addresses",
            "payment_card" => "payment card numbers",
            other => other,
        };
        rows.push(
            vec![dataset_resource(&d.domain, &d.product, &d.dataset)],
            &[
                text(&d.domain),
                text(&d.product),
                text(&d.dataset),
                text(&d.column_name),
                text(&d.detector),
                text(looks_like),
                Cell::Int(d.matched),
                Cell::Int(d.sampled),
                Cell::Bool(d.holds()),
                text(&d.detected_at),
            ],
        );
    }
    rows.finish()
}

/// `glossary_terms`: every published version of every term, everyone's to see.
fn glossary_rows(
    terms: &[tessera_core::GlossaryTerm],
) -> Result<(&'static str, RecordBatch, Vec<Vec<Resource>>)> {
    let mut rows = Rows::new(
        "glossary_terms",
        &[
            ("name", "text"),
            ("version", "text"),
            ("reference", "text"),
            ("description", "text"),
            ("logical_type", "text"),
            ("pattern", "text"),
            ("valid_values", "text"),
            ("classification", "text"),
        ],
    );
    for t in terms {
        rows.push(
            Vec::new(),
            &[
                text(&t.name),
                text(&t.version),
                Cell::Owned(Some(t.reference().to_string())),
                text(&t.description),
                text(t.logical_type.as_str()),
                maybe(&t.pattern),
                Cell::Owned(
                    t.valid_values
                        .as_ref()
                        .map(|v| serde_json::Value::Array(v.clone()).to_string()),
                ),
                maybe(&t.classification),
            ],
        );
    }
    rows.finish()
}

/// `policy_results`: where each product stands on each policy, as of the newest evaluation of
/// the mesh as it is.
fn status_rows(
    status: &[PolicyStatusRecord],
) -> Result<(&'static str, RecordBatch, Vec<Vec<Resource>>)> {
    let mut rows = Rows::new(
        "policy_results",
        &[
            ("domain", "text"),
            ("product", "text"),
            ("policy_id", "text"),
            ("severity", "text"),
            ("passing", "bool"),
            ("violations", "int"),
            ("since", "text"),
            ("evaluated_at", "text"),
        ],
    );
    for s in status {
        rows.push(
            vec![product_resource(&s.domain, &s.product)],
            &[
                text(&s.domain),
                text(&s.product),
                text(&s.policy_id),
                text(&s.severity),
                Cell::Bool(s.violations == 0),
                Cell::Int(s.violations),
                text(&s.since),
                text(&s.evaluated_at),
            ],
        );
    }
    rows.finish()
}
