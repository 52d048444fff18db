//! `tessera check DOMAIN.PRODUCT[.DATASET]`: runs the contract checks on the server and shows
//! them as a table, as datacontract-cli's JSON result, or as JUnit XML for CI. Exit code 1 when
//! a blocking check fails or cannot run.

use anyhow::{Result, bail};
use comfy_table::{Table, presets};
use serde_json::{Value, json};
use tessera_server::views::{CheckReport, CheckRunView};

use crate::cli::CheckFormat;
use crate::client::Client;

pub async fn run(client: &Client, target: &str, format: CheckFormat) -> Result<()> {
    let parts: Vec<&str> = target.split('.').collect();
    let report: CheckReport = match parts.as_slice() {
        [d, p] => {
            client
                .post(&["api", "v1", "products", d, p, "checks"], &json!({}))
                .await?
        }
        [d, p, ds] => {
            client
                .post(&["api", "v1", "datasets", d, p, ds, "checks"], &json!({}))
                .await?
        }
        _ => bail!("invalid target {target:?}: expected DOMAIN.PRODUCT or DOMAIN.PRODUCT.DATASET"),
    };
    show(&report, format)
}

/// `tessera test CONTRACT`: the contract's checks over the files of one of its servers.
pub async fn test(
    contract: &std::path::Path,
    server: Option<&str>,
    format: CheckFormat,
) -> Result<()> {
    let name = contract.display().to_string();
    let text = std::fs::read_to_string(contract)
        .map_err(|e| anyhow::anyhow!("{name}: cannot read: {e}"))?;
    let cx = crate::commands::local_context("tessera-test");
    let report = tessera_server::test_contract(&cx, &name, &text, server).await?;
    show(&report, format)
}

/// Prints a report in `format`; an error (exit code 1) when a blocking check failed or could
/// not run. `tessera test` shows its reports the same way.
pub fn show(report: &CheckReport, format: CheckFormat) -> Result<()> {
    match format {
        CheckFormat::Table => print_table(report),
        CheckFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&datacontract_json(report))?
        ),
        CheckFormat::Junit => print!("{}", junit(report)),
    }
    if matches!(report.result.as_str(), "failed" | "error") {
        bail!(
            "{}: blocking checks failed ({})",
            report.target,
            report.result
        );
    }
    Ok(())
}

fn number(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        Some(v) => format!("{v:.2}"),
    }
}

fn print_table(report: &CheckReport) {
    for run in &report.runs {
        println!(
            "{}  (contract {}@{}, table version {}): {}, score {}",
            run.dataset,
            run.contract_id,
            run.contract_version,
            run.table_version.map_or("-".into(), |v| v.to_string()),
            run.result.to_uppercase(),
            run.score.map_or("-".into(), |s| format!("{s:.1}")),
        );
        let mut t = Table::new();
        t.load_preset(presets::NOTHING).set_header(vec![
            "RESULT",
            "CHECK",
            "FIELD",
            "MEASURED",
            "THRESHOLD",
            "REASON",
        ]);
        for c in &run.checks {
            // Rules are told apart by their id, or else (several sql rules) by their name.
            let check = match (&c.quality_id, c.check_type.ends_with("quality_sql")) {
                (Some(id), _) => format!("{}\n  {id}", c.check_type),
                (None, true) => format!("{}\n  {}", c.check_type, c.name),
                (None, false) => c.check_type.clone(),
            };
            t.add_row(vec![
                c.result.clone(),
                check,
                c.field.clone().unwrap_or_default(),
                number(c.measured),
                c.threshold.clone(),
                c.reason.clone(),
            ]);
        }
        println!("{t}");
        for c in run.checks.iter().filter(|c| !c.samples.is_empty()) {
            let field = c
                .field
                .as_deref()
                .map(|f| format!(" {f}"))
                .unwrap_or_default();
            println!("  samples of {}{field}:", c.check_type);
            for s in &c.samples {
                println!("    {}", Value::Object(s.clone()));
            }
        }
        println!();
    }
    let count = |r: &str| {
        report
            .runs
            .iter()
            .flat_map(|run| &run.checks)
            .filter(|c| c.result == r)
            .count()
    };
    println!(
        "{}: {} — {} passed, {} warnings, {} failed, {} errors; quality score {}",
        report.target,
        report.result.to_uppercase(),
        count("passed"),
        count("warning"),
        count("failed"),
        count("error"),
        report.score.map_or("-".into(), |s| format!("{s:.1}")),
    );
}

