//! `apply`: a product folder (one ODPS descriptor, the ODCS contracts of its output ports) made
//! true in the mesh. The plan compares the files with what is stored; applying it creates the
//! Delta tables first and then writes all metadata in one transaction, so a dataset in the
//! catalog always has its table, and applying the same files again changes nothing.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use tessera_catalog::{
    ContractRecord, DatasetRecord, MetadataChange, PolicyEvaluationRecord, ProductRecord,
};
use tessera_core::{
    Contract, DatasetRef, DatasetSchema, GovernancePolicy, Product, RequestContext,
};
use tessera_governance::Resource;
use tessera_spec::{Diagnostic, Loaded, SpecDocument, diff_contracts, major_version};

use crate::error::{Result, ServiceError};
use crate::mesh::{Mesh, owner_principal};
use crate::policies::LoadedPolicy;
use crate::service::PublishService;
use crate::views::*;

/// A contract from the folder, with the file it came from.
struct ContractFile<'a> {
    file: &'a SourceFile,
    contract: Contract,
}

/// A dataset the product will publish, and the contract version that governs it.
struct PlannedDataset {
    reference: DatasetRef,
    schema: DatasetSchema,
    contract_id: String,
    contract_version: String,
    description: Option<String>,
    /// The contract version that governs it (from the folder, or as published).
    contract: std::sync::Arc<Contract>,
}

impl Mesh {
    /// Publishing a product needs `publish` on it when it exists, on its domain when it is new
    /// (the domain's owner teams and admins; a new domain, admins only).
    ///
    /// A product's `sql` rules and checks run with its owner team's rights, so the owner it
    /// declares must be the publisher's to give: naming a team (new, or changed) needs
    /// membership of it, and a product without an owner team needs an admin.
    async fn authorize_publish(&self, cx: &RequestContext, product: &Product) -> Result<()> {
        let (domain, name) = (product.domain.as_str(), product.name.as_str());
        let stored = self.catalog.product(domain, name).await?;
        let resource = match &stored {
            Some(_) => Resource::Product {
                domain: domain.to_string(),
                product: name.to_string(),
            },
            None => Resource::Domain(domain.to_string()),
        };
        self.authorize(cx, tessera_governance::Action::Publish, &resource)
            .await?;
        let owner_changes = stored.as_ref().is_none_or(|s| s.owner != product.owner);
        let own_team = match &product.owner {
            Some(team) => cx.principal.teams.contains(team),
            None => false,
        };
        if owner_changes && !own_team && !self.administers(cx).await? {
            return Err(ServiceError::Forbidden(match &product.owner {
                Some(team) => format!(
                    "{} may not make team {team:?} the owner of product {domain}.{name}: its rules and checks run with the owner team's rights, so only its members (or an admin) name it",
                    cx.principal
                ),
                None => format!(
                    "{} may not publish product {domain}.{name} without an owner team (team.name): only an admin may",
                    cx.principal
                ),
            }));
        }
        Ok(())
    }
}

#[async_trait]
impl PublishService for Mesh {
    /// Computes the plan for a product folder and, unless `dry_run`, applies it.
    async fn apply(&self, cx: &RequestContext, request: &ApplyRequest) -> Result<ApplyPlan> {
        Ok(self.apply_with(cx, request, None).await?.0)
    }
}

