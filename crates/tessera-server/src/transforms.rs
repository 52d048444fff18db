//! Transforms at apply: a product folder's `transforms/<dataset>.sql` files checked against the
//! product and the mesh — each computes one of the product's own datasets, reads only its
//! input ports' datasets and its own, closes no loop with the mesh's other transforms, and
//! (planned against the mesh) gives a result its dataset's contract can take — then planned
//! and stored with the product.

use std::collections::BTreeSet;

use tessera_catalog::TransformRecord;
use tessera_core::{
    DatasetRef, DatasetSchema, FrontEnd, Materialization, Name, Product, RequestContext,
    TransformGraph, TransformSpec,
};
use tessera_spec::Diagnostic;

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;
use crate::views::{Action as PlanAction, PlannedChange, ResourceKind, SourceFile};

/// The 1-based line of the first line of `text` that holds `needle` (case-insensitively).
fn line_of(text: &str, needle: &str) -> Option<usize> {
    let needle = needle.to_ascii_lowercase();
    text.lines()
        .position(|l| l.to_ascii_lowercase().contains(&needle))
        .map(|i| i + 1)
}

impl Mesh {
    /// Checks a folder's transforms and plans them; `Some` records when they differ from the
    /// stored ones (the apply replaces those). `datasets` are the product's datasets as planned
    /// and `sourced` those a source of the folder fills.
    pub(crate) async fn plan_transforms(
        &self,
        product: &Product,
        files: &[(&SourceFile, TransformSpec)],
        datasets: &[&DatasetSchema],
        sourced: &[(String, String)],
        changes: &mut Vec<PlannedChange>,
    ) -> Result<Option<Vec<TransformRecord>>> {
        let (domain, name) = (product.domain.as_str(), product.name.as_str());
        // A folder without transforms has nothing to check: only what it held is looked up.
        let stored = if files.is_empty() {
            self.catalog.transforms(Some((domain, name))).await?
        } else {
            self.check_transforms(product, files, datasets, sourced)
                .await?
        };
        let stored: Vec<&TransformRecord> = stored
            .iter()
            .filter(|t| t.domain == domain && t.product == name)
            .collect();
        let mut changed = false;
        for (file, spec) in files {
            let action = match stored.iter().find(|t| t.dataset == spec.dataset.as_str()) {
                None => PlanAction::Create,
                Some(t) if t.source == file.content && t.file_name == file.name => {
                    PlanAction::Unchanged
                }
                Some(_) => PlanAction::Change,
            };
            changed |= action != PlanAction::Unchanged;
            let inputs: Vec<String> = spec.inputs.iter().map(|i| i.to_string()).collect();
            changes.push(PlannedChange {
                kind: ResourceKind::Transform,
                name: spec.dataset.to_string(),
                action,
                detail: (action != PlanAction::Unchanged).then(|| {
                    format!(
                        "{domain}.{name}.{} from {} ({})",
                        spec.dataset,
                        inputs.join(", "),
                        spec.materialization
                    )
                }),
            });
        }
        for t in &stored {
            if !files.iter().any(|(_, s)| s.dataset.as_str() == t.dataset) {
                changed = true;
                changes.push(PlannedChange {
                    kind: ResourceKind::Transform,
                    name: t.dataset.clone(),
                    action: PlanAction::Remove,
                    detail: Some(format!(
                        "{} is no longer in the folder: the dataset is no longer computed; what it holds stays",
                        t.file_name
                    )),
                });
            }
        }
        Ok(changed.then(|| {
            files
                .iter()
                .map(|(file, spec)| TransformRecord {
                    domain: domain.to_string(),
                    product: name.to_string(),
                    dataset: spec.dataset.to_string(),
                    file_name: file.name.clone(),
                    source: file.content.clone(),
                    updated_at: String::new(),
                })
                .collect()
        }))
    }