/// datacontract-cli's result shape, one object per contract (an array when the report spans
/// several contracts).
fn datacontract_json(report: &CheckReport) -> Value {
    let mut by_contract: Vec<(String, String, Vec<&CheckRunView>)> = Vec::new();
    for run in &report.runs {
        match by_contract
            .iter_mut()
            .find(|(id, v, _)| *id == run.contract_id && *v == run.contract_version)
        {
            Some((_, _, runs)) => runs.push(run),
            None => by_contract.push((
                run.contract_id.clone(),
                run.contract_version.clone(),
                vec![run],
            )),
        }
    }
    let objects: Vec<Value> = by_contract
        .into_iter()
        .map(|(id, version, runs)| {
            let order = |r: &str| {
                ["passed", "warning", "failed", "error"]
                    .iter()
                    .position(|x| *x == r)
                    .unwrap_or(3)
            };
            let result = runs
                .iter()
                .map(|r| r.result.as_str())
                .max_by_key(|r| order(r))
                .unwrap_or("passed");
            let checks: Vec<Value> = runs
                .iter()
                .flat_map(|run| &run.checks)
                .map(|c| {
                    json!({
                        "type": c.check_type,
                        "name": c.name,
                        "model": c.model,
                        "field": c.field,
                        "result": c.result,
                        "reason": c.reason,
                        "diagnostics": {
                            "measured": c.measured,
                            "threshold": c.threshold,
                            "failed_samples": c.samples,
                        },
                        "qualityId": c.quality_id,
                        "dimension": c.dimension,
                        "severity": c.severity,
                    })
                })
                .collect();
            json!({
                "runId": runs.first().map(|r| r.run_id.clone()),
                "dataContractId": id,
                "dataContractVersion": version,
                "server": "tessera",
                "timestampStart": runs.iter().map(|r| r.started_at.clone()).min(),
                "timestampEnd": runs.iter().map(|r| r.finished_at.clone()).max(),
                "result": result,
                "checks": checks,
                "logs": [],
            })
        })
        .collect();
    match <[Value; 1]>::try_from(objects) {
        Ok([one]) => one,
        Err(many) => Value::Array(many),
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: one test suite per dataset, one test case per check; failed checks are
/// failures, checks that could not run are errors, warnings pass with the reason as output.
fn junit(report: &CheckReport) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let all: Vec<_> = report.runs.iter().flat_map(|r| &r.checks).collect();
    let count = |r: &str| all.iter().filter(|c| c.result == r).count();
    out.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
        xml(&report.target),
        all.len(),
        count("failed"),
        count("error")
    ));
    for run in &report.runs {
        let count = |r: &str| run.checks.iter().filter(|c| c.result == r).count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" timestamp=\"{}\">\n",
            xml(&run.dataset),
            run.checks.len(),
            count("failed"),
            count("error"),
            xml(&run.started_at)
        ));
        for c in &run.checks {
            let name = match &c.field {
                Some(f) => format!("{} {f}: {}", c.check_type, c.name),
                None => format!("{}: {}", c.check_type, c.name),
            };
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&run.dataset),
                xml(&name)
            ));
            match c.result.as_str() {
                "failed" => out.push_str(&format!(
                    ">\n      <failure message=\"{}\" type=\"{}\"/>\n    </testcase>\n",
                    xml(&c.reason),
                    xml(&c.check_type)
                )),
                "error" => out.push_str(&format!(
                    ">\n      <error message=\"{}\" type=\"{}\"/>\n    </testcase>\n",
                    xml(&c.reason),
                    xml(&c.check_type)
                )),
                "warning" => out.push_str(&format!(
                    ">\n      <system-out>warning: {}</system-out>\n    </testcase>\n",
                    xml(&c.reason)
                )),
                _ => out.push_str("/>\n"),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