impl Mesh {
    /// [`PublishService::apply`]; with `under_test`, a dry run that evaluates that one policy
    /// alone (`policy test`), whoever asks, and answers its violations instead of refusing.
    pub(crate) async fn apply_with(
        &self,
        cx: &RequestContext,
        request: &ApplyRequest,
        under_test: Option<&LoadedPolicy>,
    ) -> Result<(ApplyPlan, PolicyEvaluationRecord)> {
        let _one_at_a_time = self.apply_lock.lock().await;
        // Read on the query runtime, whose threads have the stack for deeply nested rules.
        let folder = {
            let (files, limits) = (request.files.clone(), self.contract_limits);
            self.offload_work(async move { load_folder(&files, &limits) })
                .await??
        };
        let product_file = &request.files[folder.product_file];
        let folder_policies: Vec<(&SourceFile, GovernancePolicy)> = folder
            .policies
            .into_iter()
            .map(|(i, p)| (&request.files[i], p))
            .collect();
        let product = folder.product;
        let mut contracts: Vec<ContractFile> = folder
            .contracts
            .into_iter()
            .map(|(i, contract)| ContractFile {
                file: &request.files[i],
                contract,
            })
            .collect();
        own_domain(&product, &contracts)?;
        if under_test.is_none() {
            self.authorize_publish(cx, &product).await?;
        }
        // Columns that reference glossary terms: a published version, a compatible type, no
        // looser rule; then the terms' rules are the columns' own for everything below.
        let glossary_problems = {
            let mut files: Vec<(&SourceFile, &mut Contract)> = contracts
                .iter_mut()
                .map(|c| (c.file, &mut c.contract))
                .collect();
            self.check_glossary_references(&mut files).await?
        };
        if !glossary_problems.is_empty() {
            return Err(ServiceError::InvalidFiles(glossary_problems));
        }
        let datasets = self
            .planned_datasets(product_file, &product, &contracts)
            .await?;

        // The rules run with the rights of the product's owner team: planned with them too,
        // and so are the sample queries, which read what the team's products read.
        let owner = cx.acting_as(owner_principal(product.owner.clone()));
        self.plan_queries(&owner, product_file, &contracts, &datasets)
            .await?;

        let product_name = format!("{}.{}", product.domain, product.name);
        let mut changes = Vec::new();
        let mut metadata = MetadataChange::default();

        // The product descriptor.
        if let Some(other) = self
            .catalog
            .product_by_id(product.domain.as_str(), &product.id)
            .await?
            && other.name != product.name.as_str()
        {
            return Err(ServiceError::Conflict(format!(
                "{}: product id {:?} is already used by {}.{}; product ids are unique within a domain",
                product_file.name, product.id, other.domain, other.name
            )));
        }
        let stored = self
            .catalog
            .product(product.domain.as_str(), product.name.as_str())
            .await?;
        let action = match &stored {
            None => Action::Create,
            Some(s) if s.source == product_file.content && s.file_name == product_file.name => {
                Action::Unchanged
            }
            Some(_) => Action::Change,
        };
        let product_record = ProductRecord {
            domain: product.domain.to_string(),
            name: product.name.to_string(),
            product_id: product.id.clone(),
            version: product.version.clone(),
            status: product.status.clone(),
            description: product.description.clone(),
            owner: product.owner.clone(),
            file_name: product_file.name.clone(),
            source: product_file.content.clone(),
            created_at: stored
                .as_ref()
                .map(|s| s.created_at.clone())
                .unwrap_or_default(),
            updated_at: stored
                .as_ref()
                .map(|s| s.updated_at.clone())
                .unwrap_or_default(),
        };
        changes.push(PlannedChange {
            kind: ResourceKind::Product,
            name: product_name.clone(),
            action,
            detail: (action == Action::Change).then(|| "descriptor changed".to_string()),
        });
        if action != Action::Unchanged {
            metadata.product = Some(product_record.clone());
        }

        // Contract versions, scoped to the product's domain: new ones are stored; a stored
        // version never changes.
        let domain = product.domain.as_str();
        let mut impact = Vec::new();
        for c in &contracts {
            let id = &c.contract.id;
            let version = &c.contract.version;
            let action = match self.catalog.contract(domain, id, version).await? {
                None => Action::Create,
                Some(s) if s.source == c.file.content => Action::Unchanged,
                Some(s) => {
                    return Err(ServiceError::Conflict(format!(
                        "{}: contract {id:?} version {version} is already published with different content (from {}); a published version never changes: raise `version`",
                        c.file.name, s.file_name
                    )));
                }
            };
            let mut detail = None;
            if action == Action::Create
                && let Some(previous) = self.catalog.contract_versions(domain, id).await?.pop()
            {
                let mut breaking = breaking_changes(&previous.source, &previous.file_name, c.file)?;
                let before = tessera_spec::load_contract(&previous.file_name, &previous.source)?;
                breaking.extend(crate::glossary::glossary_breaking(
                    &before,
                    &c.contract,
                    &self.glossary_terms().await?,
                ));
                let major_bump = match (major_version(&previous.version), major_version(version)) {
                    (Some(old), Some(new)) => new > old,
                    _ => false,
                };
                let hit = if breaking.is_empty() {
                    Vec::new()
                } else {
                    self.impact_of(&product, id).await?
                };
                if !breaking.is_empty() && !major_bump {
                    return Err(ServiceError::Conflict(format!(
                        "{}: contract {id:?} {} -> {version} has breaking changes, which need a new major version (e.g. {}):\n  - {}{}",
                        c.file.name,
                        previous.version,
                        next_major(&previous.version),
                        breaking.join("\n  - "),
                        render_impact(&hit)
                    )));
                }
                impact.extend(hit);
                detail = Some(format!(
                    "new version of {}{}",
                    previous.version,
                    if breaking.is_empty() {
                        String::new()
                    } else {
                        format!(", breaking: {}", breaking.join("; "))
                    }
                ));
            }
            changes.push(PlannedChange {
                kind: ResourceKind::Contract,
                name: format!("{id}@{version}"),
                action,
                detail,
            });
            if action == Action::Create {
                metadata.contracts.push(ContractRecord {
                    domain: domain.to_string(),
                    contract_id: id.clone(),
                    version: version.clone(),
                    status: c.contract.status.clone(),
                    file_name: c.file.name.clone(),
                    source: c.file.content.clone(),
                    created_at: String::new(),
                });
            }
        }

        // Datasets: created, or moved to a new contract version whose schema the table can take.
        let stored_datasets: BTreeMap<String, DatasetRecord> = self
            .catalog
            .datasets(Some((product.domain.as_str(), product.name.as_str())))
            .await?
            .into_iter()
            .map(|d| (d.name.clone(), d))
            .collect();
        let planned_names: HashSet<&str> = datasets
            .iter()
            .map(|d| d.reference.dataset.as_str())
            .collect();
        let dropped: Vec<&String> = stored_datasets
            .keys()
            .filter(|name| !planned_names.contains(name.as_str()))
            .collect();
        if !dropped.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "{}: dataset(s) {} of {product_name} are no longer in its contracts; removing a dataset is not supported (its data and consumers would be lost)",
                product_file.name,
                dropped
                    .iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut to_create = Vec::new();
        for d in &datasets {
            let name = d.reference.dataset.to_string();
            let (action, detail) = match stored_datasets.get(&name) {
                None => (Action::Create, None),
                Some(s)
                    if s.contract_id == d.contract_id
                        && s.contract_version == d.contract_version =>
                {
                    (Action::Unchanged, None)
                }
                Some(s) => {
                    let old = self
                        .contract_model(&s.domain, &s.contract_id, &s.contract_version)
                        .await?;
                    let detail = schema_evolution(&d.reference, old.dataset(&name), &d.schema)?;
                    (
                        Action::Change,
                        Some(format!(
                            "contract {}@{} -> {}@{}{detail}",
                            s.contract_id, s.contract_version, d.contract_id, d.contract_version
                        )),
                    )
                }
            };
            changes.push(PlannedChange {
                kind: ResourceKind::Dataset,
                name: d.reference.to_string(),
                action,
                detail,
            });
            if action != Action::Unchanged {
                to_create.push(d);
                metadata.datasets.push(DatasetRecord {
                    domain: d.reference.domain.to_string(),
                    product: d.reference.product.to_string(),
                    name: name.clone(),
                    contract_id: d.contract_id.clone(),
                    contract_version: d.contract_version.clone(),
                    location: d.reference.relative_path(),
                    created_at: String::new(),
                    updated_at: String::new(),
                });
            }
        }

        // The folder's domain policies: checked against the global ones, then planned.
        let domain_policies = self
            .plan_domain_policies(&product, &folder_policies, &mut changes)
            .await?;
        if let Some(records) = &domain_policies.records {
            metadata.product_policies = Some((
                product.domain.to_string(),
                product.name.to_string(),
                records.clone(),
            ));
        }

        // The folder's sources: their datasets, connectors' options and secrets checked.
        let folder_sources: Vec<(&SourceFile, tessera_core::SourceSpec)> = folder
            .sources
            .iter()
            .map(|(i, s)| (&request.files[*i], s.clone()))
            .collect();
        if let Some(records) = self
            .plan_sources(
                &product,
                &folder_sources,
                &datasets_columns(&datasets),
                &mut changes,
            )
            .await?
        {
            metadata.product_sources = Some((
                product.domain.to_string(),
                product.name.to_string(),
                records,
            ));
        }

        // The folder's transforms: each computes one of its datasets from what it may read,
        // and no loop closes through the mesh's transforms.
        let folder_transforms: Vec<(&SourceFile, tessera_core::TransformSpec)> = folder
            .transforms
            .iter()
            .map(|(i, t)| (&request.files[*i], t.clone()))
            .collect();
        let sourced: Vec<(String, String)> = folder
            .sources
            .iter()
            .map(|(_, s)| (s.name.clone(), s.dataset.clone()))
            .collect();
        let dataset_schemas: Vec<&tessera_core::DatasetSchema> =
            datasets.iter().map(|d| &d.schema).collect();
        if let Some(records) = self
            .plan_transforms(
                &product,
                &folder_transforms,
                &dataset_schemas,
                &sourced,
                &mut changes,
            )
            .await?
        {
            metadata.product_transforms = Some((
                product.domain.to_string(),
                product.name.to_string(),
                records,
            ));
        }

        // The governance gate: every policy that applies, on the mesh as it would be after.
        let planned_datasets: Vec<(DatasetRecord, std::sync::Arc<Contract>)> = datasets
            .iter()
            .map(|d| {
                let stored = stored_datasets.get(d.reference.dataset.as_str());
                (
                    DatasetRecord {
                        domain: d.reference.domain.to_string(),
                        product: d.reference.product.to_string(),
                        name: d.reference.dataset.to_string(),
                        contract_id: d.contract_id.clone(),
                        contract_version: d.contract_version.clone(),
                        location: d.reference.relative_path(),
                        created_at: stored.map(|s| s.created_at.clone()).unwrap_or_default(),
                        updated_at: stored.map(|s| s.updated_at.clone()).unwrap_or_default(),
                    },
                    d.contract.clone(),
                )
            })
            .collect();
        // Evaluated on the product's own rows (and the mesh's directory), not the whole mesh's.
        let started = std::time::Instant::now();
        let input = self
            .meta_input_scoped(Some((product.domain.as_str(), product.name.as_str())))
            .await?
            .with_product(
                product_record,
                product.clone(),
                planned_datasets,
                metadata.contracts.clone(),
                domain_policies.loaded,
            );
        let meta = self.offload_work(async move {
            let meta = input.build();
            (input, meta)
        });
        let (input, meta) = meta.await?;
        let meta = meta?;
        let problems = self
            .check_policy_queries(
                cx,
                &meta,
                &folder_policies
                    .iter()
                    .map(|(f, p)| (*f, p))
                    .collect::<Vec<_>>(),
            )
            .await?;
        if !problems.is_empty() {
            return Err(ServiceError::InvalidFiles(problems));
        }
        let target = (product.domain.to_string(), product.name.to_string());
        let evaluated: Vec<LoadedPolicy> = match under_test {
            Some(p) => vec![p.clone()],
            None => input.policies.clone(),
        };
        let mut evaluation = self
            .evaluate_policies(cx, &evaluated, &meta, std::slice::from_ref(&target))
            .await?;
        evaluation.duration = started.elapsed();
        let contract_files: Vec<(&str, &str)> = contracts
            .iter()
            .map(|c| (c.file.name.as_str(), c.file.content.as_str()))
            .collect();
        let locator = crate::policies::Locator::new(
            (&product_file.name, &product_file.content),
            &contract_files,
        )?;
        Mesh::locate_violations(
            &mut evaluation,
            &std::collections::HashMap::from([(target, locator)]),
        );

        let dry_run = request.dry_run || under_test.is_some();
        let refused = evaluation.blocking() > 0;
        let mut plan = ApplyPlan {
            product: product_name.clone(),
            applied: !dry_run && !refused,
            changes,
            policies: Some(evaluation.view()),
            impact,
        };
        let trigger = match (under_test, dry_run) {
            (Some(_), _) => "test",
            (None, true) => "plan",
            (None, false) => "apply",
        };
        // Every evaluation is kept; a refused, dry-run or test one does not say where the
        // product stands, since the mesh is not as it evaluated.
        let record = evaluation.record(cx, &product_name, trigger);
        if refused || dry_run {
            self.catalog
                .record_policy_evaluation(&record, false)
                .await?;
            if refused && !dry_run {
                plan.applied = false;
                return Err(ServiceError::PolicyViolations(Box::new(plan)));
            }
            return Ok((plan, record));
        }
        if plan.is_noop() {
            self.catalog.record_policy_evaluation(&record, true).await?;
            return Ok((plan, record));
        }
        // Tables first, metadata second: a crash in between leaves tables nobody references
        // yet, which the next apply adopts.
        for d in to_create {
            let schema = d
                .schema
                .arrow_schema()
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            self.storage
                .ensure_table(
                    &d.reference.relative_path(),
                    &schema,
                    d.reference.dataset.as_str(),
                    d.description.as_deref(),
                )
                .await?;
            let quarantine = d.reference.quarantine();
            self.storage
                .ensure_table(
                    &quarantine.relative_path(),
                    &d.schema.quarantine_arrow_schema(),
                    quarantine.dataset.as_str(),
                    Some("rows refused by the contract, with the rule and the reason"),
                )
                .await?;
        }
        self.catalog
            .apply(&metadata, &cx.principal.to_string())
            .await?;
        self.catalog.record_policy_evaluation(&record, true).await?;
        Ok((plan, record))
    }
}

