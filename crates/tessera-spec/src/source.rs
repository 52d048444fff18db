//! Source document (`kind: Source`, `apiVersion: tessera/v1`) → [`SourceSpec`]. The JSON Schema
//! checks the fields; this checks what it cannot say: one trigger (`every`, `schedule` or
//! `continuous`), a valid cron schedule, and the options of the named connector (and of no
//! other). What the options mean is checked by the connector itself when the source is applied.

use tessera_core::{SecretRef, SourceSpec, SourceTrigger, parse_duration};

use crate::document::SpecDocument;
use crate::error::{Result, SpecError};
use crate::odcs::text;

const CONNECTORS: [&str; 3] = ["postgres", "kafka", "files"];

/// Converts a validated source document.
pub fn source_from_document(doc: &SpecDocument) -> Result<SourceSpec> {
    let v = &doc.value;
    let mut problems = Vec::new();
    let connector = text(v, "connector").unwrap_or_default();

    let every = text(v, "every");
    let schedule = text(v, "schedule");
    let continuous = v.get("continuous").and_then(|c| c.as_bool()) == Some(true);
    let given = [every.is_some(), schedule.is_some(), continuous]
        .iter()
        .filter(|g| **g)
        .count();
    let trigger = match (every, schedule) {
        _ if given > 1 => {
            problems.push(doc.diagnostic(
                "",
                "a source pulls on one trigger: give only one of `every`, `schedule` and `continuous: true`",
            ));
            None
        }
        (Some(every), _) => match parse_duration(&every) {
            Some(d) if !d.is_zero() => Some(SourceTrigger::Every(d)),
            _ => {
                problems.push(doc.diagnostic(
                    "/every",
                    format!("`every: {every}` is not a duration above zero (e.g. 30s, 5m, 1h)"),
                ));
                None
            }
        },
        (None, Some(cron)) => match crate::parse_schedule(&cron) {
            Ok(_) => Some(SourceTrigger::Schedule(cron)),
            Err(e) => {
                problems.push(doc.diagnostic(
                    "/schedule",
                    format!("`schedule` is not a cron expression: {e}"),
                ));
                None
            }
        },
        (None, None) if continuous => Some(SourceTrigger::Continuous),
        (None, None) => {
            problems.push(doc.diagnostic(
                "",
                "missing trigger: say when the source pulls with `every` (e.g. 30s), `schedule` (cron) or `continuous: true`",
            ));
            None
        }
    };

    let options = v.get(&connector).cloned();
    if options.is_none() {
        problems.push(doc.diagnostic(
            "/connector",
            format!(
                "connector {connector} takes its options under `{connector}:`, which is missing"
            ),
        ));
    }
    for other in CONNECTORS.iter().filter(|c| **c != connector) {
        if v.get(*other).is_some() {
            problems.push(doc.diagnostic(
                &format!("/{other}"),
                format!("`{other}:` holds options of the {other} connector, but this source's connector is {connector}"),
            ));
        }
    }

    let secret = v.get("secret").and_then(|s| {
        if let Some(name) = s.get("name").and_then(|n| n.as_str()) {
            Some(SecretRef::Stored(name.to_string()))
        } else {
            s.get("env")
                .and_then(|e| e.as_str())
                .map(|e| SecretRef::Env(e.to_string()))
        }
    });
    if !problems.is_empty() {
        return Err(SpecError::Invalid(problems));
    }
    Ok(SourceSpec {
        name: text(v, "name").unwrap_or_default(),
        description: text(v, "description"),
        dataset: text(v, "dataset").unwrap_or_default(),
        connector,
        trigger: trigger.expect("a trigger when there is no problem"),
        options: options.unwrap_or_default(),
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> std::result::Result<SourceSpec, Vec<String>> {
        let doc = SpecDocument::parse("sources/orders.yaml", text).unwrap();
        crate::validate::validate(&doc)
            .and_then(|_| source_from_document(&doc))
            .map_err(|e| e.diagnostics().iter().map(|d| d.to_string()).collect())
    }

    const HEAD: &str = "apiVersion: tessera/v1\nkind: Source\nname: shop_db\ndataset: orders\n";

    #[test]
    fn a_postgres_source_reads_with_its_secret_and_trigger() {
        let spec = load(&format!(
            "{HEAD}connector: postgres\nevery: 30s\nsecret:\n  name: shop-db\npostgres:\n  table: public.orders\n  cursor: {{timestamp: updated_at, key: order_id}}\n  lookback: 10m\n"
        ))
        .unwrap();
        assert_eq!(spec.connector, "postgres");
        assert_eq!(
            spec.trigger,
            SourceTrigger::Every(std::time::Duration::from_secs(30))
        );
        assert_eq!(spec.secret, Some(SecretRef::Stored("shop-db".into())));
        assert_eq!(spec.options["cursor"]["key"], "order_id");
    }

    #[test]
    fn triggers_options_and_secrets_are_checked_at_their_line() {
        let none = load(&format!("{HEAD}connector: files\nfiles: {{path: /in}}\n")).unwrap_err();
        assert!(none[0].contains("missing trigger"), "{none:?}");
        let two = load(&format!(
            "{HEAD}connector: files\nevery: 1m\ncontinuous: true\nfiles: {{path: /in}}\n"
        ))
        .unwrap_err();
        assert!(two[0].contains("only one of"), "{two:?}");
        let cron = load(&format!(
            "{HEAD}connector: files\nschedule: every tuesday\nfiles: {{path: /in}}\n"
        ))
        .unwrap_err();
        assert!(
            cron[0].contains("orders.yaml:6") && cron[0].contains("cron"),
            "{cron:?}"
        );
        let wrong = load(&format!(
            "{HEAD}connector: files\nevery: 1m\nkafka: {{topic: t}}\n"
        ))
        .unwrap_err();
        assert!(
            wrong.iter().any(|e| e.contains("`kafka:` holds options")),
            "{wrong:?}"
        );
        // A credential in the file, or a server variable outside TESSERA_SECRET_*, is refused.
        let env = load(&format!(
            "{HEAD}connector: files\nevery: 1m\nsecret: {{env: AWS_SECRET_ACCESS_KEY}}\nfiles: {{path: /in}}\n"
        ))
        .unwrap_err();
        assert!(env[0].contains("orders.yaml:7"), "{env:?}");
        let inline = load(&format!(
            "{HEAD}connector: postgres\nevery: 1m\npostgres: {{table: t, url: 'postgres://u:pw@h/db'}}\n"
        ))
        .unwrap_err();
        assert!(inline[0].contains("unknown field `url`"), "{inline:?}");
    }
}
