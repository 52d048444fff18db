//! Glossary terms, the governance council's shared definitions: publishing versions (never
//! changed once published), checking the columns that reference them (a compatible type, no
//! looser rule) when a product is applied, enforcing their rules on every contract that uses
//! them (so ingest quarantines and `check` measures by the term), and telling the council, when
//! it publishes a new version, which products would fail under it.

use std::collections::BTreeMap;

use arrow::array::{Array, Int64Array};
use tessera_catalog::GlossaryTermRecord;
use tessera_core::{Column, Contract, GlossaryTerm, Principal, RequestContext, TermRef};
use tessera_spec::{Diagnostic, Loaded, SpecDocument};

use crate::error::{Result, ServiceError};
use crate::mesh::Mesh;
use crate::views::{GlossaryApplyView, GlossaryFilesRequest, GlossaryTermView, TermImpactView};

/// Every top-level column of a contract with its JSON pointer in the document (datasets and
/// columns are in the document's order). Glossary references are read on top-level columns:
/// a term describes a value a row holds, not a field inside a nested one.
fn columns_mut(contract: &mut Contract) -> Vec<(String, &mut Column)> {
    let mut out = Vec::new();
    for (i, dataset) in contract.datasets.iter_mut().enumerate() {
        for (j, column) in dataset.columns.iter_mut().enumerate() {
            out.push((format!("/schema/{i}/properties/{j}"), column));
        }
    }
    out
}

/// The terms' rules and classification made the contract's columns' own (see
/// [`GlossaryTerm::enforce_on`]). A reference to a version that is not published is left as it
/// is: apply refuses it, so only a contract stored before the term can hold one.
pub(crate) fn enforce_glossary(contract: &mut Contract, terms: &[GlossaryTerm]) {
    for (_, column) in columns_mut(contract) {
        if let Some(reference) = &column.glossary
            && let Some(term) = find(terms, reference)
        {
            term.enforce_on(column);
        }
    }
}

/// The breaking changes of a new contract version in its glossary references: a column that
/// takes a term's rules it did not have, or moves to a stricter version of its term. So no
/// product's promise changes under its consumers without a major version.
pub(crate) fn glossary_breaking(
    old: &Contract,
    new: &Contract,
    terms: &[(GlossaryTermRecord, GlossaryTerm)],
) -> Vec<String> {
    let term = |r: &TermRef| {
        terms
            .iter()
            .map(|(_, t)| t)
            .find(|t| t.name == r.name && t.version == r.version)
    };
    let mut breaking = Vec::new();
    for dataset in &new.datasets {
        let Some(before) = old.dataset(dataset.name.as_str()) else {
            continue;
        };
        for column in &dataset.columns {
            let Some(now) = &column.glossary else {
                continue;
            };
            let Some(was) = before.columns.iter().find(|c| c.name == column.name) else {
                continue;
            };
            let Some(new_term) = term(now) else { continue };
            let stricter = match &was.glossary {
                Some(r) if r == now => false,
                Some(r) => term(r).is_none_or(|old_term| new_term.stricter_than(old_term)),
                None => {
                    (new_term.pattern.is_some() && was.constraints.pattern != new_term.pattern)
                        || (new_term.valid_values.is_some()
                            && was.constraints.valid_values != new_term.valid_values)
                }
            };
            if stricter {
                breaking.push(format!(
                    "{}.{}: glossary term {now} allows less than the column did",
                    dataset.name, column.name
                ));
            }
        }
    }
    breaking
}

fn find<'a>(terms: &'a [GlossaryTerm], reference: &TermRef) -> Option<&'a GlossaryTerm> {
    terms
        .iter()
        .find(|t| t.name == reference.name && t.version == reference.version)
}

fn parse_term(record: &GlossaryTermRecord) -> Result<GlossaryTerm> {
    match tessera_spec::load_with(
        &record.file_name,
        &record.source,
        &tessera_spec::FileLimits::NONE,
    )? {
        Loaded::GlossaryTerm(t) => Ok(t),
        _ => Err(ServiceError::Internal(format!(
            "glossary term {}@{} is stored but is not a glossary term",
            record.name, record.version
        ))),
    }
}

fn term_view(
    record: &GlossaryTermRecord,
    term: &GlossaryTerm,
    used_by: Vec<String>,
) -> GlossaryTermView {
    GlossaryTermView {
        name: term.name.clone(),
        version: term.version.clone(),
        description: term.description.clone(),
        logical_type: term.logical_type.as_str().to_string(),
        pattern: term.pattern.clone(),
        valid_values: term.valid_values.clone(),
        classification: term.classification.clone(),
        file_name: record.file_name.clone(),
        created_at: record.created_at.clone(),
        created_by: record.created_by.clone(),
        used_by,
    }
}

impl Mesh {
    /// Every published version of every term.
    pub(crate) async fn glossary_terms(&self) -> Result<Vec<(GlossaryTermRecord, GlossaryTerm)>> {
        self.catalog
            .glossary_terms()
            .await?
            .into_iter()
            .map(|r| parse_term(&r).map(|t| (r, t)))
            .collect()
    }