impl Mesh {
    /// Plans every `sql` rule of the folder's contracts and every sample query of its
    /// descriptor against the mesh as it will be after this apply, so that a query that cannot
    /// run (an unknown table or column, a type error, a statement too deep) is refused now, at
    /// its file, line and field, and not found failing at every commit and scheduled run, or
    /// by the first consumer who tries it.
    async fn plan_queries(
        &self,
        cx: &RequestContext,
        product_file: &SourceFile,
        contracts: &[ContractFile<'_>],
        datasets: &[PlannedDataset],
    ) -> Result<()> {
        let mut rules = Vec::new();
        let descriptor = SpecDocument::parse(&product_file.name, &product_file.content)?;
        for site in tessera_spec::sample_queries(&descriptor) {
            rules.push((
                descriptor.diagnostic(&site.pointer, String::new()),
                site.query.sql,
                "the sample query",
            ));
        }
        for c in contracts {
            let doc = SpecDocument::parse(&c.file.name, &c.file.content)?;
            for site in tessera_spec::sql_rules(&doc) {
                let Some(d) = datasets.iter().find(|d| {
                    d.contract_id == c.contract.id && d.reference.dataset.as_str() == site.dataset
                }) else {
                    continue;
                };
                let sql = tessera_quality::substitute(
                    &site.query,
                    &d.reference.to_string(),
                    site.column.as_deref(),
                );
                rules.push((
                    doc.diagnostic(&site.pointer, String::new()),
                    sql,
                    "the sql rule",
                ));
            }
        }
        if rules.is_empty() {
            return Ok(());
        }
        // The mesh as the owner team sees it, plus the folder's own datasets.
        let mut snapshot = (*self.snapshot_for(cx).await?).clone();
        for d in datasets {
            let schema = d
                .schema
                .arrow_schema()
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            snapshot.tables.retain(|t| t.reference != d.reference);
            snapshot.tables.push(tessera_query::DatasetEntry {
                reference: d.reference.clone(),
                location: d.reference.relative_path(),
                schema,
                // The owner team's own datasets: read in full, as the rules will.
                access: tessera_query::TableAccess::Read,
                personal: Vec::new(),
                row_filter: None,
            });
        }
        let ctx = self.engine().session(&snapshot, cx)?;
        let session = ctx.clone();
        let problems = self
            .engine()
            .run(&session, async move {
                let mut problems = Vec::new();
                for (mut diagnostic, sql, what) in rules {
                    if let Err(e) = tessera_query::plan_sql(&ctx, &sql).await {
                        diagnostic.message = format!("{what} cannot run: {e}");
                        problems.push(diagnostic);
                    }
                }
                Ok(problems)
            })
            .await?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::InvalidFiles(problems))
        }
    }

    /// Resolves every output port to its contract (from the folder, or already published) and
    /// lists the datasets the product will have.
    async fn planned_datasets(
        &self,
        product_file: &SourceFile,
        product: &Product,
        contracts: &[ContractFile<'_>],
    ) -> Result<Vec<PlannedDataset>> {
        let descriptor = SpecDocument::parse(&product_file.name, &product_file.content)?;
        let mut problems = Vec::new();
        let mut referenced = HashSet::new();
        let mut datasets: Vec<PlannedDataset> = Vec::new();
        for (i, port) in product.output_ports.iter().enumerate() {
            let Some(contract_id) = &port.contract_id else {
                continue;
            };
            referenced.insert(contract_id.clone());
            let contract: std::sync::Arc<Contract> = match contracts
                .iter()
                .find(|c| &c.contract.id == contract_id)
            {
                Some(c) => std::sync::Arc::new(c.contract.clone()),
                None => match self
                    .catalog
                    .contract_versions(product.domain.as_str(), contract_id)
                    .await?
                    .last()
                {
                    Some(latest) => {
                        self.contract_model(product.domain.as_str(), contract_id, &latest.version)
                            .await?
                    }
                    None => {
                        problems.push(descriptor.diagnostic(
                                &format!("/outputPorts/{i}/contractId"),
                                format!("output port {:?} references contract {contract_id:?}, which is neither in this folder nor published in domain {}", port.name, product.domain),
                            ));
                        continue;
                    }
                },
            };
            for schema in &contract.datasets {
                let reference = DatasetRef::new(
                    product.domain.clone(),
                    product.name.clone(),
                    schema.name.clone(),
                );
                if let Some(other) = datasets.iter().find(|d| d.reference == reference) {
                    problems.push(descriptor.diagnostic(
                        &format!("/outputPorts/{i}/contractId"),
                        format!(
                            "dataset {reference} is defined by both contract {:?} and contract {contract_id:?}",
                            other.contract_id
                        ),
                    ));
                    continue;
                }
                datasets.push(PlannedDataset {
                    reference,
                    description: schema.description.clone(),
                    schema: schema.clone(),
                    contract_id: contract.id.clone(),
                    contract_version: contract.version.clone(),
                    contract: contract.clone(),
                });
            }
        }
        for c in contracts {
            if !referenced.contains(&c.contract.id) {
                problems.push(Diagnostic {
                    file: c.file.name.clone(),
                    line: Some(1),
                    field: "id".into(),
                    message: format!(
                        "no output port of {}.{} references contract {:?}: add an outputPort with `contractId: {}` to {}",
                        product.domain, product.name, c.contract.id, c.contract.id, product_file.name
                    ),
                });
            }
        }
        if problems.is_empty() {
            Ok(datasets)
        } else {
            Err(ServiceError::InvalidFiles(problems))
        }
    }
}