    /// Checks a folder's transforms against the product and the mesh; returns every stored
    /// transform of the mesh (read for the check).
    async fn check_transforms(
        &self,
        product: &Product,
        files: &[(&SourceFile, TransformSpec)],
        datasets: &[&DatasetSchema],
        sourced: &[(String, String)],
    ) -> Result<Vec<TransformRecord>> {
        let (domain, name) = (product.domain.as_str(), product.name.as_str());
        let problem = |file: &SourceFile, line: Option<usize>, message: String| Diagnostic {
            file: file.name.clone(),
            line,
            field: String::new(),
            message,
        };
        let mut problems: Vec<Diagnostic> = Vec::new();
        let mesh_datasets = self.catalog.datasets(None).await?;
        let declared: BTreeSet<&str> = product
            .input_ports
            .iter()
            .map(|p| p.contract_id.as_str())
            .collect();
        for (file, spec) in files {
            let target = spec.dataset.as_str();
            match datasets.iter().find(|d| d.name.as_str() == target) {
                None => problems.push(problem(
                    file,
                    None,
                    format!(
                        "{domain}.{name} has no dataset {target:?}: a transform computes one of the product's own datasets ({}), named by its file",
                        datasets
                            .iter()
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
                Some(schema) => {
                    if let Some(message) = materialization_problem(schema, &spec.materialization) {
                        problems.push(problem(
                            file,
                            line_of(&file.content, "materialize:"),
                            format!("{domain}.{name}.{target}: {message}"),
                        ));
                    }
                }
            }
            if let Some((source, _)) = sourced.iter().find(|(_, d)| d == target) {
                problems.push(problem(
                    file,
                    None,
                    format!(
                        "{domain}.{name}.{target} is filled by source {source:?}: a dataset is computed by a transform or filled by a source, not both"
                    ),
                ));
            }
            for input in &spec.inputs {
                let line = line_of(&file.content, &input.to_string());
                let own = input.domain.as_str() == domain && input.product.as_str() == name;
                if own {
                    if !datasets.iter().any(|d| d.name == input.dataset) {
                        problems.push(problem(
                            file,
                            line,
                            format!("{input}: {domain}.{name} has no such dataset"),
                        ));
                    }
                    continue;
                }
                let found = mesh_datasets.iter().find(|d| {
                    d.domain == input.domain.as_str()
                        && d.product == input.product.as_str()
                        && d.name == input.dataset.as_str()
                });
                match found {
                    None => problems.push(problem(
                        file,
                        line,
                        format!("{input}: there is no such dataset in the mesh"),
                    )),
                    Some(d) if !declared.contains(d.contract_id.as_str()) => {
                        problems.push(problem(
                            file,
                            line,
                            format!(
                                "{input} is not an input of {domain}.{name}: add an input port for its contract {:?} to the product descriptor",
                                d.contract_id
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        if !problems.is_empty() {
            return Err(ServiceError::InvalidFiles(problems));
        }

        // The mesh's transforms as they would be after the apply: no loop through this product.
        let stored = self.catalog.transforms(None).await?;
        let mut edges: Vec<(DatasetRef, Vec<DatasetRef>)> = Vec::new();
        for t in stored
            .iter()
            .filter(|t| t.domain != domain || t.product != name)
        {
            // Stored transforms were checked when they were applied.
            if let Ok(spec) = tessera_spec::transform_from_file(&t.file_name, &t.source)
                && let (Ok(d), Ok(p)) = (Name::parse(&t.domain), Name::parse(&t.product))
            {
                edges.push((DatasetRef::new(d, p, spec.dataset), spec.inputs));
            }
        }
        for (_, spec) in files {
            edges.push((
                DatasetRef::new(
                    product.domain.clone(),
                    product.name.clone(),
                    spec.dataset.clone(),
                ),
                spec.inputs.clone(),
            ));
        }
        let graph = TransformGraph::new(edges);
        for cycle in graph.cycles() {
            let Some((file, _)) = files.iter().find(|(_, spec)| {
                cycle.0.iter().any(|d| {
                    d.domain.as_str() == domain
                        && d.product.as_str() == name
                        && d.dataset == spec.dataset
                })
            }) else {
                continue;
            };
            problems.push(problem(
                file,
                None,
                format!(
                    "transforms read each other's results round a loop: {cycle}; no order runs them"
                ),
            ));
        }
        if !problems.is_empty() {
            return Err(ServiceError::InvalidFiles(problems));
        }
        problems.extend(
            self.check_transform_results(product, files, datasets, &stored)
                .await?,
        );
        if !problems.is_empty() {
            return Err(ServiceError::InvalidFiles(problems));
        }
        Ok(stored)
    }

    /// Each new or changed transform whose inputs are all other products' datasets (their
    /// tables stand as they are; this apply changes none of them), planned against the mesh: a
    /// query that does not plan (a column its input lacks), or whose result cannot fit its
    /// dataset's contract (a column the contract does not declare, a required column it leaves
    /// out), would fail every run, so it is refused now. A transform applied before as it is
    /// is not checked again: an edit elsewhere in its product is not held up by it (its runs
    /// say what broke).
    async fn check_transform_results(
        &self,
        product: &Product,
        files: &[(&SourceFile, TransformSpec)],
        datasets: &[&DatasetSchema],
        stored: &[TransformRecord],
    ) -> Result<Vec<Diagnostic>> {
        let unchanged = |file: &SourceFile, spec: &TransformSpec| {
            stored.iter().any(|t| {
                t.domain == product.domain.as_str()
                    && t.product == product.name.as_str()
                    && t.dataset == spec.dataset.as_str()
                    && t.source == file.content
            })
        };
        let checked: Vec<(&SourceFile, &TransformSpec, &DatasetSchema)> = files
            .iter()
            .filter(|(file, spec)| {
                !unchanged(file, spec)
                    && spec
                        .inputs
                        .iter()
                        .all(|i| i.domain != product.domain || i.product != product.name)
            })
            .filter_map(|(file, spec)| {
                let schema = datasets.iter().find(|d| d.name == spec.dataset)?;
                Some((*file, spec, *schema))
            })
            .collect();
        if checked.is_empty() {
            return Ok(Vec::new());
        }
        let sqls = checked
            .iter()
            .map(|(_, spec, _)| spec.sql.clone())
            .collect();
        let planned = self
            .plan_transform_queries("apply", sqls, |frame| {
                Ok(std::sync::Arc::new(frame.schema().as_arrow().clone()))
            })
            .await?;
        let mut problems = Vec::new();
        for ((file, spec, schema), result) in checked.into_iter().zip(planned) {
            let target = format!("{}.{}.{}", product.domain, product.name, spec.dataset);
            let message = match result {
                Err(e) => Some(format!("the query does not plan against the mesh: {e}")),
                Ok(result) => result_problem(&result, schema).map(|m| {
                    format!("the query's result does not fit the contract of {target}: {m}")
                }),
            };
            if let Some(message) = message {
                problems.push(Diagnostic {
                    file: file.name.clone(),
                    line: None,
                    field: String::new(),
                    message,
                });
            }
        }
        Ok(problems)
    }

    /// Plans each of `sqls` (transforms' queries) against the whole mesh as the system, for
    /// `purpose`, and takes what `read` wants of each plan; a query that does not plan gives
    /// its error. Every query is planned in one piece of work on the query runtime (a
    /// session's work ends with its token).
    pub(crate) async fn plan_transform_queries<T: Send + 'static>(
        &self,
        purpose: &str,
        sqls: Vec<String>,
        read: fn(&datafusion::prelude::DataFrame) -> std::result::Result<T, String>,
    ) -> Result<Vec<std::result::Result<T, String>>> {
        let cx = RequestContext::system(
            purpose,
            uuid::Uuid::new_v4().to_string(),
            FrontEnd::Scheduler,
        );
        let ctx = self.session(&cx).await?;
        self.engine()
            .run(&ctx.clone(), async move {
                let mut out = Vec::with_capacity(sqls.len());
                for sql in sqls {
                    out.push(match tessera_query::plan_sql(&ctx, &sql).await {
                        Ok(frame) => read(&frame),
                        Err(e) => Err(e.to_string()),
                    });
                }
                Ok(out)
            })
            .await
            .map_err(ServiceError::from)
    }
}

/// Why a query's `result` columns cannot be written to a dataset of `schema`: a column the
/// contract does not declare (the run refuses it), or a required one it leaves out (every row
/// would be quarantined). Types are not compared: a value is cast at the run, row by row.
fn result_problem(result: &arrow::datatypes::SchemaRef, schema: &DatasetSchema) -> Option<String> {
    let contract = match schema.arrow_schema() {
        Ok(contract) => contract,
        Err(e) => return Some(e.to_string()),
    };
    match tessera_ingest::check_columns(result, &contract) {
        Ok(()) => {}
        Err(tessera_ingest::IngestError::UnknownColumns { unknown, expected }) => {
            return Some(format!(
                "it has columns the contract does not declare: {}; expected some of: {}",
                unknown.join(", "),
                expected.join(", ")
            ));
        }
        Err(e) => return Some(e.to_string()),
    }
    let missing: Vec<&str> = schema
        .columns
        .iter()
        .filter(|c| (c.required || c.primary_key) && result.field_with_name(&c.name).is_err())
        .map(|c| c.name.as_str())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "it leaves out the required column(s) {}",
            missing.join(", ")
        )
    })
}

/// What keeps `materialization` from writing a dataset of `schema`: a merge needs the
/// contract's primary key to merge by (and its `recompute_by` is a column of it), an append a
/// watermark column the dataset has.
pub(crate) fn materialization_problem(
    schema: &DatasetSchema,
    materialization: &Materialization,
) -> Option<String> {
    match materialization {
        Materialization::Merge { .. } if !schema.columns.iter().any(|c| c.primary_key) => Some(
            "a merge transform merges by the contract's primary key, and the contract has none: mark its key columns `primaryKey: true`".into(),
        ),
        Materialization::Append { watermark }
        | Materialization::Merge {
            watermark: Some(watermark),
            ..
        } if schema.column(watermark.as_str()).is_none() => Some(format!(
            "the watermark {:?} is not a column of the dataset: a run computes the rows from the newest value of one of its columns",
            watermark.as_str()
        )),
        // The rows a run recomputes replace the table's rows of the same keys: the keys must
        // be the merge's, or a recomputed row could replace a row of a key left as it was.
        Materialization::Merge {
            recompute_by: Some(key),
            ..
        } if !schema
            .column(key.as_str())
            .is_some_and(|c| c.primary_key) =>
        {
            Some(format!(
                "recompute_by {:?} is not a column of the contract's primary key: a run replaces the rows of the keys it recomputes, found by the primary key",
                key.as_str()
            ))
        }
        _ => None,
    }
}