    /// The problems of a folder's glossary references, at each column's file and line: a
    /// version that is not published, a type other than the term's, a looser rule.
    pub(crate) async fn check_glossary_references(
        &self,
        contracts: &mut [(&crate::views::SourceFile, &mut Contract)],
    ) -> Result<Vec<Diagnostic>> {
        if !contracts.iter().any(|(_, c)| {
            c.datasets
                .iter()
                .any(|d| d.columns.iter().any(|c| c.glossary.is_some()))
        }) {
            return Ok(Vec::new());
        }
        let terms: Vec<GlossaryTerm> = self
            .glossary_terms()
            .await?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        let mut problems = Vec::new();
        for (file, contract) in contracts.iter_mut() {
            let doc = SpecDocument::parse(&file.name, &file.content)?;
            for (pointer, column) in columns_mut(contract) {
                let Some(reference) = column.glossary.clone() else {
                    continue;
                };
                match find(&terms, &reference) {
                    None => {
                        let known: Vec<String> = terms
                            .iter()
                            .filter(|t| t.name == reference.name)
                            .map(|t| t.version.clone())
                            .collect();
                        problems.push(doc.diagnostic(
                            &pointer,
                            if known.is_empty() {
                                format!(
                                    "no glossary term {} (`tessera glossary list` shows the terms)",
                                    reference.name
                                )
                            } else {
                                format!(
                                    "glossary term {} has no version {} (published: {})",
                                    reference.name,
                                    reference.version,
                                    known.join(", ")
                                )
                            },
                        ));
                    }
                    Some(term) => {
                        for conflict in term.conflicts(column) {
                            problems.push(doc.diagnostic(&pointer, conflict));
                        }
                        term.enforce_on(column);
                    }
                }
            }
        }
        Ok(problems)
    }

    /// The columns (as `domain.product.dataset.column`) of published datasets that reference
    /// each term name, with the version they reference.
    async fn glossary_usage(
        &self,
    ) -> Result<BTreeMap<String, Vec<(String, TermRef, tessera_core::DatasetRef, Column)>>> {
        let mut usage: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for record in self.catalog.datasets(None).await? {
            let stored = self
                .catalog
                .contract(
                    &record.domain,
                    &record.contract_id,
                    &record.contract_version,
                )
                .await?;
            let Some(stored) = stored else { continue };
            // As declared: the column's own rules, not those the term added.
            let contract = tessera_spec::load_contract(&stored.file_name, &stored.source)?;
            let Some(schema) = contract.dataset(&record.name) else {
                continue;
            };
            let internal = |e: tessera_core::CoreError| ServiceError::Internal(e.to_string());
            let reference = tessera_core::DatasetRef::new(
                tessera_core::Name::parse(&record.domain).map_err(internal)?,
                tessera_core::Name::parse(&record.product).map_err(internal)?,
                schema.name.clone(),
            );
            for column in &schema.columns {
                if let Some(term) = &column.glossary {
                    usage.entry(term.name.clone()).or_default().push((
                        format!("{reference}.{}", column.name),
                        term.clone(),
                        reference.clone(),
                        column.clone(),
                    ));
                }
            }
        }
        Ok(usage)
    }

    /// Rows of `dataset` whose `column` breaks `term`'s rules, counted over the data as the
    /// system sees it.
    async fn rows_breaking(
        &self,
        cx: &RequestContext,
        dataset: &tessera_core::DatasetRef,
        column: &str,
        term: &GlossaryTerm,
    ) -> Result<i64> {
        let quoted = format!("\"{}\"", column.replace('"', "\"\""));
        let mut conditions = Vec::new();
        if let Some(p) = &term.pattern {
            conditions.push(format!(
                "regexp_like(CAST({quoted} AS VARCHAR), '{}')",
                p.replace('\'', "''")
            ));
        }
        if let Some(values) = &term.valid_values {
            let list: Vec<String> = values
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
                    other => format!("'{}'", other.to_string().replace('\'', "''")),
                })
                .collect();
            conditions.push(format!(
                "CAST({quoted} AS VARCHAR) IN ({})",
                list.join(", ")
            ));
        }
        if conditions.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "SELECT count(*) AS n FROM {dataset} WHERE {quoted} IS NOT NULL AND NOT ({})",
            conditions.join(" AND ")
        );
        let system = cx.acting_as(Principal::system("glossary"));
        let snapshot = self.snapshot_for(&system).await?;
        let (_, batches) = self.engine().collect(&snapshot, &sql, &system).await?;
        Ok(batches
            .first()
            .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().cloned())
            .filter(|a| !a.is_empty())
            .map_or(0, |a| a.value(0)))
    }
}