/// A folder's files read: which file is the product descriptor, the product, and each contract
/// with the index of its file.
struct LoadedFolder {
    product_file: usize,
    product: Product,
    contracts: Vec<(usize, Contract)>,
    /// The domain policies it holds (`policies/*.yaml`).
    policies: Vec<(usize, GovernancePolicy)>,
    /// The sources its datasets pull from (`sources/*.yaml`).
    sources: Vec<(usize, tessera_core::SourceSpec)>,
    /// The transforms that compute its datasets (`transforms/<dataset>.sql`).
    transforms: Vec<(usize, tessera_core::TransformSpec)>,
}

/// Loads every file of a folder; all problems of all files are reported together.
fn load_folder(files: &[SourceFile], limits: &tessera_spec::FileLimits) -> Result<LoadedFolder> {
    if files.is_empty() {
        return Err(ServiceError::BadRequest(
            "no files: a product folder holds one product descriptor (*.odps.yaml) and the contracts (*.odcs.yaml) of its output ports".into(),
        ));
    }
    let mut problems: Vec<Diagnostic> = Vec::new();
    let mut products = Vec::new();
    let mut contracts: Vec<(usize, Contract)> = Vec::new();
    let mut policies: Vec<(usize, GovernancePolicy)> = Vec::new();
    let mut sources: Vec<(usize, tessera_core::SourceSpec)> = Vec::new();
    let mut transforms: Vec<(usize, tessera_core::TransformSpec)> = Vec::new();
    for (i, file) in files.iter().enumerate() {
        if file.name.ends_with(".sql") {
            let read = limits
                .check_size(&file.name, &file.content)
                .and_then(|()| tessera_spec::transform_from_file(&file.name, &file.content));
            match read {
                Ok(t) => match transforms.iter().find(|(_, u)| u.dataset == t.dataset) {
                    Some((first, _)) => problems.push(Diagnostic {
                        file: file.name.clone(),
                        line: None,
                        field: String::new(),
                        message: format!(
                            "dataset {} is also computed by {}; a dataset has one transform",
                            t.dataset, files[*first].name
                        ),
                    }),
                    None => transforms.push((i, t)),
                },
                Err(e) => problems.extend(e.diagnostics().iter().cloned()),
            }
            continue;
        }
        match tessera_spec::load_with(&file.name, &file.content, limits) {
            Ok(Loaded::Source(source)) => {
                if let Some((first, _)) = sources.iter().find(|(_, s)| s.name == source.name) {
                    problems.push(Diagnostic {
                        file: file.name.clone(),
                        line: Some(1),
                        field: "name".into(),
                        message: format!(
                            "source name {:?} is also used by {}; each source of a product needs its own name",
                            source.name, files[*first].name
                        ),
                    });
                } else {
                    sources.push((i, source));
                }
            }
            Ok(Loaded::Product(p)) => products.push((i, p)),
            Ok(Loaded::Policy(p)) => {
                if let Some((first, _)) = policies.iter().find(|(_, q)| q.id == p.id) {
                    problems.push(Diagnostic {
                        file: file.name.clone(),
                        line: Some(1),
                        field: "id".into(),
                        message: format!(
                            "policy id {:?} is also used by {}; each policy file needs its own id",
                            p.id, files[*first].name
                        ),
                    });
                } else {
                    policies.push((i, p));
                }
            }
            Ok(Loaded::Contract(contract)) => {
                if let Some((first, _)) = contracts.iter().find(|(_, c)| c.id == contract.id) {
                    problems.push(Diagnostic {
                        file: file.name.clone(),
                        line: Some(1),
                        field: "id".into(),
                        message: format!(
                            "contract id {:?} is also used by {}; each contract file needs its own id",
                            contract.id, files[*first].name
                        ),
                    });
                } else {
                    contracts.push((i, contract));
                }
            }
            Ok(Loaded::GlossaryTerm(t)) => problems.push(Diagnostic {
                file: file.name.clone(),
                line: Some(1),
                field: "kind".into(),
                message: format!(
                    "glossary term {} is the governance council's, applied with `tessera glossary apply`, not with a product",
                    t.reference()
                ),
            }),
            Err(e) => problems.extend(e.diagnostics().iter().cloned()),
        }
    }
    if !problems.is_empty() {
        return Err(ServiceError::InvalidFiles(problems));
    }
    match products.len() {
        1 => {
            let (product_file, product) = products.remove(0);
            Ok(LoadedFolder {
                product_file,
                product,
                contracts,
                policies,
                sources,
                transforms,
            })
        }
        0 => Err(ServiceError::BadRequest(
            "no product descriptor: a product folder needs one ODPS file (kind: DataProduct)"
                .into(),
        )),
        _ => Err(ServiceError::BadRequest(format!(
            "more than one product descriptor ({}): a product folder has exactly one",
            products
                .iter()
                .map(|(i, _)| files[*i].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Each planned dataset's name and its contract's columns.
fn datasets_columns(datasets: &[PlannedDataset]) -> Vec<(String, Vec<String>)> {
    datasets
        .iter()
        .map(|d| {
            (
                d.reference.dataset.to_string(),
                d.schema
                    .columns
                    .iter()
                    .map(|c| c.name.to_string())
                    .collect(),
            )
        })
        .collect()
}

/// A product publishes only contracts of its own domain: a contract's `domain`, when it states
/// one, must be the product's (a contract without one takes the product's).
fn own_domain(product: &Product, contracts: &[ContractFile<'_>]) -> Result<()> {
    let mut problems = Vec::new();
    for c in contracts {
        if let Some(stated) = &c.contract.domain
            && stated != product.domain.as_str()
        {
            let doc = SpecDocument::parse(&c.file.name, &c.file.content)?;
            problems.push(doc.diagnostic(
                "/domain",
                format!(
                    "contract {:?} belongs to domain {stated:?}, but product {}.{} is in domain {}: a product publishes only contracts of its own domain (contracts are scoped to their domain; the same id in another domain is another contract)",
                    c.contract.id, product.domain, product.name, product.domain
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::InvalidFiles(problems))
    }
}

/// What a new contract version does to a stored table: columns may be added; removing a column
/// or changing its type would need the stored data rewritten, so it is refused.
fn schema_evolution(
    reference: &DatasetRef,
    old: Option<&DatasetSchema>,
    new: &DatasetSchema,
) -> Result<String> {
    let Some(old) = old else {
        return Ok(String::new());
    };
    let internal = |e: tessera_core::CoreError| ServiceError::Internal(e.to_string());
    let (old_schema, new_schema) = (
        old.arrow_schema().map_err(internal)?,
        new.arrow_schema().map_err(internal)?,
    );
    let mut problems = Vec::new();
    for field in old_schema.fields() {
        match new_schema.field_with_name(field.name()) {
            Err(_) => problems.push(format!("column {:?} is removed", field.name())),
            Ok(f) if f.data_type() != field.data_type() => problems.push(format!(
                "column {:?} changes type from {} to {}",
                field.name(),
                field.data_type(),
                f.data_type()
            )),
            Ok(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(ServiceError::Conflict(format!(
            "dataset {reference}: {}; the stored table cannot take that without rewriting its data",
            problems.join("; ")
        )));
    }
    let added: Vec<&str> = new_schema
        .fields()
        .iter()
        .filter(|f| old_schema.field_with_name(f.name()).is_err())
        .map(|f| f.name().as_str())
        .collect();
    Ok(if added.is_empty() {
        String::new()
    } else {
        format!(", adds column(s) {}", added.join(", "))
    })
}

/// The downstream datasets a breaking change hits, as a message's last lines.
fn render_impact(hit: &[ImpactView]) -> String {
    if hit.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = hit
        .iter()
        .map(|h| {
            format!(
                "{} (product {}, owner team {}), computed from {}",
                h.dataset,
                h.product,
                h.owner.as_deref().unwrap_or("none"),
                h.changed
            )
        })
        .collect();
    format!(
        "\nDownstream datasets it would hit:\n  - {}",
        lines.join("\n  - ")
    )
}

impl Mesh {
    /// The datasets downstream of the product's datasets governed by `contract_id`, with their
    /// products' owner teams.
    async fn impact_of(&self, product: &Product, contract_id: &str) -> Result<Vec<ImpactView>> {
        let changed: Vec<String> = self
            .catalog
            .datasets(Some((product.domain.as_str(), product.name.as_str())))
            .await?
            .into_iter()
            .filter(|d| d.contract_id == contract_id)
            .map(|d| format!("{}.{}.{}", d.domain, d.product, d.name))
            .collect();
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        let graph = self.lineage_graph().await?;
        let products = self.catalog.products(None).await?;
        let mut hit: Vec<ImpactView> = Vec::new();
        for dataset in &changed {
            for downstream in graph.downstream_datasets(dataset) {
                if hit.iter().any(|h| h.dataset == downstream) {
                    continue;
                }
                let Ok(reference) = downstream.parse::<DatasetRef>() else {
                    continue;
                };
                let owner = products
                    .iter()
                    .find(|p| {
                        p.domain == reference.domain.as_str()
                            && p.name == reference.product.as_str()
                    })
                    .and_then(|p| p.owner.clone());
                hit.push(ImpactView {
                    product: format!("{}.{}", reference.domain, reference.product),
                    dataset: downstream,
                    owner,
                    changed: dataset.clone(),
                });
            }
        }
        Ok(hit)
    }
}

/// The breaking changes (see `tessera_spec::diff_contracts`) from a stored contract version to
/// the one in a folder.
fn breaking_changes(old_source: &str, old_file: &str, new: &SourceFile) -> Result<Vec<String>> {
    let old = SpecDocument::parse(old_file, old_source)?;
    let new = SpecDocument::parse(&new.name, &new.content)?;
    Ok(diff_contracts(&old.value, &new.value)
        .into_iter()
        .filter_map(|c| c.breaking)
        .collect())
}

/// `1.4.2` -> `2.0.0`; a version that is not semantic gets a hint instead.
fn next_major(version: &str) -> String {
    match major_version(version) {
        Some(major) => format!("{}.0.0", major + 1),
        None => "a semantic version MAJOR.MINOR.PATCH".into(),
    }
}