#[async_trait::async_trait]
impl crate::service::GlossaryService for Mesh {
    async fn glossary(&self, cx: &RequestContext) -> Result<Vec<GlossaryTermView>> {
        let usage = self.glossary_usage().await?;
        let access = self.access_for(cx).await?;
        // Terms are everyone's to read; the columns that use them only where the caller may
        // discover their dataset.
        let discoverable = |dataset: &tessera_core::DatasetRef| {
            access.allowed(
                &cx.principal,
                tessera_governance::Action::Discover,
                &crate::governance::dataset_resource(dataset),
            )
        };
        Ok(self
            .glossary_terms()
            .await?
            .iter()
            .map(|(r, t)| {
                let used_by = usage
                    .get(&t.name)
                    .into_iter()
                    .flatten()
                    .filter(|(_, reference, dataset, _)| {
                        reference.version == t.version && discoverable(dataset)
                    })
                    .map(|(name, ..)| name.clone())
                    .collect();
                term_view(r, t, used_by)
            })
            .collect())
    }

    async fn apply_glossary(
        &self,
        cx: &RequestContext,
        request: &GlossaryFilesRequest,
    ) -> Result<GlossaryApplyView> {
        self.authorize_council(cx, "publish glossary terms").await?;
        if request.files.is_empty() {
            return Err(ServiceError::BadRequest(
                "no files: give one or more glossary term files (kind: GlossaryTerm)".into(),
            ));
        }
        let published = self.glossary_terms().await?;
        let mut problems = Vec::new();
        let mut new: Vec<(&crate::views::SourceFile, GlossaryTerm)> = Vec::new();
        let mut unchanged = Vec::new();
        for file in &request.files {
            let term = match tessera_spec::load(&file.name, &file.content) {
                Ok(Loaded::GlossaryTerm(t)) => t,
                Ok(other) => {
                    problems.push(Diagnostic {
                        file: file.name.clone(),
                        line: Some(1),
                        field: "kind".into(),
                        message: format!(
                            "expected a glossary term (kind: GlossaryTerm, apiVersion: tessera/v1), found a {:?}",
                            other.kind()
                        ),
                    });
                    continue;
                }
                Err(e) => {
                    problems.extend(e.diagnostics().iter().cloned());
                    continue;
                }
            };
            match published
                .iter()
                .find(|(r, _)| r.name == term.name && r.version == term.version)
            {
                Some((r, _)) if r.source == file.content => unchanged.push(term),
                Some((r, _)) => problems.push(Diagnostic {
                    file: file.name.clone(),
                    line: Some(1),
                    field: "version".into(),
                    message: format!(
                        "glossary term {}@{} is already published with different content (from {}); a published version never changes: raise `version`",
                        term.name, term.version, r.file_name
                    ),
                }),
                None if new.iter().any(|(_, t)| t.reference() == term.reference()) => {
                    problems.push(Diagnostic {
                        file: file.name.clone(),
                        line: Some(1),
                        field: "version".into(),
                        message: format!("glossary term {} is given twice", term.reference()),
                    })
                }
                None => new.push((file, term)),
            }
        }
        if !problems.is_empty() {
            return Err(ServiceError::InvalidFiles(problems));
        }
        let records: Vec<GlossaryTermRecord> = new
            .iter()
            .map(|(file, t)| GlossaryTermRecord {
                name: t.name.clone(),
                version: t.version.clone(),
                file_name: file.name.clone(),
                source: file.content.clone(),
                created_at: String::new(),
                created_by: String::new(),
            })
            .collect();
        if !records.is_empty() {
            self.catalog
                .put_glossary_terms(&records, &cx.principal.to_string())
                .await?;
        }

        // What a new version would do to the columns on an older one of the same term.
        let usage = self.glossary_usage().await?;
        let mut impact = Vec::new();
        for (_, term) in &new {
            for (name, reference, dataset, column) in usage.get(&term.name).into_iter().flatten() {
                if reference.version == term.version {
                    continue;
                }
                let conflicts = term.conflicts(column);
                let failing_rows = if conflicts
                    .iter()
                    .any(|c| c.starts_with("the column is declared"))
                {
                    None
                } else {
                    Some(self.rows_breaking(cx, dataset, &column.name, term).await?)
                };
                impact.push(TermImpactView {
                    term: term.reference().to_string(),
                    column: name.clone(),
                    product: format!("{}.{}", dataset.domain, dataset.product),
                    references: reference.to_string(),
                    would_fail: !conflicts.is_empty() || failing_rows.is_some_and(|n| n > 0),
                    failing_rows,
                    conflicts,
                });
            }
        }
        let all = self.glossary_terms().await?;
        let terms = new
            .iter()
            .map(|(_, t)| t)
            .chain(unchanged.iter())
            .filter_map(|t| {
                all.iter()
                    .find(|(r, _)| r.name == t.name && r.version == t.version)
                    .map(|(r, t)| term_view(r, t, Vec::new()))
            })
            .collect();
        Ok(GlossaryApplyView { terms, impact })
    }
}
